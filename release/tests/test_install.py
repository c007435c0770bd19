"""Install from a package index, as users will: each driver alone in a fresh
virtual environment pulls core and no other driver, lists itself and
``memory``, and gets its simulator's ground truth from one acquisition; the
kit alone gives the pytest plugin.  Nothing of the checkout is on the path.

The three driver environments are made two at a time (the CI machine has two
cores; numba compiles each driver's kernels afresh in a fresh environment)."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from _release import DRIVERS, ROOT, Index, Venv, normalize

CORE = "libertem-live-core"
OURS = {CORE, "libertem-live-testing", "libertem-live-dashboard", *DRIVERS.values()}


@dataclass
class DriverRun:
    """What one driver's fresh environment showed (or the error that stopped it)."""

    installed: dict[str, str] = field(default_factory=dict)
    listing: str = ""
    ground_truth: str = ""
    error: BaseException | None = None
    seconds: float = 0.0


def _try_driver(uv: str, index: Index, tmp: Path, name: str) -> DriverRun:
    run = DriverRun()
    start = time.monotonic()
    try:
        venv = Venv(uv, tmp / f"venv-{name}", tmp / f"cwd-{name}")
        venv.install(index, DRIVERS[name])
        run.installed = venv.installed()
        run.listing = venv.run("libertem-live", "detectors").stdout
        run.ground_truth = venv.run_script(f"gt_{name}.py", str(ROOT))
    except BaseException as e:  # noqa: BLE001 - reported by the test of this driver
        run.error = e
    run.seconds = time.monotonic() - start
    return run


@pytest.fixture(scope="module")
def driver_runs(uv: str, index: Index,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, DriverRun]:
    tmp = tmp_path_factory.mktemp("drivers")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(_try_driver, uv, index, tmp, name) for name in DRIVERS}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("name", list(DRIVERS))
def test_driver_alone_from_the_index(driver_runs: dict[str, DriverRun], name: str) -> None:
    run = driver_runs[name]
    if run.error is not None:
        raise run.error
    ours = {n for n in run.installed if n in OURS}
    assert ours == {CORE, DRIVERS[name]}, f"installing {DRIVERS[name]} brought {sorted(ours)}"
    assert normalize("libertem") in run.installed  # the third-party stack came along
    listed = sorted(line.split()[0] for line in run.listing.splitlines() if line.strip())
    assert listed == sorted([name, "memory"]), run.listing
    assert run.ground_truth.startswith(f"OK {name}"), run.ground_truth
    print(f"{name}: environment, listing and ground truth in {run.seconds:.1f} s")


def test_kit_alone_from_the_index(make_venv, index: Index) -> None:
    venv = make_venv("kit")
    venv.install(index, "libertem-live-testing")
    ours = {n for n in venv.installed() if n in OURS}
    assert ours == {CORE, "libertem-live-testing"}, sorted(ours)
    # the pytest plugin is found through its entry point (no -p needed) and loads
    (venv.cwd / "test_probe.py").write_text(
        "import sys\n\n"
        "import libertem_live_testing\n\n\n"
        "def test_kit_is_the_installed_one():\n"
        "    assert libertem_live_testing.__file__.startswith(sys.prefix)\n")
    out = venv.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "--fixtures", "test_probe.py").stdout
    assert "live_ctx" in out and "libertem_live_testing" in out, out
    venv.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_probe.py")
