"""The kit's mode-neutral tests (results, faults, connection) once more in passive
mode: with an active harness they only exercise the active path."""
from __future__ import annotations

from typing import Iterator

import pytest

from libertem_live_testing.suite import TestConnection, TestFaults, TestResults  # noqa: F401

from test_conformance import MerlinHarness, _capabilities


class PassiveMerlinHarness(MerlinHarness):
    capabilities = _capabilities(passive=True, active=False, nav_shape_from_detector=True,
                                 nav_shape_can_be_unknown=True, short_stream=True,
                                 frames=True, sig_shape=(256, 256))


@pytest.fixture(scope="module")
def live_driver() -> Iterator[PassiveMerlinHarness]:
    with PassiveMerlinHarness() as harness:
        yield harness
