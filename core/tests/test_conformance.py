"""The conformance kit, run against the built-in memory driver."""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import pytest

from libertem_live_testing import Capabilities, DriverHarness, Scenario
from libertem_live_testing.suite import *  # noqa: F401,F403


class MemoryScenario(Scenario):
    def __init__(self, nav_shape: tuple[int, ...], short_by: int, announce: bool):
        self.nav_shape = tuple(nav_shape)
        self.sig_shape = (16, 16)
        self.nimages = math.prod(self.nav_shape)
        rng = np.random.default_rng(self.nimages)
        self._data = rng.integers(0, 4096, size=self.nav_shape + self.sig_shape,
                                  dtype=np.uint16)
        self._short_by = short_by
        self._announce = announce

    def connection_params(self) -> dict[str, Any]:
        return {
            "data": self._data,
            "truncate_after": self.nimages - self._short_by if self._short_by else None,
            "announce_nav_shape": self._announce,
            "frames_per_stack": 8,
            "timeout": 5.0,
            "passive_count": 0,
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
                                short_stream=True, frames=True)

    def scenario(self, nav_shape: tuple[int, ...], *, short_by: int = 0,
                 announce_nav_shape: bool = True) -> Scenario:
        return MemoryScenario(nav_shape, short_by, announce_nav_shape)


@pytest.fixture(scope="module")
def live_driver() -> Iterator[MemoryHarness]:
    with MemoryHarness() as harness:
        yield harness
