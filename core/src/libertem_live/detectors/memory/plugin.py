"""Registers the memory driver; imports nothing heavy (listing drivers stays cheap)."""
from __future__ import annotations

from typing import Any

from libertem_live.driver import PLUGIN_API_VERSION, DetectorInfo, hookimpl


def open_connection(data: Any = None, **params: Any) -> Any:
    from libertem_live.detectors.memory.connection import MemoryConnection
    return MemoryConnection(data, **params)


@hookimpl
def libertem_live_detectors() -> list[DetectorInfo]:
    return [DetectorInfo(
        name="memory",
        open=open_connection,
        plugin_api=PLUGIN_API_VERSION,
        signature_of="libertem_live.detectors.memory.connection:MemoryConnection",
        description="streams a numpy array (nav + sig) like a detector; for tests and demos",
        parameters={
            "data": "array of shape nav_shape + sig_shape",
            "sig_dims": "how many trailing axes of data are the frame (signal)",
            "ring": "RingConfig: size of the shared-memory ring (default 16 slots of a stack)",
            "start_delay": "seconds before the first frame (a slow detector)",
            "announce_nav_shape": "whether passive mode tells the scan shape",
            "sparse": "announce the frames as sparse (for sparse UDF paths)",
            "nav_shape": "scan shape, if longer than the array (frames repeat)",
            "frames_per_stack": "frames the receiver writes per ring slot",
            "truncate_after": "end the stream after this many frames (fault injection)",
            "fault": "a stream fault for the next acquisition, e.g. 'frame_gap@5' (see FaultKind)",
            "passive_count": "acquisitions wait_for_acquisition announces (None: unlimited)",
            "timeout": "seconds without frames before an acquisition fails",
            "array_backends": "array backends offered to UDFs (LiberTEM names); default: numpy, cuda",
            "extra_kwargs": "upstream's MemoryDataSet keywords: datashape (random data), "
                            "sig_dims, nav_shape, array_backends",
        },
    )]
