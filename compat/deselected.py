"""Upstream LiberTEM-live 0.3.0 tests the ``compat`` nox session does not run.

One list, each entry an upstream test node id (relative to the sdist's root),
its kind and the reason:

* ``internal``: the test exercises upstream internals that were never public
  API (``libertem_live.detectors.base.*``, the Rust extension modules, the
  Merlin simulator's internal classes); our packages are built differently.
* ``data``: the test needs a recording that ``compat/testdata.py`` does not
  write (the others it writes, so that upstream's data tests run).
* ``difference``: our behaviour deliberately differs; ``reason`` names the
  section of docs/upstream-differences.rst (by its ``ref`` label) that says why.

``compat/tests/test_deselected.py`` checks that every ``difference`` has its
section on that page.
"""
from __future__ import annotations

from typing import NamedTuple


class Deselected(NamedTuple):
    node_id: str
    kind: str  # "internal", "data" or "difference"
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
    Deselected("tests/detectors/dectris/test_dectris.py::test_context_manager_multi_block",
               "internal", "asserts on the private attribute conn._conn; that the connection "
               "is reusable across `with` blocks is in plugins/dectris/tests"),
    Deselected("tests/detectors/dectris/test_dectris.py::test_udf_sig", "data",
               "excludes pixels up to (511, 496), so it needs 512x512 frames; the recording "
               "written here has 128x128 frames to keep the session within CI's time. "
               "compat/tests/test_upstream_names.py runs the same CorrectionSet on a live "
               "DECTRIS acquisition"),
    Deselected("tests/detectors/merlin/test_merlin.py::test_small_shm", "internal",
               "swaps in a connection object of upstream's Rust extension libertem_qd_mpx "
               "through private attributes (conn._data_socket); our ring's back-pressure is "
               "tested in core/tests and plugins/merlin/tests"),
    Deselected("tests/detectors/merlin/test_merlin.py::test_get_tiles_comparison", "data",
               "needs upstream's ptycho recording (16384 frames of 256x256, 1 GiB), which "
               "compat/testdata.py does not write to keep CI's disk and time down; reading "
               "a flat nav shape live is covered by the kit's scenarios"),
    *(Deselected(f"tests/detectors/merlin/{name}", "difference",
                 "active mode on a connection that pairs the data port of one "
                 "simulator (free-running) with the control port of another; here active "
                 "mode starts the detector through the control port it was given",
                 "merlin-active-start")
      for name in ("test_merlin.py::test_acquisition", "test_merlin.py::test_process_partition",
                   "test_merlin.py::test_acquisition_dry_run",
                   "test_merlin.py::test_acquisition_iter", "test_merlin.py::test_acquisition_async",
                   "test_merlin_sim.py::test_acquisition_cached",
                   "test_merlin_sim.py::test_acquisition_memfd")),
    Deselected("tests/detectors/merlin/test_merlin.py::test_control", "difference",
               "changes COUNTERDEPTH while the acquisition it started runs; the simulator "
               "answers that SET with status 1 (busy). MerlinControl's bytes values and "
               "send_command_file are tested in compat/tests", "merlin-busy-settings"),
    Deselected("tests/detectors/merlin/test_server.py", "internal",
               "tests the Merlin simulator's internal server-thread classes (ServerThreadMixin, "
               "StopException)"),
]
