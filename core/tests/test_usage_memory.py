"""The usage page's passive, active, hooks and nav-shape examples, run
against the memory driver with only the connection line and the
DECTRIS-specific arm command changed (acceptance of the core issue)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from libertem_live_testing import rstdoc


def _usage_page() -> Path:
    page = rstdoc.find_usage_page()
    if page is None:
        pytest.skip("shared/spec/usage.rst not found (set LIBERTEM_LIVE_SHARED)")
    return page


_OPEN = re.compile(r"ctx\.make_connection\('dectris'\)\.open\((?:[^()]|\([^()]*\))*\)", re.S)
_ARM = re.compile(r"^\s*(ec = conn\.get_api_client\(\)|ec\.sendDetectorCommand\('arm'\))\s*$",
                  re.M)

SETUP = """
import numpy as np
DATA = np.random.default_rng(0).integers(0, 100, size=(128, 128, 16, 16), dtype=np.uint16)

class MockMic:
    def trigger_scan(self, width, height, dwelltime):
        self.triggered = (width, height, dwelltime)

microscope = MockMic()
"""


def _to_memory(block: rstdoc.Block) -> str:
    if "DectrisSim" in block.code:
        return SETUP
    code = _OPEN.sub("ctx.make_connection('memory').open(data=DATA)", block.code)
    return _ARM.sub("", code)


def test_usage_examples_on_memory_driver() -> None:
    page = _usage_page()
    blocks = rstdoc.parse(page.read_text())
    changed = [b for b in blocks if _to_memory(b) != b.code]
    assert len(changed) >= 8, "the page's connection lines were not found"
    ns = {"HAVE_DECTRIS_TESTDATA": True, "__name__": "usage"}
    log = rstdoc.run(blocks, ns, source=str(page), transform=_to_memory)
    assert not any("skipped" in line for line in log)
    assert ns["microscope"].triggered == (128, 128, 10e-6)
    assert tuple(ns["aq"].shape.nav) == (128, 128)
    expected = ns["DATA"].astype(np.uint16)
    recorded = np.load(ns["filename"])
    assert np.array_equal(recorded, expected)
