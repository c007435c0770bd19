"""The built-in ``memory`` driver: streams a numpy array as if it came from a
detector, through the same ring transport as every network driver.

It registers through the ``libertem_live.detectors`` entry point exactly as a
third-party driver does, and serves as the reference driver of the
conformance kit and for socket-free tests.
"""
from __future__ import annotations

from libertem_live.plugin import PLUGIN_API_VERSION, DetectorInfo, hookimpl


def _open(**params):  # imported lazily: listing drivers must stay cheap
    from libertem_live.detectors.memory.connection import open_connection
    return open_connection(**params)


@hookimpl
def libertem_live_detectors() -> list[DetectorInfo]:
    return [DetectorInfo(
        name="memory",
        open=_open,
        plugin_api=PLUGIN_API_VERSION,
        description="streams a numpy array (nav + sig) like a detector; for tests and demos",
        parameters={
            "data": "array of shape nav_shape + sig_shape",
            "nav_shape": "scan shape, if longer than the array (frames repeat)",
            "frames_per_stack": "frames the receiver writes per ring slot",
            "truncate_after": "end the stream after this many frames (fault injection)",
            "passive_count": "acquisitions wait_for_acquisition announces (None: unlimited)",
            "timeout": "seconds without frames before an acquisition fails",
        },
    )]
