"""DECTRIS SIMPLON detectors (ARINA, QUADRO, EIGER2) for libertem-live.

The driver registers through the ``libertem_live.detectors`` entry point
(:mod:`.plugin`); ``libertem_live.detectors.dectris`` imports resolve to this
package.  Public names load on first use, so that listing drivers does not
import ZeroMQ or numba.
"""
from __future__ import annotations

from libertem_live.driver import lazy_names

_LAZY = {
    "DectrisConnection": "libertem_live_dectris.connection",
    "DectrisPending": "libertem_live_dectris.connection",
    "DectrisActiveController": "libertem_live_dectris.controller",
    "SimplonClient": "libertem_live_dectris.client",
    "DetectorAPIError": "libertem_live_dectris.errors",
    "DectrisDecoder": "libertem_live_dectris.decode",
    "DectrisSim": "libertem_live_dectris.sim",
    # upstream LiberTEM-live's names
    "DectrisDetectorConnection": ("libertem_live_dectris.connection", "DectrisConnection"),
    "DectrisPendingAcquisition": ("libertem_live_dectris.connection", "DectrisPending"),
    "DectrisConnectionBuilder": "libertem_live_dectris.compat",
    # every live acquisition is a LiveAcquisition
    "DectrisAcquisition": ("libertem_live.driver", "LiveAcquisition"),
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
