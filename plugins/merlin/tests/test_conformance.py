"""The conformance kit against MerlinSim, over real TCP sockets (control + data)."""
from __future__ import annotations

import math
from typing import Any, Iterator, Optional

import numpy as np
import pytest

from libertem_live.driver import Fault, FaultKind
from libertem_live_testing import Capabilities, DriverHarness, Scenario
from libertem_live_testing.suite import *  # noqa: F401,F403

from libertem_live_merlin.sim import INEXPRESSIBLE, SUPPORTED_FAULTS, MerlinSim


class MerlinScenario(Scenario):
    """12-bit raw single chip: the format that exercises the most decoding.

    A fault (or ``short_by``, which is ``ends_short`` that many frames before
    the end) applies to the first acquisition the simulator serves."""

    def __init__(self, nav_shape: tuple[int, ...], short_by: int, announce: bool,
                 fault: Optional[Fault] = None):
        self.nav_shape = tuple(nav_shape)
        self.sig_shape = (256, 256)
        self.nimages = math.prod(self.nav_shape)
        scan = self.nav_shape if (announce and len(self.nav_shape) == 2) else None
        if fault is None and short_by:
            fault = Fault(FaultKind.ENDS_SHORT, self.nimages - short_by)
        self.fault = fault
        self.sim = MerlinSim(frames=self.nimages, scan_shape=scan, counter_depth=12,
                             raw=True, pool_size=8, fault=fault).start()

    def connection_params(self) -> dict[str, Any]:
        # short timeout: the faulty acquisition must fail fast
        return {"api_host": "127.0.0.1", "api_port": self.sim.control_port,
                "data_host": "127.0.0.1", "data_port": self.sim.data_port,
                "timeout": 3.0 if self.fault is not None else 15.0}

    def arm_passive(self, conn: Any) -> None:
        # what the external software does: wait for the detector to be idle, start
        assert self.sim.wait_idle(10), "the simulator is still busy with the last acquisition"
        conn.get_control().cmd("STARTACQUISITION")

    def active_controller_params(self) -> dict[str, Any]:
        return {"soft_trigger": True}

    def expected_sum(self) -> np.ndarray:
        return self.sim.expected_sum(self.nimages)

    def frames(self) -> np.ndarray:
        stack = np.stack([self.sim.frame(k) for k in range(self.nimages)])
        return stack.reshape(self.nav_shape + self.sig_shape)

    def close(self) -> None:
        self.sim.stop()


def _capabilities(**kw: Any) -> Capabilities:
    return Capabilities(faults=SUPPORTED_FAULTS, inexpressible=INEXPRESSIBLE, **kw)


class MerlinHarness(DriverHarness):
    name = "merlin"
    capabilities = _capabilities(passive=True, active=True, nav_shape_from_detector=True,
                                 nav_shape_can_be_unknown=True, short_stream=True,
                                 frames=True, sig_shape=(256, 256))

    def scenario(self, nav_shape: tuple[int, ...], *, short_by: int = 0,
                 announce_nav_shape: bool = True, fault: Optional[Fault] = None) -> Scenario:
        return MerlinScenario(nav_shape, short_by, announce_nav_shape, fault)


@pytest.fixture(scope="module")
def live_driver() -> Iterator[MerlinHarness]:
    with MerlinHarness() as harness:
        yield harness
