"""The DECTRIS DCU simulator: SIMPLON REST control and a ZeroMQ stream (V1, or
V2 = CBOR), synthetic series with a known ground truth or a replayed recording, and the
core's stream faults (:mod:`.faults`).

``python -m libertem_live_dectris.sim --help`` runs it standalone.  Names
load on first use, so that the encoders (:mod:`.encode`) can be imported
without the server.
"""
from __future__ import annotations

from libertem_live.driver import lazy_names

_LAZY = {
    "DectrisSim": "libertem_live_dectris.sim.server",
    "write_dump": "libertem_live_dectris.sim.source",
    "SyntheticSource": "libertem_live_dectris.sim.source",
    "DumpSource": "libertem_live_dectris.sim.source",
    "Specimen": "libertem_live_dectris.sim.specimen",
    "SpecimenSource": "libertem_live_dectris.sim.specimen",
    "SUPPORTED_FAULTS": "libertem_live_dectris.sim.faults",
    "main": "libertem_live_dectris.sim.__main__",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY)
