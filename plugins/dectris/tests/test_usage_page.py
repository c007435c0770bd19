"""The usage page (the acceptance spec) runs as doctests against DectrisSim,
every block unchanged, with Sphinx doctest's semantics: all testsetup
blocks first, then every testcode block in order with its testoutput, in one
namespace, ``HAVE_DECTRIS_TESTDATA`` true and ``DECTRIS_TESTDATA_PATH`` naming
a 16384-image recording made by our simulator."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from libertem_live_testing import rstdoc

from libertem_live_dectris.sim import write_dump


def _usage_page() -> Path:
    page = rstdoc.find_usage_page()
    if page is None:
        pytest.skip("shared/spec/usage.rst not found (set LIBERTEM_LIVE_SHARED)")
    return page


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dectris") / "zmqdump.dat.128x128-exte-bslz4"
    write_dump(path, frames=16384, shape=(64, 64), dtype="uint16", compression="bslz4",
               series=34, pool_size=32)
    return path


def test_usage_page_as_doctests(recording: Path) -> None:
    page = _usage_page()
    blocks = rstdoc.parse(page.read_text())
    ns = {"HAVE_DECTRIS_TESTDATA": True, "DECTRIS_TESTDATA_PATH": str(recording),
          "__name__": "usage"}
    try:
        log = rstdoc.run(blocks, ns, source=str(page))
    finally:
        server = ns.get("server")
        if server is not None:
            server.stop()
    assert not [line for line in log if "skipped" in line], log
    assert len([line for line in log if line.startswith("testcode")]) == 9
    recorded = np.load(ns["filename"])
    assert recorded.shape == (128, 128, 64, 64)
    truth = np.load(str(recording) + ".sum.npy")
    assert np.array_equal(recorded.sum(axis=(0, 1), dtype=np.float64), truth)
