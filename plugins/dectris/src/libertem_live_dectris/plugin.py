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
        signature_of="libertem_live_dectris.connection:DectrisConnection",
        parameters={"api_host": "DCU host", "api_port": "REST port (80)",
                    "data_host": "stream host",
                    "data_port": "ZeroMQ stream port (None: 9999 for stream V1, 31001 for V2)",
                    "timeout": "seconds without frames before an acquisition fails",
                    "api_timeout": "seconds a REST request may take",
                    "ring": "RingConfig of the shared-memory ring frames are received into",
                    "rcvhwm": "ZeroMQ receive high-water mark (messages queued in the socket)",
                    "buffer_size": "MiB of shared memory per acquisition (None: 128)",
                    "bytes_per_frame": "accepted for upstream scripts, ignored",
                    "frame_stack_size": "accepted for upstream scripts, ignored",
                    "huge": "accepted for upstream scripts, ignored",
                    "huge_pages": "upstream's name for huge; accepted, ignored",
                    "stream": "'legacy' (stream V1) or 'v2' (CBOR stream V2)",
                    "channel": "stream V2 image channel"},
    )]
