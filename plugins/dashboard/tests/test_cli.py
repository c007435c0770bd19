"""The dashboard's program, as ``libertem-live-dashboard`` and as the
``libertem-live dashboard`` subcommand the plugin adds to the core's command."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def _exe(name: str) -> str:
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(f"the {name} console script is not installed in this environment")
    return exe


@pytest.mark.parametrize("command", [["libertem-live", "dashboard"], ["libertem-live-dashboard"]])
def test_the_program_under_both_names(command: list[str]) -> None:
    argv = [_exe(command[0]), *command[1:]]
    helped = subprocess.run(argv + ["--help"], capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith(f"usage: {' '.join(command)} ")
    assert "--behind-gap" in helped.stdout and "--scan" in helped.stdout
    bad = subprocess.run(argv + ["--detector", "memory", "--nav-shape", "3x"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert f"{' '.join(command)}: error: a shape is like 128,128, got '3x'" in bad.stderr


def test_the_core_lists_the_dashboard_command() -> None:
    out = subprocess.run([_exe("libertem-live"), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "[libertem-live-dashboard]" in "".join(out.stdout.split())
