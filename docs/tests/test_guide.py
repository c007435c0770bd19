"""The user guide's examples run: Sphinx's own doctest builder executes every
``testsetup`` / ``testcode`` / ``testoutput`` / ``testcleanup`` block of
``docs/guide/`` against the drivers' simulators, with the semantics the pages
are written for (one namespace per page, output compared with ellipsis)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
GUIDE = DOCS / "guide"


def _pages_with_examples() -> set[str]:
    return {p.stem for p in GUIDE.glob("*.rst") if ".. testcode::" in p.read_text()}


def _doctrees(tmp_path: Path) -> Path:
    """The parsed pages of the html build that ``nox -s docs`` ran just before
    (Sphinx shares them between builders, as its own Makefile does), which
    saves reading every page again; a fresh folder when run on its own."""
    built = Path(sys.prefix) / "tmp" / "html" / ".doctrees"
    return built if (built / "environment.pickle").exists() else tmp_path / "doctrees"


def test_guide_examples_run_as_doctests(tmp_path: Path) -> None:
    out = tmp_path / "doctest"
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "doctest", "-q", "-d", str(_doctrees(tmp_path)),
         str(DOCS), str(out)],
        capture_output=True, text=True, timeout=600,
    )
    report = (out / "output.txt").read_text() if (out / "output.txt").exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + report
    summary = re.search(r"(\d+) tests?\s+(\d+) failures? in tests\s+(\d+) failures? in setup code"
                        r"\s+(\d+) failures? in cleanup code", report)
    assert summary, report
    tests, failed, setup_failed, cleanup_failed = map(int, summary.groups())
    assert (failed, setup_failed, cleanup_failed) == (0, 0, 0), report
    ran = set(re.findall(r"^Document: guide/(\w+)$", report, flags=re.M))
    assert ran >= _pages_with_examples(), (ran, report)
    assert tests >= 20, report
