"""The conformance kit against MerlinSim, over real TCP sockets (control + data)."""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import pytest

from libertem_live_testing import Capabilities, DriverHarness, Scenario
from libertem_live_testing.suite import *  # noqa: F401,F403

from libertem_live_merlin.faults import Fault, FaultKind
from libertem_live_merlin.sim import MerlinSim


class MerlinScenario(Scenario):
    """12-bit raw single chip: the format that exercises the most decoding."""

    def __init__(self, nav_shape: tuple[int, ...], short_by: int, announce: bool):
        self.nav_shape = tuple(nav_shape)
        self.sig_shape = (256, 256)
        self.nimages = math.prod(self.nav_shape)
        scan = self.nav_shape if (announce and len(self.nav_shape) == 2) else None
        self.sim = MerlinSim(frames=self.nimages, scan_shape=scan, counter_depth=12,
                             raw=True, pool_size=8).start()
        self.short_by = short_by
        if short_by:
            self._arm_fault()

    def _arm_fault(self) -> None:
        # no more frames after nimages - short_by, the connection stays open
        self.sim.inject_fault(Fault(FaultKind.ABORT_AFTER, self.nimages - self.short_by))

    def connection_params(self) -> dict[str, Any]:
        # short timeout: the aborted acquisition must fail fast in the short_stream tests
        return {"api_host": "127.0.0.1", "api_port": self.sim.control_port,
                "data_host": "127.0.0.1", "data_port": self.sim.data_port,
                "timeout": 3.0 if self.short_by else 15.0}

    def arm_passive(self, conn: Any) -> None:
        conn.get_control().cmd("STARTACQUISITION")

    def active_controller(self, conn: Any) -> Any:
        if self.short_by:
            self._arm_fault()  # frame_format() below must not be what consumes it
        return conn.get_active_controller(soft_trigger=True)

    def expected_sum(self) -> np.ndarray:
        return self.sim.expected_sum(self.nimages)

    def frames(self) -> np.ndarray:
        stack = np.stack([self.sim.frame(k) for k in range(self.nimages)])
        return stack.reshape(self.nav_shape + self.sig_shape)

    def close(self) -> None:
        self.sim.stop()


class MerlinHarness(DriverHarness):
    name = "merlin"
    capabilities = Capabilities(passive=True, active=True, nav_shape_from_detector=True,
                                nav_shape_can_be_unknown=True, short_stream=True, frames=True,
                                sig_shape=(256, 256))

    def scenario(self, nav_shape: tuple[int, ...], *, short_by: int = 0,
                 announce_nav_shape: bool = True) -> Scenario:
        return MerlinScenario(nav_shape, short_by, announce_nav_shape)


@pytest.fixture(scope="module")
def live_driver() -> Iterator[MerlinHarness]:
    with MerlinHarness() as harness:
        yield harness

