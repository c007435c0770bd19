"""Registers the ``merlin`` driver; imports nothing heavy (listing the
installed drivers must not start numba)."""
from __future__ import annotations

from typing import Any

from libertem_live.driver import DetectorInfo, hookimpl


def open_connection(**params: Any) -> Any:
    from libertem_live_merlin.connection import MerlinConnection
    return MerlinConnection(**params)


@hookimpl
def libertem_live_detectors() -> list[DetectorInfo]:
    return [DetectorInfo(
        name="merlin", open=open_connection, plugin_api=1,  # the core plugin API this driver was written for
        description="Quantum Detectors Merlin (Medipix3, incl. 2x2 quad): MPX over TCP",
        compat_module="libertem_live_merlin",
        simulator="libertem_live_merlin.sim.__main__:main",
        signature_of="libertem_live_merlin.connection:MerlinConnection",
        parameters={"api_host": "Merlin PC host (control)", "api_port": "control port (6341)",
                    "data_host": "Merlin PC host (data)", "data_port": "data port (6342)",
                    "timeout": "seconds without data before an acquisition fails",
                    "reconnect_timeout": "seconds to keep retrying a lost connection",
                    "control_timeout": "seconds a control command may take",
                    "drain": "seconds to discard data after connecting (old Merlin software)",
                    "ring": "RingConfig of the shared-memory ring frames are received into",
                    "rcvbuf": "socket receive buffer in bytes (None: the system's)",
                    "dummy_suffix": "send GET,NAME,0 as upstream does",
                    "short_replies": "talk to upstream's simulator (reply lengths one short)",
                    "buffer_size": "MiB of shared memory per acquisition (None: 128)"},
    )]
