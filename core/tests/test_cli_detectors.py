"""``libertem-live detectors [NAME]``, run as the installed console command
with toy distributions on PYTHONPATH (found like any installed driver)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from toydists import make_dist

HEAVY = """
import sys
sys.stderr.write("HEAVY MODULE IMPORTED\\n")


class ToyConnection:
    def __init__(self, host: str, port: int = 8283, *, timeout: float = 10.0,
                 mode: str = "fast", **extra):
        pass
"""

PLUGIN = """
from libertem_live.driver import PLUGIN_API_VERSION, DetectorInfo, hookimpl


def open_connection(**params):
    from toy_heavy_mod import ToyConnection
    return ToyConnection(**params)


@hookimpl
def libertem_live_detectors():
    return [DetectorInfo(
        name="toy", open=open_connection, plugin_api=PLUGIN_API_VERSION,
        description="a toy detector", signature_of="toy_heavy_mod:ToyConnection",
        parameters={"host": "where the toy listens", "timeout": "seconds without frames",
                    "ring": "a RingConfig, passed on through **extra"},
    )]
"""

TYPO = """

@hookimpl
def libertem_live_detectors_more():
    pass
"""


def _command() -> list[str]:
    exe = shutil.which("libertem-live", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the libertem-live console script is not installed in this environment")
    return [exe]


def _run(args: list[str], path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(path), env.get("PYTHONPATH", "")])
    return subprocess.run(_command() + args, capture_output=True, text=True, env=env,
                          timeout=120)


@pytest.fixture
def toy_path(tmp_path: Path) -> Path:
    make_dist(tmp_path, "toy-detector", "2.5", {"toy": "toy_plugin_mod"}, {
        "toy_plugin_mod": PLUGIN,
        "toy_heavy_mod": HEAVY,
    })
    return tmp_path


def test_listing_does_not_import_signature_of(toy_path: Path) -> None:
    out = _run(["detectors"], toy_path)
    assert out.returncode == 0, out.stderr
    assert "toy" in out.stdout and "toy-detector 2.5" in out.stdout
    assert "memory" in out.stdout
    assert "HEAVY MODULE IMPORTED" not in out.stderr, "listing must stay cheap"


def test_one_driver_shows_parameters_with_defaults_and_meaning(toy_path: Path) -> None:
    out = _run(["detectors", "toy"], toy_path)
    assert out.returncode == 0, out.stderr
    assert "HEAVY MODULE IMPORTED" in out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "toy (toy-detector 2.5)"
    assert "a toy detector" in out.stdout
    rows = {line.split()[0]: line for line in lines if line.startswith("  ") and
            line.split()[0] in {"host", "port", "timeout", "mode", "ring", "extra"}}
    assert list(rows) == ["host", "port", "timeout", "mode", "ring"], out.stdout
    assert "(required)" in rows["host"] and "where the toy listens" in rows["host"]
    assert "8283" in rows["port"]
    assert "10.0" in rows["timeout"] and "seconds without frames" in rows["timeout"]
    assert "'fast'" in rows["mode"]
    assert "passed on through **extra" in rows["ring"]


def test_memory_driver_parameters() -> None:
    out = _run(["detectors", "memory"])
    assert out.returncode == 0, out.stderr
    data = next(line for line in out.stdout.splitlines() if line.split()[:1] == ["data"])
    assert "(required)" in data and "array of shape" in data


def test_unknown_driver_name(toy_path: Path) -> None:
    out = _run(["detectors", "tyo"], toy_path)
    assert out.returncode == 1
    assert "Did you mean 'toy'?" in out.stderr
    assert out.stdout == ""


def test_signature_of_that_cannot_be_imported(tmp_path: Path) -> None:
    make_dist(tmp_path, "toy-bad-sig", "0.1", {"badsig": "toy_badsig_mod"}, {
        "toy_badsig_mod": PLUGIN.replace('"toy"', '"badsig"').replace(
            "toy_heavy_mod:ToyConnection", "toy_missing_mod:Conn"),
    })
    out = _run(["detectors", "badsig"], tmp_path)
    assert out.returncode == 2
    assert "'toy_missing_mod:Conn'" in out.stderr and "signature_of" in out.stderr


def test_misspelt_hook_is_listed_as_broken(tmp_path: Path) -> None:
    make_dist(tmp_path, "toy-typo-cli", "0.2", {"typocli": "toy_typocli_mod"}, {
        "toy_typocli_mod": PLUGIN.replace('"toy"', '"typocli"') + TYPO,
        "toy_heavy_mod": HEAVY,
    })
    out = _run(["detectors"], tmp_path)
    assert out.returncode == 2
    line = next(line for line in out.stdout.splitlines() if line.startswith("typocli"))
    assert "toy-typo-cli 0.2" in line and "BROKEN" in line
    assert "'libertem_live_detectors_more'" in line
