"""Quantum Detectors Merlin (Medipix3, single chip and 2x2 quad) for libertem-live.

Registers the ``merlin`` driver through the ``libertem_live.detectors`` entry
point; ``libertem_live.detectors.merlin`` imports resolve here.  The wire
layer (``mpx``, ``headers``, ``decode``, ``control``, ``sim``) does not need
the core; the driver modules (``connection``, ``receiver``, ``controller``)
are imported lazily so that registering the plugin stays cheap.
"""
from __future__ import annotations

from typing import Any

from libertem_live.acquisition import LiveAcquisition
from libertem_live.plugin import PLUGIN_API_VERSION, DetectorInfo, hookimpl

from .errors import (DecodeError, MerlinBusyError, MerlinConnectionClosed,
                     MerlinControlError, MerlinError, MerlinOutOfRangeError,
                     MerlinProtocolError, MerlinStopped, MerlinTimeout,
                     MerlinTruncatedError, MerlinUnknownCommandError)

#: upstream scripts import this name; every live acquisition is a LiveAcquisition
MerlinAcquisition = LiveAcquisition


def _open(**params: Any) -> Any:
    from libertem_live_merlin.connection import open_connection
    return open_connection(**params)


@hookimpl
def libertem_live_detectors() -> list[DetectorInfo]:
    return [DetectorInfo(
        name="merlin", open=_open, plugin_api=PLUGIN_API_VERSION,
        description="Quantum Detectors Merlin (Medipix3, incl. 2x2 quad): MPX over TCP",
        compat_module="libertem_live_merlin",
        parameters={"api_host": "Merlin PC host (control)", "api_port": "control port (6341)",
                    "data_host": "Merlin PC host (data)", "data_port": "data port (6342)",
                    "timeout": "seconds without data before an acquisition fails",
                    "reconnect_timeout": "seconds to keep retrying a lost connection"},
    )]


def __getattr__(name: str) -> Any:
    if name == "MerlinDetectorConnection" or name == "MerlinConnection":
        from libertem_live_merlin.connection import MerlinConnection
        return MerlinConnection
    if name == "MerlinActiveController":
        from libertem_live_merlin.controller import MerlinActiveController
        return MerlinActiveController
    if name == "MerlinControl":
        from libertem_live_merlin.control import MerlinControl
        return MerlinControl
    if name in ("MerlinSim", "CameraSim"):
        from libertem_live_merlin.sim import MerlinSim
        return MerlinSim
    raise AttributeError(name)


__all__ = [
    "MerlinAcquisition", "DecodeError", "MerlinBusyError", "MerlinConnectionClosed",
    "MerlinControlError", "MerlinError", "MerlinOutOfRangeError", "MerlinProtocolError",
    "MerlinStopped", "MerlinTimeout", "MerlinTruncatedError", "MerlinUnknownCommandError",
]
