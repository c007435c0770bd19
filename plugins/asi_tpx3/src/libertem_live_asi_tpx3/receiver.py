"""The receiver thread: one scan's ArrayChunks from the socket into the ring.

Each ArrayChunk is stored as one *chunk record* (the 32-byte header as
received + the payload, see :mod:`.decode`) and booked with
``RingWriter.commit_shared``, so that all rows of the chunk share the record
and ``aux`` is the row within it. The payload is read from the socket
straight into the reserved slot: one copy, no per-frame Python work.

Record splitting: a chunk with more rows than a slot's frame table
(``max_frames``) or more bytes than a slot cannot be stored as one record.
Its payload is then read into a scratch buffer and re-cut into *sub-records*
of consecutive rows, each a valid packed ArrayChunk record of its own (indptr
rebased to 0, the header's offsets recomputed, the value dtype kept), as
large as a slot allows. The decoder cannot tell them from wire chunks. This
costs one extra copy for oversized chunks only; a single scan position whose
events do not fit one slot is an error that names the slot size to raise.

Outcomes (the connection reads them once the thread is done): a complete
scan finishes the stream; ScanEnd or AcquisitionEnd before all positions
fails it with StreamTruncatedError (the framing is intact, the connection
stays usable); more rows than positions, malformed or out-of-order messages,
silence and transport errors fail it and ask the connection to reconnect
(a server that stalls mid-scan is not trusted to resume in step). A stop
from our side (the UDF run ended early) leaves the reader at a message
boundary; the connection skips the rest of that scan.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from libertem_live.errors import (
    AcquisitionTimeoutError, DecodeError, DetectorConnectionError, FrameOrderError,
    StreamTruncatedError,
)
from libertem_live.transport.ring import RingWriter
from libertem_live.transport.stream import FrameStream
from libertem_live.transport.thread import ReceiverThread

from .errors import (
    Tpx3Closed, Tpx3IdleTimeout, Tpx3OrderError, Tpx3ProtocolError, Tpx3Stall, Tpx3Stopped,
    Tpx3StreamError,
)
from .headers import (
    HEADER_SIZE, AcquisitionEnd, AcquisitionStart, ArrayChunk, ScanEnd, itemsize, numpy_dtype,
)
from .stream import Tpx3Reader

__all__ = ["ScanReceiver"]

log = logging.getLogger(__name__)


class ScanReceiver:
    """Receives one scan of an acquisition on behalf of a connection.

    ``done`` is set as soon as the thread no longer touches the reader
    (before the stream is finished or failed), so the connection can wait
    for the next acquisition right after a UDF run ends. ``reconnect`` tells
    the connection that the stream position is lost or untrustworthy.
    """

    def __init__(self, reader: Tpx3Reader, acq: AcquisitionStart, stream: FrameStream, *,
                 source: str, timeout: float, poll: float = 0.1,
                 max_latency: float = 0.05) -> None:
        self.reader = reader
        self.acq = acq
        self.stream = stream
        self.source = source
        self.timeout = timeout
        self.poll = poll
        self.max_latency = max_latency
        self.done = threading.Event()
        self.reconnect = False
        self.completed = False
        self.positions = 0
        #: CPU seconds the receiver thread used (set when it ends; diagnostics)
        self.cpu_s = 0.0
        self._cpu0 = 0.0
        self._scratch = np.empty(0, np.uint8)
        spec = stream.spec
        self._max_frames = spec.max_frames
        self._slot_bytes = spec.slot_bytes
        self._thread = ReceiverThread(stream, self._run, name="libertem-live-asi-tpx3-receiver")

    def start(self) -> "ScanReceiver":
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.alive

    def _run(self, stream: FrameStream) -> None:
        self._cpu0 = time.thread_time()
        try:
            self._receive(stream)
        except Tpx3Stopped:
            return
        except BaseException as e:
            if not isinstance(e, StreamTruncatedError) or self.reader.broken:
                self.reconnect = True
            translated = self._translate(e)
            if stream.stopped or translated is e:
                raise
            raise translated from e
        finally:
            self.cpu_s = time.thread_time() - self._cpu0
            self.done.set()

    def _translate(self, e: BaseException) -> BaseException:
        where = f"{self.source}, scan position {self.positions} of {self.acq.nframes}"
        if isinstance(e, Tpx3OrderError):
            return FrameOrderError(f"{where}: {e}")
        if isinstance(e, Tpx3ProtocolError):
            return DecodeError(f"{where}: invalid TPX3 stream: {e}")
        if isinstance(e, Tpx3Stall):
            return AcquisitionTimeoutError(
                f"{where}: {e}; raise the connection's timeout if the server is just slow")
        if isinstance(e, (Tpx3StreamError, Tpx3Closed)):
            return DetectorConnectionError(
                f"{where}: the server went away in the middle of the scan ({e}); the "
                "connection reconnects for the next acquisition")
        return e

    def _receive(self, stream: FrameStream) -> None:
        reader = self.reader
        reader.should_stop = stream.stop_event.is_set
        writer = stream.writer()
        nimages = self.acq.nframes
        chunk_no = 0
        last_msg = last_flush = time.monotonic()
        while True:
            try:
                hdr = reader.read_header(timeout=self.poll)
            except Tpx3IdleTimeout:
                writer.flush()
                now = last_flush = time.monotonic()
                if now - last_msg > self.timeout:
                    raise AcquisitionTimeoutError(
                        f"{self.source}: no data for {self.timeout:g} s in the middle of the "
                        f"scan, after {self.positions} of {nimages} scan positions; is the "
                        "scan still running? Raise the connection's timeout for slow scans"
                    ) from None
                continue
            last_msg = time.monotonic()
            if isinstance(hdr, ArrayChunk):
                rows = hdr.nframes
                if self.positions + rows > nimages:
                    writer.flush()
                    self.reconnect = True
                    raise FrameOrderError(
                        f"{self.source}: ArrayChunk {chunk_no} of the scan carries {rows} rows "
                        f"for scan positions {self.positions}..{self.positions + rows - 1}, "
                        f"but AcquisitionStart announced nav_shape {self.acq.nav_shape} = "
                        f"{nimages} positions. The server's scan does not match its "
                        "announcement; check the scan settings in the ASI software")
                if rows == 0:
                    reader.skip_payload()
                else:
                    self._store(writer, hdr)
                    self.positions += rows
                chunk_no += 1
                if last_msg - last_flush > self.max_latency:
                    writer.flush()
                    last_flush = last_msg
            elif isinstance(hdr, (ScanEnd, AcquisitionEnd)):
                writer.flush()
                if self.positions == nimages and isinstance(hdr, ScanEnd):
                    self.completed = True
                    self.cpu_s = time.thread_time() - self._cpu0
                    self.done.set()
                    stream.finish()
                    return
                stream.ledger.finish_short()
                what = ("ended the scan (ScanEnd)" if isinstance(hdr, ScanEnd)
                        else "cancelled the acquisition (AcquisitionEnd inside the scan)")
                raise StreamTruncatedError(
                    f"{self.source} {what} after {self.positions} of {nimages} scan "
                    f"positions (nav_shape {self.acq.nav_shape}); the scan was stopped early "
                    "or the scan settings do not match. The connection stays usable for "
                    "the next acquisition")
            else:  # the reader's order check lets nothing else through inside a scan
                raise Tpx3OrderError(f"unexpected {type(hdr).__name__} inside a scan")

    def _store(self, writer: RingWriter, hdr: ArrayChunk) -> None:
        reader = self.reader
        size = HEADER_SIZE + reader.payload_size
        rows = hdr.nframes
        if rows > self._max_frames or size > self._slot_bytes:
            self._store_split(writer, hdr)
            return
        dest = writer.reserve_record(self.positions, size, rows)
        dest[:HEADER_SIZE] = np.frombuffer(reader.header_bytes, np.uint8)
        reader.read_payload_into(dest[HEADER_SIZE:size])
        writer.commit_shared(size, rows)

    def _store_split(self, writer: RingWriter, hdr: ArrayChunk) -> None:
        """Store an oversized chunk as several valid sub-records (module docstring)."""
        reader = self.reader
        n = reader.payload_size
        if self._scratch.size < n:
            self._scratch = np.empty(max(n, 2 * self._scratch.size), np.uint8)
        payload = self._scratch[:n]
        reader.read_payload_into(payload)
        acq = self.acq
        ip_dt = numpy_dtype(acq.indptr_dtype)
        ipsz, ixsz = ip_dt.itemsize, itemsize(acq.indices_dtype)
        vsz = itemsize(hdr.value_dtype)
        rows, nnz = hdr.nframes, hdr.length
        indptr = payload[:(rows + 1) * ipsz].view(ip_dt).astype(np.int64)
        if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0):
            self.reconnect = True
            raise DecodeError(
                f"{self.source}: chunk at scan position {self.positions} has an invalid indptr "
                f"(starts at {indptr[0]}, ends at {indptr[-1]} for nnz {nnz}, or decreases)")
        ix = payload[hdr.indices_offset:hdr.indices_offset + nnz * ixsz]
        vals = payload[hdr.values_offset:hdr.values_offset + nnz * vsz]
        room = self._slot_bytes - HEADER_SIZE
        r0 = 0
        while r0 < rows:
            last = min(rows, r0 + self._max_frames)
            counts = np.arange(1, last - r0 + 1)
            cost = (counts + 1) * ipsz + (indptr[r0 + 1:last + 1] - indptr[r0]) * (ixsz + vsz)
            r1 = r0 + int(np.searchsorted(cost, room, side="right"))
            if r1 == r0:
                events = int(indptr[r0 + 1] - indptr[r0])
                raise DecodeError(
                    f"{self.source}: scan position {self.positions + r0} alone has {events} "
                    f"events, more than one ring slot of {self._slot_bytes} bytes holds; open "
                    "the connection with a larger bytes_per_chunk")
            count = r1 - r0
            a, b = int(indptr[r0]), int(indptr[r1])
            ixo = (count + 1) * ipsz
            vo = ixo + (b - a) * ixsz
            size = HEADER_SIZE + vo + (b - a) * vsz
            sub = ArrayChunk(value_dtype=hdr.value_dtype, nframes=count, length=b - a,
                             indices_offset=ixo, values_offset=vo)
            dest = writer.reserve_record(self.positions + r0, size, count)
            dest[:HEADER_SIZE] = np.frombuffer(sub.pack(), np.uint8)
            p = dest[HEADER_SIZE:]
            p[:ixo] = (indptr[r0:r1 + 1] - a).astype(ip_dt).view(np.uint8)
            p[ixo:vo] = ix[a * ixsz:b * ixsz]
            p[vo:vo + (b - a) * vsz] = vals[a * vsz:b * vsz]
            writer.commit_shared(size, count)
            r0 = r1


def describe(acq: AcquisitionStart) -> dict[str, Any]:
    """Metadata of an acquisition for the FrameFormat (shown to UDFs and in the ledger)."""
    return {
        "detector": "asi_tpx3",
        "format_type": "tot" if int(acq.format_type) == 1 else "counts",
        "sequence": acq.sequence,
        "version": acq.version,
        "indptr_dtype": str(numpy_dtype(acq.indptr_dtype)),
        "indices_dtype": str(numpy_dtype(acq.indices_dtype)),
    }
