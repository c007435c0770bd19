"""Registers the DECTRIS driver; imports nothing heavy (listing drivers stays cheap)."""
from __future__ import annotations

from typing import Any

from libertem_live.driver import DetectorInfo, hookimpl


def open_connection(**params: Any) -> Any:
    from libertem_live_dectris.connection import DectrisConnection
    return DectrisConnection(**params)


@hookimpl
def libertem_live_detectors() -> list[DetectorInfo]:
    return [DetectorInfo(
        name="dectris", open=open_connection, plugin_api=1,  # the core plugin API this driver was written for
        description="DECTRIS SIMPLON detectors (ARINA, QUADRO, EIGER2): REST + ZeroMQ stream",
        compat_module="libertem_live_dectris",
        simulator="libertem_live_dectris.sim.__main__:main",
        parameters={"api_host": "DCU host", "api_port": "REST port (80)",
                    "data_host": "stream host", "data_port": "ZeroMQ port (9999)",
                    "timeout": "seconds without frames before an acquisition fails",
                    "api_timeout": "seconds a REST request may take",
                    "ring": "RingConfig of the shared-memory ring frames are received into"},
    )]
