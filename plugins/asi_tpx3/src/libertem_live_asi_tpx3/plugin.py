"""Registers the ASI TPX3 driver; imports nothing heavy (listing drivers stays cheap)."""
from __future__ import annotations

from typing import Any

from libertem_live.driver import DetectorInfo, hookimpl


def open_connection(**params: Any) -> Any:
    from libertem_live_asi_tpx3.connection import open_connection as _open
    return _open(**params)


@hookimpl
def libertem_live_detectors() -> list[DetectorInfo]:
    return [DetectorInfo(
        name="asi_tpx3",
        open=open_connection,
        plugin_api=1,  # the core plugin API this driver was written for
        description="ASI TPX3 / CheeTah T3 sparse CSR stream over TCP (passive mode only)",
        compat_module="libertem_live_asi_tpx3",
        simulator="libertem_live_asi_tpx3.sim.__main__:main",
        signature_of="libertem_live_asi_tpx3.connection:Tpx3Connection",
        parameters={
            "data_host": "host of the ASI software's data stream",
            "data_port": "its TCP port",
            "buffer_size": "shared-memory ring per acquisition, MiB",
            "bytes_per_chunk": "bytes per ring slot (default 4 MiB); larger chunks are split",
            "timeout": "seconds without data inside a scan before the acquisition fails",
            "ring": "a RingConfig, overrides buffer_size / bytes_per_chunk",
            "connect_timeout": "seconds one connection attempt may take",
            "max_frames_per_slot": "scan positions one ring slot's frame table holds",
            "chunks_per_stack": "accepted for upstream compatibility; no effect",
            "huge_pages": "accepted for upstream compatibility; no effect",
            "reconnect_interval": "accepted for upstream compatibility; no effect",
            "csr_dtype": "value dtype of the CSR tiles given to sparse UDFs",
        },
    )]
