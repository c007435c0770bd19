"""Shared test helpers: a minimal receiver that stores chunk records like the core does."""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from libertem_live_asi_tpx3.headers import (
    HEADER_SIZE, AcquisitionEnd, AcquisitionStart, ArrayChunk, ScanEnd, ScanStart,
)
from libertem_live_asi_tpx3.stream import Tpx3Reader
from libertem_live_asi_tpx3.synth import SynthAcquisition


@dataclass
class Batch:
    """Chunk records of one scan stored back to back, with per-frame addressing."""

    data: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    aux: np.ndarray


def batch_from_records(records: List[bytes], rows: List[int], *, gap: int = 0) -> Batch:
    """Lay records out in one buffer (``gap`` junk bytes before each) + addressing."""
    parts, offs, sizes, aux = [], [], [], []
    pos = 0
    for rec, n in zip(records, rows):
        parts.append(b"\xee" * gap)
        pos += gap
        parts.append(bytes(rec))
        offs += [pos] * n
        sizes += [len(rec)] * n
        aux += list(range(n))
        pos += len(rec)
    data = np.frombuffer(b"".join(parts), np.uint8).copy()
    return Batch(data, np.array(offs, np.int64), np.array(sizes, np.int64),
                 np.array(aux, np.int64))


def batch_from_synth(acq: SynthAcquisition, *, gap: int = 0) -> Batch:
    return batch_from_records(acq.chunks, acq.chunk_rows, gap=gap)


@dataclass
class Received:
    acquisition: Optional[AcquisitionStart] = None
    scans: List[Batch] = field(default_factory=list)
    metadata: List[Optional[bytes]] = field(default_factory=list)
    cancelled: bool = False


def receive_acquisition(reader: Tpx3Reader, *, timeout: Optional[float] = 10.0,
                        slot_size: int = 64 << 20) -> Received:
    """Read one acquisition: each scan's chunk records go into one slot buffer."""
    res = Received()
    slot = np.empty(slot_size, np.uint8)
    pos = 0
    offs: List[int] = []
    sizes: List[int] = []
    aux: List[int] = []
    while True:
        hdr = reader.read_header(timeout=timeout)
        if isinstance(hdr, AcquisitionStart):
            res.acquisition = hdr
        elif isinstance(hdr, ScanStart):
            res.metadata.append(reader.scan_metadata)
            pos, offs, sizes, aux = 0, [], [], []
        elif isinstance(hdr, ArrayChunk):
            n = HEADER_SIZE + reader.payload_size
            slot[pos:pos + HEADER_SIZE] = np.frombuffer(reader.header_bytes, np.uint8)
            reader.read_payload_into(slot[pos + HEADER_SIZE:pos + n])
            offs += [pos] * hdr.nframes
            sizes += [n] * hdr.nframes
            aux += range(hdr.nframes)
            pos += n
        elif isinstance(hdr, ScanEnd):
            res.scans.append(Batch(slot[:pos].copy(), np.array(offs, np.int64),
                                   np.array(sizes, np.int64), np.array(aux, np.int64)))
        elif isinstance(hdr, AcquisitionEnd):
            res.cancelled = reader.state.cancelled
            return res


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)
