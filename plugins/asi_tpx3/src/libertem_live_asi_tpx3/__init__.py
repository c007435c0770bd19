"""ASI TPX3 (CheeTah T3) driver for libertem-live: sparse CSR stream over TCP.

Registered with the core through the ``libertem_live.detectors`` entry point
(:mod:`.plugin`; ``ctx.make_connection('asi_tpx3').open(data_host=...,
data_port=8283)``); passive mode only.  Importing this package stays cheap:
the connection, receiver and numba decoder load when a name of theirs is used.

Modules, one job each:

* :mod:`.plugin` - registration with the core;
* :mod:`.connection` - the connection (passive mode, reconnects);
* :mod:`.receiver` - reading messages, and the framing the core's receive loop runs;
* :mod:`.headers` - the five 32-byte headers, dtype codes, payload sizes;
* :mod:`.wire` - the message order (no I/O), walking recordings;
* :mod:`.decode` - numba decoder for stored chunk records (dense / CSR);
* :mod:`.errors` - this driver's subclasses of the core's errors;
* :mod:`.sim` - TCP simulator with ground truth, fault injection and capture
  replay (``libertem-live-tpx3-sim`` or ``python -m libertem_live_asi_tpx3.sim``).
"""
from __future__ import annotations

from libertem_live.driver import lazy_names

__all__ = [
    "HEADER_SIZE", "AcquisitionEnd", "AcquisitionStart", "ArrayChunk", "DType", "FormatType",
    "ScanEnd", "ScanStart", "Tag", "parse_header",
    "Tpx3ProtocolError", "Tpx3FormatError", "Tpx3PassiveOnlyError",
    "Tpx3Decoder", "ChunkArrays", "chunk_arrays",
    "Tpx3Connection", "Tpx3PendingAcquisition", "Tpx3Sim", "TpxCameraSim",
    "AsiTpx3DetectorConnection", "AsiTpx3PendingAcquisition", "AsiTpx3ConnectionBuilder",
    "AsiTpx3Acquisition",
]

_LAZY = {
    "HEADER_SIZE": ".headers", "AcquisitionEnd": ".headers", "AcquisitionStart": ".headers",
    "ArrayChunk": ".headers", "DType": ".headers", "FormatType": ".headers", "ScanEnd": ".headers",
    "ScanStart": ".headers", "Tag": ".headers", "parse_header": ".headers",
    "Tpx3ProtocolError": ".errors", "Tpx3FormatError": ".errors",
    "Tpx3PassiveOnlyError": ".errors",
    "Tpx3Decoder": ".decode", "ChunkArrays": ".decode", "chunk_arrays": ".decode",
    "Tpx3Connection": ".connection", "Tpx3PendingAcquisition": ".connection",
    "Tpx3Sim": ".sim", "TpxCameraSim": ".sim",
    # upstream LiberTEM-live's names
    "AsiTpx3DetectorConnection": (".connection", "Tpx3Connection"),
    "AsiTpx3PendingAcquisition": (".connection", "Tpx3PendingAcquisition"),
    "AsiTpx3ConnectionBuilder": ".compat",
    "AsiTpx3Acquisition": ("libertem_live.driver", "LiveAcquisition"),
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY, also=__all__)
