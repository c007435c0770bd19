"""Quantum Detectors Merlin (Medipix3, single chip and 2x2 quad) for libertem-live.

Registers the ``merlin`` driver through the ``libertem_live.detectors`` entry
point (:mod:`.plugin`); ``libertem_live.detectors.merlin`` imports resolve
here.  Importing this package is cheap: the driver (``connection``,
``receiver``, ``controller``), the control client and the simulator load on
first use of their names.
"""
from __future__ import annotations

from libertem_live.driver import lazy_names

from .errors import (MerlinBusyError, MerlinControlError, MerlinControlTimeout, MerlinError,
                     MerlinOutOfRangeError, MerlinProtocolError, MerlinUnknownCommandError)

_LAZY = {
    "MerlinConnection": "libertem_live_merlin.connection",
    "MerlinDetectorConnection": ("libertem_live_merlin.connection", "MerlinConnection"),
    "MerlinPending": "libertem_live_merlin.connection",
    "MerlinActiveController": "libertem_live_merlin.controller",
    "MerlinControl": "libertem_live_merlin.control",
    "ControlClient": "libertem_live_merlin.client",
    "MerlinDecoder": "libertem_live_merlin.decode",
    "MerlinSim": "libertem_live_merlin.sim",
    "CameraSim": "libertem_live_merlin.sim.camera_sim",
    "MerlinConnectionBuilder": "libertem_live_merlin.compat",
    # upstream scripts import this name; every live acquisition is a LiveAcquisition
    "MerlinAcquisition": ("libertem_live.driver", "LiveAcquisition"),
}


__all__ = [
    "MerlinError", "MerlinProtocolError", "MerlinControlError", "MerlinBusyError",
    "MerlinUnknownCommandError", "MerlinOutOfRangeError", "MerlinControlTimeout",
    *_LAZY,
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, also=__all__)
