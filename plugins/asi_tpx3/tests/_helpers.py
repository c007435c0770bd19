"""Shared test helpers: the driver's message reader on a plain connection, and
a minimal receiver that stores chunk records like the core does."""
from __future__ import annotations

import select
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from libertem_live.driver import TcpReader
from libertem_live_asi_tpx3.headers import (
    HEADER_SIZE, AcquisitionEnd, AcquisitionStart, ArrayChunk, Header, ScanEnd, ScanStart,
)
from libertem_live_asi_tpx3.receiver import Tpx3Messages
from libertem_live_asi_tpx3.sim.source import SynthAcquisition


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


def messages(port: int, *, stall_timeout: float = 5.0, max_metadata: int = 1 << 20
             ) -> Tpx3Messages:
    """The driver's message reader, connected to 127.0.0.1:``port``."""
    reader = TcpReader("127.0.0.1", port, stall_timeout=stall_timeout, reconnect_timeout=10.0)
    reader.connect()
    return Tpx3Messages(reader, max_metadata=max_metadata)


def read_header(msgs: Tpx3Messages, timeout: float = 10.0, stop=None) -> Header:
    return msgs.header(stop, deadline=time.monotonic() + timeout)


def receive_acquisition(reader: Tpx3Messages, *, timeout: float = 10.0,
                        slot_size: int = 64 << 20) -> Received:
    """Read one acquisition: each scan's chunk records go into one slot buffer."""
    res = Received()
    slot = np.empty(slot_size, np.uint8)
    pos = 0
    offs: List[int] = []
    sizes: List[int] = []
    aux: List[int] = []
    while True:
        hdr = read_header(reader, timeout)
        if isinstance(hdr, AcquisitionStart):
            res.acquisition = hdr
        elif isinstance(hdr, ScanStart):
            res.metadata.append(reader.scan_metadata)
            pos, offs, sizes, aux = 0, [], [], []
        elif isinstance(hdr, ArrayChunk):
            n = HEADER_SIZE + reader.payload_size
            slot[pos:pos + HEADER_SIZE] = reader.header_array
            reader.payload_into(slot[pos + HEADER_SIZE:pos + n])
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



class RawServer:
    """A TCP server of fixed bytes, for streams the simulator does not make
    (malformed or oddly ordered): connection ``i`` gets ``blobs[i]`` (later
    ones the last blob), then stays open until the client closes it."""

    def __init__(self, blobs: List[bytes]) -> None:
        self.blobs = blobs
        self.connections = 0
        self._stop = threading.Event()
        self._listen = socket.create_server(("127.0.0.1", 0))
        self.port = self._listen.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="RawServer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self._listen], [], [], 0.05)
            if not r:
                continue
            conn, _ = self._listen.accept()
            with conn:
                blob = self.blobs[min(self.connections, len(self.blobs) - 1)]
                self.connections += 1
                try:
                    conn.sendall(blob)
                except OSError:
                    continue
                while not self._stop.is_set():
                    r, _, _ = select.select([conn], [], [], 0.05)
                    try:
                        if r and not conn.recv(65536):
                            break
                    except OSError:
                        break

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._listen.close()

    def __enter__(self) -> "RawServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
