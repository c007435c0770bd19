"""The DECTRIS driver's declaration for the conformance kit: a scenario is
a DectrisSim serving stream V1 or V2 (one harness class each), reached over
real HTTP and ZeroMQ sockets.  ``test_conformance.py`` and
``test_conformance_v2.py`` run the kit's suite with them."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from libertem_live.driver import Fault, FaultKind
from libertem_live_testing import Capabilities, DriverHarness, Scenario

from libertem_live_dectris.sim import DectrisSim
from libertem_live_dectris.sim.faults import INEXPRESSIBLE, SUPPORTED_FAULTS


class DectrisScenario(Scenario):
    def __init__(self, nav_shape: tuple[int, ...], short_by: int, fault: Fault | None,
                 stream: str):
        self.nav_shape = tuple(nav_shape)
        self.sig_shape = (32, 32)
        self.nimages = math.prod(self.nav_shape)
        if short_by:
            fault = Fault(FaultKind.ENDS_SHORT, self.nimages - short_by)
        self.fault = fault
        self.stream = stream
        self.sim = DectrisSim(frames=self.nimages, shape=self.sig_shape, dtype="uint16",
                              compression="bslz4", fault=fault, pool_size=16,
                              stream=stream).start()
        self.sim.wait_for_listen()

    def connection_params(self) -> dict[str, Any]:
        # fault cases end within the timeout (+ a little); clean ones never wait for it
        timeout = 3.0 if self.fault is not None else 10.0
        params = {"api_host": "127.0.0.1", "api_port": self.sim.port, "data_host": "127.0.0.1",
                  "data_port": self.sim.zmqport, "timeout": timeout}
        if self.stream == "v2":
            params.update(stream="v2", data_port=self.sim.v2_port, channel="threshold_1")
        return params

    def arm_passive(self, conn: Any) -> None:
        """What scan software does before a scan: a detector still busy with
        the previous series (one a failed run left sending) is disarmed
        first, then armed."""
        api = conn.get_api_client()
        if api.detectorStatus("state")["value"] != "idle":
            api.sendDetectorCommand("disarm")
        api.sendDetectorCommand("arm")

    def active_controller_params(self) -> dict[str, Any]:
        return {"trigger_mode": "exte", "frame_time": 1e-3}

    def expected_sum(self) -> np.ndarray:
        return self.sim.expected_sum(self.nimages)

    def frames(self) -> np.ndarray:
        stack = np.stack([self.sim.frame(k) for k in range(self.nimages)])
        return stack.reshape(self.nav_shape + self.sig_shape)

    def close(self) -> None:
        self.sim.stop()


class DectrisHarness(DriverHarness):
    """Stream V1 (the default a connection opens)."""

    name = "dectris"
    stream = "legacy"
    capabilities = Capabilities(passive=True, active=True, nav_shape_from_detector=False,
                                nav_shape_can_be_unknown=True, short_stream=True, frames=True,
                                faults=SUPPORTED_FAULTS, inexpressible=INEXPRESSIBLE)

    def scenario(self, nav_shape: tuple[int, ...], *, short_by: int = 0,
                 announce_nav_shape: bool = True, fault: Fault | None = None) -> Scenario:
        return DectrisScenario(nav_shape, short_by, fault, self.stream)


class DectrisV2Harness(DectrisHarness):
    """Stream V2 (CBOR): the same declaration, the same scenarios."""

    stream = "v2"
