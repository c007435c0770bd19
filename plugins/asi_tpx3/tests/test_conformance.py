"""The shared conformance kit, run against the ASI TPX3 driver and Tpx3Sim."""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import pytest

from libertem_live_testing import Capabilities, DriverHarness, Scenario
from libertem_live_testing.suite import *  # noqa: F401,F403

from libertem_live_asi_tpx3.sim import Fault, Tpx3Sim

SIG = (32, 32)


class Tpx3Scenario(Scenario):
    """A simulator that sends one acquisition per trigger on every connection.

    ``short_by``: the first acquisition of the first connection is cancelled
    (AcquisitionEnd inside the scan) after ``nimages - short_by`` positions;
    chunks hold ``gcd(nimages, short_by)`` rows so the cut falls on a chunk
    boundary.
    """

    def __init__(self, nav_shape: tuple[int, ...], short_by: int) -> None:
        nav = tuple(nav_shape)
        if len(nav) == 1:
            nav = (1, nav[0])
        if len(nav) != 2:
            raise ValueError(f"TPX3 scans are 2-D, got nav_shape {nav_shape}")
        self.nav_shape = tuple(nav_shape)
        self.sig_shape = SIG
        self.nimages = math.prod(nav)
        fpc = math.gcd(self.nimages, short_by) if short_by else 8
        fault = {}
        if short_by:
            fault = dict(fault=Fault.CANCEL_MID_SCAN,
                         fault_chunk=(self.nimages - short_by) // fpc)
        self.sim = Tpx3Sim(nav_shape=nav, sig_shape=SIG, events_per_frame=12,
                           frames_per_chunk=fpc, wait_for_trigger=True,
                           acquisitions_per_connection=None, seed=self.nimages, **fault)
        self.sim.start()
        self.sim.wait_for_listen()

    def connection_params(self) -> dict[str, Any]:
        return {"data_host": "127.0.0.1", "data_port": self.sim.port, "timeout": 5.0}

    def arm_passive(self, conn: Any) -> None:
        self.sim.trigger()

    def expected_sum(self) -> np.ndarray:
        return self.sim.expected_sum()

    def frames(self) -> np.ndarray:
        frames = np.stack([self.sim.expected_frame(k) for k in range(self.nimages)])
        return frames.reshape(self.nav_shape + self.sig_shape)

    def close(self) -> None:
        self.sim.stop()


class Tpx3Harness(DriverHarness):
    name = "asi_tpx3"
    capabilities = Capabilities(passive=True, active=False, nav_shape_from_detector=True,
                                nav_shape_can_be_unknown=False, short_stream=True,
                                frames=True, sig_shape=SIG)

    def scenario(self, nav_shape: tuple[int, ...], *, short_by: int = 0,
                 announce_nav_shape: bool = True) -> Scenario:
        return Tpx3Scenario(nav_shape, short_by)


@pytest.fixture(scope="module")
def live_driver() -> Iterator[Tpx3Harness]:
    with Tpx3Harness() as harness:
        yield harness
