"""Upstream LiberTEM-live 0.3.0 tests the ``compat`` nox session does not run.

One list, each entry an upstream test node id (relative to the sdist's root),
its kind and the reason:

* ``internal``: the test exercises upstream internals that were never public
  API (``libertem_live.detectors.base.*``, the Rust extension modules, the
  Merlin simulator's internal classes); our packages are built differently.
* ``difference``: our behaviour deliberately differs; ``reason`` names the
  section of docs/upstream-differences.rst (by its ``ref`` label) that says why.

``compat/tests/test_deselected.py`` checks that every ``difference`` has its
section on that page.
"""
from __future__ import annotations

from typing import NamedTuple


class Deselected(NamedTuple):
    node_id: str
    kind: str  # "internal" or "difference"
    reason: str
    ref: str | None = None  # label on docs/upstream-differences.rst (kind "difference")


_BASE = "libertem_live.detectors.base is upstream's internal base-class module, not public API"

DESELECTED: list[Deselected] = [
    Deselected("tests/detectors/base/test_base.py", "internal",
               _BASE + "; our nav-shape rules are tested in core/tests (navshape)"),
    Deselected("tests/test_smoke.py", "internal",
               "imports " + _BASE + " (and upstream's per-detector acquisition modules)"),
    Deselected("tests/detectors/merlin/test_headers.py", "internal",
               "tests upstream's Rust extension libertem_qd_mpx (QdAcquisitionHeader); our "
               "Merlin header parsing is tested in plugins/merlin/tests"),
    Deselected("tests/detectors/merlin/test_merlin_mockds.py", "internal",
               "imports the Merlin simulator's internal classes DataSocketSimulator and "
               "CachedDataSocketSim (and upstream's module layout, merlin.control); acquiring "
               "from a MIB series over TCP is covered by plugins/merlin/tests (the kit against "
               "MerlinSim, and test_upstream_cli.py for upstream's simulator command)"),
    Deselected("tests/detectors/dectris/test_mocked.py::test_context_manager_multi_block",
               "internal", "asserts on the private attribute conn._conn; that the connection "
               "is reusable across `with` blocks is in plugins/dectris/tests"),
    Deselected("tests/detectors/dectris/test_mocked.py::test_passive_acquisition", "difference",
               "asserts series id 34 on every arm of upstream's mock simulator", "series-ids"),
    Deselected("tests/detectors/dectris/test_mocked.py::test_cancellation", "difference",
               "asserts series id 34 on every arm, and runs a passive acquisition whose nav_shape "
               "(32x33) does not match the images announced (1024), expecting UDFRunCancelled",
               "passive-nav-shape"),
    Deselected("tests/detectors/merlin/test_server.py", "internal",
               "tests the Merlin simulator's internal server-thread classes (ServerThreadMixin, "
               "StopException)"),
]
