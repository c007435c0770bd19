"""DECTRIS SIMPLON detectors (ARINA, QUADRO, EIGER2) for libertem-live.

Registers the ``dectris`` driver through the ``libertem_live.detectors``
entry point; ``libertem_live.detectors.dectris`` imports resolve here.
"""
from __future__ import annotations

from typing import Any

from libertem_live.acquisition import LiveAcquisition
from libertem_live.plugin import PLUGIN_API_VERSION, DetectorInfo, hookimpl

#: upstream scripts import this name; every live acquisition is a LiveAcquisition
DectrisAcquisition = LiveAcquisition


def _open(**params: Any) -> Any:
    from libertem_live_dectris.connection import open_connection
    return open_connection(**params)


@hookimpl
def libertem_live_detectors() -> list[DetectorInfo]:
    return [DetectorInfo(
        name="dectris", open=_open, plugin_api=PLUGIN_API_VERSION,
        description="DECTRIS SIMPLON detectors (ARINA, QUADRO, EIGER2): REST + ZeroMQ stream",
        compat_module="libertem_live_dectris",
        parameters={"api_host": "DCU host", "api_port": "REST port (80)",
                    "data_host": "stream host", "data_port": "ZeroMQ port (9999)",
                    "timeout": "seconds without frames before an acquisition fails"},
    )]


def __getattr__(name: str) -> Any:
    if name == "DectrisConnection":
        from libertem_live_dectris.connection import DectrisConnection
        return DectrisConnection
    if name == "DectrisSim":
        from libertem_live_dectris.sim import DectrisSim
        return DectrisSim
    raise AttributeError(name)
