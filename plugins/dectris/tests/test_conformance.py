"""The conformance kit against DectrisSim, over real HTTP and ZeroMQ sockets."""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import pytest

from libertem_live_testing import Capabilities, DriverHarness, Scenario
from libertem_live_testing.suite import *  # noqa: F401,F403

from libertem_live_dectris.sim import DectrisSim


class DectrisScenario(Scenario):
    def __init__(self, nav_shape: tuple[int, ...], short_by: int):
        self.nav_shape = tuple(nav_shape)
        self.sig_shape = (32, 32)
        self.nimages = math.prod(self.nav_shape)
        faults = [("end_early", self.nimages - short_by)] if short_by else None
        self.sim = DectrisSim(frames=self.nimages, shape=self.sig_shape, dtype="uint16",
                              compression="bslz4", faults=faults, pool_size=16).start()
        self.sim.wait_for_listen()

    def connection_params(self) -> dict[str, Any]:
        return {"api_host": "127.0.0.1", "api_port": self.sim.port,
                "data_host": "127.0.0.1", "data_port": self.sim.zmqport, "timeout": 10.0}

    def arm_passive(self, conn: Any) -> None:
        conn.get_api_client().sendDetectorCommand("arm")

    def active_controller(self, conn: Any) -> Any:
        return conn.get_active_controller(trigger_mode="exte", frame_time=1e-3)

    def expected_sum(self) -> np.ndarray:
        return self.sim.expected_sum(self.nimages)

    def frames(self) -> np.ndarray:
        stack = np.stack([self.sim.frame(k) for k in range(self.nimages)])
        return stack.reshape(self.nav_shape + self.sig_shape)

    def close(self) -> None:
        self.sim.stop()


class DectrisHarness(DriverHarness):
    name = "dectris"
    capabilities = Capabilities(passive=True, active=True, nav_shape_from_detector=False,
                                nav_shape_can_be_unknown=True, short_stream=True, frames=True)

    def scenario(self, nav_shape: tuple[int, ...], *, short_by: int = 0,
                 announce_nav_shape: bool = True) -> Scenario:
        return DectrisScenario(nav_shape, short_by)


@pytest.fixture(scope="module")
def live_driver() -> Iterator[DectrisHarness]:
    with DectrisHarness() as harness:
        yield harness
