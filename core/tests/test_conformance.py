"""The conformance kit, run against the built-in memory driver."""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import pytest

from libertem_live.detectors.memory.receiver import INEXPRESSIBLE, SUPPORTED_FAULTS
from libertem_live.driver import Fault

from libertem_live_testing import Capabilities, DriverHarness, Scenario
from libertem_live_testing.suite import *  # noqa: F401,F403


class MemoryScenario(Scenario):
    """The "simulator" is the connection itself: the array and the fault are
    connection parameters (the fault hits the connection's first acquisition
    only, as the kit's contract asks)."""

    def __init__(self, nav_shape: tuple[int, ...], short_by: int, announce: bool,
                 fault: Fault | None = None):
        self.nav_shape = tuple(nav_shape)
        self.sig_shape = (16, 16)
        self.nimages = math.prod(self.nav_shape)
        rng = np.random.default_rng(self.nimages)
        self._data = rng.integers(0, 4096, size=self.nav_shape + self.sig_shape,
                                  dtype=np.uint16)
        self._short_by = short_by
        self._announce = announce
        self._fault = fault

    def connection_params(self) -> dict[str, Any]:
        return {
            "data": self._data,
            "truncate_after": self.nimages - self._short_by if self._short_by else None,
            "announce_nav_shape": self._announce,
            "frames_per_stack": 8,
            "timeout": 3.0 if (self._fault or self._short_by) else 5.0,
            "passive_count": 0,
            "fault": None if self._fault is None else str(self._fault),
        }

    def arm_passive(self, conn: Any) -> None:
        conn.announce()

    def expected_sum(self) -> np.ndarray:
        return self._data.reshape((-1,) + self.sig_shape).sum(axis=0, dtype=np.float64)

    def frames(self) -> np.ndarray:
        return self._data


class MemoryHarness(DriverHarness):
    name = "memory"
    capabilities = Capabilities(passive=True, active=True, nav_shape_from_detector=True,
                                short_stream=True, frames=True, faults=SUPPORTED_FAULTS,
                                inexpressible=INEXPRESSIBLE)

    def scenario(self, nav_shape: tuple[int, ...], *, short_by: int = 0,
                 announce_nav_shape: bool = True, fault: Fault | None = None) -> Scenario:
        return MemoryScenario(nav_shape, short_by, announce_nav_shape, fault)


@pytest.fixture(scope="module")
def live_driver() -> Iterator[MemoryHarness]:
    with MemoryHarness() as harness:
        yield harness
