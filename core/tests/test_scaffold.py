"""`libertem-live new-driver`: the generated distribution is complete and
named through; installing and certifying it runs in the `new_driver` nox
session."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from libertem_live.scaffold import new_driver


def test_generated_driver_is_named_through(tmp_path: Path) -> None:
    root = new_driver("zeta_cam", tmp_path)
    assert root.name == "libertem-live-zeta-cam"
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    pkg = "src/libertem_live_zeta_cam"
    for room in ("plugin.py", "connection.py", "controller.py", "receiver.py", "wire.py",
                 "decode.py", "errors.py", "sim/__init__.py", "sim/server.py",
                 "sim/faults.py", "sim/__main__.py"):
        assert f"{pkg}/{room}" in files
    assert "tests/test_conformance.py" in files and "pyproject.toml" in files
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert "acme" not in text.lower(), f"{path} still names the template"
            if path.suffix == ".py":
                ast.parse(text, str(path))
    toml = (root / "pyproject.toml").read_text()
    assert 'zeta_cam = "libertem_live_zeta_cam.plugin"' in toml
    assert 'name = "libertem-live-zeta-cam"' in toml


def test_refuses_to_overwrite_and_bad_names(tmp_path: Path) -> None:
    new_driver("acme", tmp_path)
    with pytest.raises(FileExistsError, match="exists already"):
        new_driver("acme", tmp_path)
    for bad in ("Acme", "9cam", "my-cam", "class"):
        with pytest.raises(ValueError, match="cannot name a driver"):
            new_driver(bad, tmp_path)


def test_command_line(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "libertem_live.cli", "new-driver", "acme",
                          "--dest", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "libertem-live-acme" / "pyproject.toml").exists()
    assert "pip install" in out.stdout
