"""ASI TPX3 (CheeTah T3) driver for libertem-live: sparse CSR stream over TCP.

Registered with the core through the ``libertem_live.detectors`` entry point
(``ctx.make_connection('asi_tpx3').open(data_host=..., data_port=8283)``);
passive mode only. Importing this package stays cheap: the connection,
receiver and numba decoder load when a connection is opened.

Modules, one job each:

* :mod:`.connection` - the DetectorConnection (passive mode, reconnects);
* :mod:`.receiver` - the thread that moves chunks from the socket into the ring;
* :mod:`.controller` - the explanation why there is no active mode;
* :mod:`.headers` - the five 32-byte headers, dtype codes, payload sizes;
* :mod:`.errors` - wire-layer exception types (what the caller should do next);
* :mod:`.stream` - blocking socket reader enforcing the message order;
* :mod:`.decode` - numba decoder for stored chunk records (dense / CSR);
* :mod:`.encode` - CSR block -> ArrayChunk bytes;
* :mod:`.synth` - deterministic synthetic acquisitions with ground truth;
* :mod:`.sim` - TCP simulator with fault injection and capture replay
  (``libertem-live-tpx3-sim`` or ``python -m libertem_live_asi_tpx3.sim``).
"""
from __future__ import annotations

from typing import Any

from libertem_live.plugin import PLUGIN_API_VERSION, DetectorInfo, hookimpl

__all__ = [
    "HEADER_SIZE", "AcquisitionEnd", "AcquisitionStart", "ArrayChunk", "DType", "FormatType",
    "ScanEnd", "ScanStart", "Tag", "parse_header",
    "Tpx3Error", "Tpx3ProtocolError", "Tpx3StreamError", "Tpx3Closed", "Tpx3IdleTimeout",
    "Tpx3Stopped",
    "Tpx3Decoder", "DecodeError", "ChunkArrays", "chunk_arrays",
    "Tpx3Connection", "Tpx3PendingAcquisition", "libertem_live_detectors",
]

_LAZY = {
    "HEADER_SIZE": "headers", "AcquisitionEnd": "headers", "AcquisitionStart": "headers",
    "ArrayChunk": "headers", "DType": "headers", "FormatType": "headers", "ScanEnd": "headers",
    "ScanStart": "headers", "Tag": "headers", "parse_header": "headers",
    "Tpx3Error": "errors", "Tpx3ProtocolError": "errors", "Tpx3StreamError": "errors",
    "Tpx3Closed": "errors", "Tpx3IdleTimeout": "errors", "Tpx3Stopped": "errors",
    "Tpx3Decoder": "decode", "DecodeError": "decode", "ChunkArrays": "decode",
    "chunk_arrays": "decode",
    "Tpx3Connection": "connection", "Tpx3PendingAcquisition": "connection",
}


def __getattr__(name: str) -> Any:
    """Load the heavy modules (numba, sockets) only when one of their names is used."""
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    return getattr(importlib.import_module(f"{__name__}.{mod}"), name)


def _open(**params: Any) -> Any:
    from libertem_live_asi_tpx3.connection import open_connection
    return open_connection(**params)


@hookimpl
def libertem_live_detectors() -> list[DetectorInfo]:
    return [DetectorInfo(
        name="asi_tpx3",
        open=_open,
        plugin_api=PLUGIN_API_VERSION,
        description="ASI TPX3 / CheeTah T3 sparse CSR stream over TCP (passive mode only)",
        compat_module="libertem_live_asi_tpx3",
        parameters={
            "data_host": "host of the ASI software's data stream (default 127.0.0.1)",
            "data_port": "its TCP port (default 8283)",
            "buffer_size": "shared-memory ring per acquisition, MiB (default 64)",
            "bytes_per_chunk": "bytes per ring slot (default 4 MiB); larger chunks are split",
            "timeout": "seconds without data inside a scan before the acquisition fails",
            "ring": "a RingConfig, overrides buffer_size / bytes_per_chunk",
        },
    )]
