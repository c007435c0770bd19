"""Versions that say what works with what (docs/releasing.rst), tested from
wheels in fresh environments: a driver against the newest core its range
allows, a core outside the range refused by the resolver, and a driver written
for another plugin API refused at load time naming the distribution to upgrade."""
from __future__ import annotations

import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from _release import ROOT, Built, Index, make_index

IN_RANGE, OUT_OF_RANGE = "0.1.99", "0.2.0"
DRIVER = "merlin"  # the driver whose conformance suite runs against the bumped core
#: a narrow part of the kit's suite: discovery, and one passive and one active run
CONFORMANCE_SUBSET = ("test_driver_is_registered or test_make_connection_finds_driver "
                      "or test_pending_acquisition_and_sum "
                      "or test_ready_for_data_called_once_per_run")


def _build(uv: str, source: Path, out: Path) -> Path:
    proc = subprocess.run([uv, "build", "--wheel", "--quiet", "--no-config", "--out-dir",
                           str(out), str(source)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"building {source} failed:\n{proc.stdout}\n{proc.stderr}"
    (wheel,) = out.glob("*.whl")
    return wheel


def _core_at(uv: str, version: str, tmp: Path) -> Path:
    """A wheel of core as it is now, but at ``version`` (built from a copy)."""
    src = tmp / f"core-{version}"
    shutil.copytree(ROOT / "core", src, ignore=shutil.ignore_patterns(
        "__pycache__", "*.egg-info", "build", "dist", "tests", "*.nbi", "*.nbc"))
    pyproject = src / "pyproject.toml"
    text, n = re.subn(r'(?m)^version = "[^"]*"$', f'version = "{version}"',
                      pyproject.read_text())
    assert n == 1, "core's pyproject.toml has no single version line"
    pyproject.write_text(text)
    return _build(uv, src, tmp / f"wheel-{version}")


@pytest.fixture(scope="module")
def bumped_cores(uv: str, dists: list[Built],
                 tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("cores")
    with ThreadPoolExecutor(max_workers=2) as pool:
        wheels = {v: pool.submit(_core_at, uv, v, tmp) for v in (IN_RANGE, OUT_OF_RANGE)}
        return {v: f.result() for v, f in wheels.items()}


def _wheel(dists: list[Built], project: str) -> Path:
    (path,) = [d.path for d in dists if d.project == project and d.kind == "wheel"]
    return path


def _index(tmp: Path, *files: Path) -> Index:
    return make_index(list(files), tmp / "simple")


def test_driver_runs_against_newest_core_of_its_range(
        make_venv, bumped_cores: dict[str, Path], dists: list[Built], tmp_path: Path) -> None:
    index = _index(tmp_path, bumped_cores[IN_RANGE], _wheel(dists, f"libertem-live-{DRIVER}"),
                   _wheel(dists, "libertem-live-testing"))
    venv = make_venv("in-range")
    venv.install(index, f"libertem-live-{DRIVER}", "libertem-live-testing")
    installed = venv.installed()
    assert installed["libertem-live-core"] == IN_RANGE, installed
    listing = venv.run("libertem-live", "detectors").stdout
    assert any(line.split()[:2] == [DRIVER, f"libertem-live-{DRIVER}"]
               for line in listing.splitlines()), listing
    # the driver's own conformance module, copied beside nothing else
    shutil.copy2(ROOT / "plugins" / DRIVER / "tests" / "test_conformance.py",
                 venv.cwd / "test_conformance.py")
    proc = venv.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                    "--live-executor", "inline", "-k", CONFORMANCE_SUBSET,
                    "test_conformance.py", timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"\b4 passed\b", proc.stdout), proc.stdout


def test_core_outside_the_range_is_refused_by_the_resolver(
        make_venv, bumped_cores: dict[str, Path], dists: list[Built], tmp_path: Path) -> None:
    index = _index(tmp_path, bumped_cores[OUT_OF_RANGE],
                   _wheel(dists, f"libertem-live-{DRIVER}"))
    venv = make_venv("out-of-range")
    proc = venv.install(index, f"libertem-live-{DRIVER}", check=False)
    assert proc.returncode != 0, "a driver for core 0.1 installed beside core 0.2.0"
    message = " ".join((proc.stdout + proc.stderr).split())
    assert "libertem-live-core" in message and OUT_OF_RANGE in message, message
    assert "<0.2" in message, message
    assert "libertem-live-core" not in venv.installed()


TOY_PYPROJECT = """\
[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "libertem-live-toyfuture"
version = "1.0.0"
requires-python = ">=3.11"
dependencies = ["libertem-live-core>=0.1,<0.2"]

[project.entry-points."libertem_live.detectors"]
toyfuture = "libertem_live_toyfuture.plugin"
"""

TOY_PLUGIN = """\
from libertem_live.driver import PLUGIN_API_VERSION, DetectorInfo, hookimpl


def _open(**params):
    raise AssertionError("an incompatible driver must never be opened")


@hookimpl
def libertem_live_detectors():
    return [DetectorInfo(name="toyfuture", open=_open, plugin_api=PLUGIN_API_VERSION + 1,
                         description="written for the next plugin API")]
"""


def test_driver_for_another_plugin_api_is_refused_at_load_time(
        make_venv, uv: str, dists: list[Built], tmp_path: Path) -> None:
    src = tmp_path / "toy"
    pkg = src / "src" / "libertem_live_toyfuture"
    pkg.mkdir(parents=True)
    (src / "pyproject.toml").write_text(TOY_PYPROJECT)
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text(TOY_PLUGIN)
    toy = _build(uv, src, tmp_path / "toy-wheel")
    index = _index(tmp_path, toy, _wheel(dists, "libertem-live-core"))
    venv = make_venv("toy")
    venv.install(index, "libertem-live-toyfuture")

    listing = venv.run("libertem-live", "detectors", check=False)
    assert listing.returncode == 2, listing
    row = next(line for line in listing.stdout.splitlines() if line.startswith("toyfuture"))
    assert "INCOMPATIBLE" in row and "plugin API version" in row, row
    assert "install a version of libertem-live-toyfuture made for this core" in row, row
    memory = next(line for line in listing.stdout.splitlines() if line.startswith("memory"))
    assert "INCOMPATIBLE" not in memory and "BROKEN" not in memory, memory

    shown = venv.run("libertem-live", "detectors", "toyfuture", check=False)
    assert shown.returncode == 2, shown
    assert "libertem-live-toyfuture" in shown.stderr and "made for this core" in shown.stderr
