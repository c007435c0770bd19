"""The shared conformance kit, run against the ASI TPX3 driver and Tpx3Sim."""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import pytest

from libertem_live.driver import Fault, FaultKind
from libertem_live_testing import Capabilities, DriverHarness, Scenario
from libertem_live_testing.suite import *  # noqa: F401,F403

from libertem_live_asi_tpx3.sim import INEXPRESSIBLE, SUPPORTED_FAULTS, Tpx3Sim

SIG = (32, 32)


class Tpx3Scenario(Scenario):
    """A simulator that sends one acquisition per trigger on every connection.

    ``short_by``: the first acquisition ends (ScanEnd, AcquisitionEnd) after
    ``nimages - short_by`` positions.  ``fault``: the first acquisition
    carries that fault (see ``libertem_live_asi_tpx3.sim.faults``); later
    ones are clean.
    """

    def __init__(self, nav_shape: tuple[int, ...], short_by: int,
                 fault: Fault | None) -> None:
        nav = tuple(nav_shape)
        if len(nav) == 1:
            nav = (1, nav[0])
        if len(nav) != 2:
            raise ValueError(f"TPX3 scans are 2-D, got nav_shape {nav_shape}")
        self.nav_shape = tuple(nav_shape)
        self.sig_shape = SIG
        self.nimages = math.prod(nav)
        if short_by:
            if fault is not None:
                raise ValueError("give short_by or fault, not both")
            fault = Fault(FaultKind.ENDS_SHORT, self.nimages - short_by)
        self.sim = Tpx3Sim(nav_shape=nav, sig_shape=SIG, events_per_frame=12,
                           frames_per_chunk=8, wait_for_trigger=True,
                           acquisitions_per_connection=None, seed=self.nimages, fault=fault)
        self.sim.start()
        self.sim.wait_for_listen()

    def connection_params(self) -> dict[str, Any]:
        return {"data_host": "127.0.0.1", "data_port": self.sim.port, "timeout": 3.0}

    def arm_passive(self, conn: Any) -> None:
        self.sim.trigger()

    def expected_sum(self) -> np.ndarray:
        return self.sim.expected_sum()

    def frames(self) -> np.ndarray:
        return self.sim.expected_frames().reshape(self.nav_shape + self.sig_shape)

    def close(self) -> None:
        self.sim.stop()


def _capabilities() -> Capabilities:
    return Capabilities(passive=True, active=False, nav_shape_from_detector=True,
                        nav_shape_can_be_unknown=False, short_stream=True, frames=True,
                        sig_shape=SIG, faults=SUPPORTED_FAULTS, inexpressible=INEXPRESSIBLE)


class Tpx3Harness(DriverHarness):
    name = "asi_tpx3"
    capabilities = _capabilities()

    def scenario(self, nav_shape: tuple[int, ...], *, short_by: int = 0,
                 announce_nav_shape: bool = True, fault: Fault | None = None) -> Scenario:
        return Tpx3Scenario(nav_shape, short_by, fault)


@pytest.fixture(scope="module")
def live_driver() -> Iterator[Tpx3Harness]:
    with Tpx3Harness() as harness:
        yield harness
