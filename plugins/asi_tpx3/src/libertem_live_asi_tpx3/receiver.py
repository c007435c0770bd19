"""Reading TPX3 messages from the socket, and the framing the core's receive
loop runs for one scan.

:class:`Tpx3Messages` reads the stream message by message on the core's
:class:`~libertem_live.driver.TcpReader` (which raises the receive signals
for silence, hang-ups and stalls) and checks the message order
(:class:`~.wire.StreamState`).  The connection uses it between scans, in
the caller's thread, to find the next ScanStart; during a scan the receive
loop's thread uses it through :class:`Tpx3Framing`.  Never both at once:
the connection starts the next wait only after the previous scan's stream
is closed.

Storing: each ArrayChunk is stored as one *chunk record* (the 32-byte header
as received + the payload, see :mod:`.decode`) and booked with
``RingWriter.commit_shared``, so that all rows of the chunk share the record
and ``aux`` is the row within it.  The payload is read from the socket
straight into the reserved slot: one copy, no per-frame Python work.

Record splitting: a chunk with more rows than a slot's frame table
(``max_frames``) or more bytes than a slot cannot be stored as one record.
Its payload is then read into a scratch buffer and re-cut into *sub-records*
of consecutive rows, each a valid packed ArrayChunk record of its own (indptr
rebased to 0, the header's offsets recomputed, the value dtype kept), as
large as a slot allows.  The decoder cannot tell them from wire chunks.  This
costs one extra copy for oversized chunks only; a single scan position whose
events do not fit one slot is an error that names the slot size to raise.

Frames carry no position number on this wire: the rows of a chunk are the
scan positions after the previous chunk's.  So the framing counts rows; more
rows than the scan has positions is a :class:`FrameOrderError`, a ScanEnd
or AcquisitionEnd before the last position a :class:`StreamTruncatedError`.
"""
from __future__ import annotations

import logging
import threading
from typing import Any, Optional

import numpy as np

from libertem_live.driver import (
    DecodeError, FrameOrderError, RingConfig, RingWriter, StreamTruncatedError, Stopped,
    TcpReader,
)

from .errors import Tpx3ProtocolError
from .headers import (
    HEADER_SIZE, AcquisitionStart, ArrayChunk, Header, ScanEnd, ScanStart,
    itemsize, numpy_dtype, parse_header,
)
from .wire import Phase, StreamState

__all__ = ["Tpx3Messages", "Tpx3Framing", "RECEIVER_THREAD"]

log = logging.getLogger(__name__)

#: name of the receive loop's thread (tests look for leftovers by it)
RECEIVER_THREAD = "libertem-live-asi-tpx3-receiver"


class Tpx3Messages:
    """The TPX3 messages of one TCP connection.

    ``header()`` returns the next header, order-checked; for ScanStart the
    metadata is read too (``scan_metadata``; None when longer than
    ``max_metadata``).  After an ArrayChunk the payload is *pending*: read
    it with :meth:`payload_into` or drop it with :meth:`skip_payload`; a
    pending payload nobody asked for is dropped before the next header.
    ``header_bytes`` / ``header_array`` hold the raw 32 bytes of the last
    header, so that a receiver stores header + payload as one record.

    Invalid bytes raise :class:`~.errors.Tpx3ProtocolError` and mark the
    connection broken (the stream position is lost); everything else the
    core's :class:`TcpReader` raises as its signals.

    Read-ahead: after a small payload (under ``_DIRECT`` bytes) the next
    header is read with up to 64 KiB of what follows (``read_some``), given
    back to the reader (``push_back``), so that a stream of small chunks
    costs one ``recv`` per 64 KiB instead of two per chunk.  After a large
    payload the next header is read on its own, so that the following
    payload goes from the socket straight into the ring slot.
    """

    _AHEAD = 64 * 1024
    _DIRECT = 32 * 1024

    def __init__(self, reader: TcpReader, *, max_metadata: int = 1 << 20) -> None:
        self.reader = reader
        self.max_metadata = max_metadata
        self.state = StreamState(check_frame_count=False)
        self.header_bytes = bytearray(HEADER_SIZE)
        self.header_array = np.frombuffer(self.header_bytes, np.uint8)
        self._hview = memoryview(self.header_bytes)
        #: metadata that followed the last ScanStart (None if over max_metadata)
        self.scan_metadata: Optional[bytes] = b""
        #: stream byte offset of the last header (for error messages)
        self.offset = 0
        self._pending = 0
        self._ahead = memoryview(bytearray(self._AHEAD))
        #: bytes given back to the reader (read ahead) and not consumed yet
        self._buffered = 0
        self._small = True

    def reset(self) -> None:
        """A new connection: the stream starts with an AcquisitionStart."""
        self.state.reset()
        self._pending = 0
        self._buffered = 0
        self._small = True

    def _consumed(self, n: int) -> None:
        self._buffered = max(0, self._buffered - n)

    @property
    def phase(self) -> Phase:
        return self.state.phase

    @property
    def acquisition(self) -> Optional[AcquisitionStart]:
        return self.state.acquisition

    @property
    def payload_size(self) -> int:
        """Payload bytes of the pending ArrayChunk (0 if none)."""
        return self._pending

    def header(self, stop: Optional[threading.Event] = None, deadline: Optional[float] = None,
               *, resync: bool = False) -> Header:
        """The next header.  ``deadline``: as :meth:`TcpReader.read_into` (None:
        one poll interval, then IdleTimeout with nothing consumed).
        ``resync``: an AcquisitionStart where the order does not allow one
        starts the new acquisition instead of failing (the server abandoned
        the previous one without its end messages)."""
        reader = self.reader
        if self._pending:
            reader.skip += self._pending
            self._consumed(self._pending)
            self._pending = 0
        if self._small and not self._buffered and not reader.skip:
            n = reader.read_some(self._ahead, stop=stop)
            if n:
                reader.push_back(self._ahead[:n])
                self._buffered = n
        try:
            reader.read_into(self._hview, stop=stop, deadline=deadline,
                             what="a TPX3 message header")
        except Stopped:
            if reader.skip:
                reader.mark_broken("stopped in the middle of a TPX3 header")
            raise
        self._consumed(HEADER_SIZE)
        offset = self.offset = reader.offset - self._buffered - HEADER_SIZE
        state = self.state
        try:
            hdr = parse_header(self.header_bytes, offset=offset, chunk=state.chunk_index)
            if resync and type(hdr) is AcquisitionStart and state.phase is not Phase.IDLE:
                log.warning("asi_tpx3: %s sent a new AcquisitionStart before ending the "
                            "previous acquisition; starting the new one", reader.where)
                state.reset()
            state.feed(hdr, offset=offset)
        except Tpx3ProtocolError:
            reader.mark_broken("invalid TPX3 stream")
            raise
        if type(hdr) is ArrayChunk:
            self._pending = hdr.payload_size()
        elif type(hdr) is ScanStart:
            self._read_metadata(hdr.metadata_length, stop)
        return hdr

    def _read_metadata(self, n: int, stop: Optional[threading.Event]) -> None:
        self._consumed(n)
        if n > self.max_metadata:
            self.reader.skip += n
            self.scan_metadata = None
        elif n:
            self.scan_metadata = bytes(self.reader.read_exactly(
                n, stop=stop, at_boundary=False, what="the ScanStart metadata"))
        else:
            self.scan_metadata = b""

    def payload_into(self, buf: Any, stop: Optional[threading.Event] = None) -> int:
        """Read the pending chunk payload into the start of ``buf`` (any
        writable buffer at least ``payload_size`` long; a smaller one raises
        ValueError before anything is read).  Returns the payload size."""
        n = self._pending
        view = memoryview(buf).cast("B")
        if len(view) < n:
            raise ValueError(f"buffer of {len(view)} bytes is too small for a chunk payload "
                             f"of {n} bytes (chunk {self.state.chunk_index - 1})")
        self._pending = 0  # from here on the reader owns the rest (it skips it after a stop)
        self._consumed(n)
        self._small = n < self._DIRECT
        self.reader.read_into(view[:n], stop=stop, at_boundary=False,
                              what=f"the payload of chunk {self.state.chunk_index - 1}")
        return n

    def skip_payload(self) -> int:
        """Drop the pending chunk payload (before the next read).  Returns its size."""
        n, self._pending = self._pending, 0
        self.reader.skip += n
        self._consumed(n)
        return n


class Tpx3Framing:
    """One scan of ``acq.nframes`` positions, as the core's receive loop reads it."""

    def __init__(self, msgs: Tpx3Messages, acq: AcquisitionStart, ring: RingConfig, *,
                 source: str) -> None:
        self.msgs = msgs
        self.acq = acq
        self.nimages = acq.nframes
        self.source = source
        self.positions = 0
        self.chunks = 0
        self._max_frames = ring.max_frames
        self._slot_bytes = ring.slot_bytes
        self._ip_dt = numpy_dtype(acq.indptr_dtype)
        self._ipsz = self._ip_dt.itemsize
        self._scratch = np.empty(0, np.uint8)

    def receive(self, out: RingWriter, stop: threading.Event) -> bool:
        try:
            hdr = self.msgs.header(stop)
        except Tpx3ProtocolError as e:
            raise type(e)(f"{e.what}; in the scan at position {self.positions} of "
                          f"{self.nimages}", offset=e.offset, chunk=e.chunk, hint=e.hint
                          ) from None
        if type(hdr) is ArrayChunk:
            rows = hdr.nframes
            if self.positions + rows > self.nimages:
                n = self.nimages
                raise FrameOrderError(
                    f"the {self.source} sent {self.positions + rows} rows in this scan "
                    f"(ArrayChunk {self.chunks} brings {rows} more after {self.positions}), "
                    f"but AcquisitionStart announced nav_shape {self.acq.nav_shape} = "
                    f"{n} positions (0..{n - 1}): a row was sent twice somewhere or the "
                    "scan does not match its announcement; check the scan settings in the "
                    "ASI software")
            if rows == 0:
                self.msgs.skip_payload()
            elif rows > self._max_frames or HEADER_SIZE + hdr.payload_size() > self._slot_bytes:
                self._store_split(out, hdr, stop)
            else:
                self._store(out, hdr, stop)
            self.positions += rows
            self.chunks += 1
            return True
        if self.positions < self.nimages:
            what = ("ended the scan (ScanEnd)" if type(hdr) is ScanEnd
                    else "cancelled the acquisition (AcquisitionEnd inside the scan)")
            raise StreamTruncatedError(
                f"the {self.source} {what} after {self.positions} of {self.nimages} scan "
                f"positions (nav_shape {self.acq.nav_shape}); the scan was stopped early or "
                "the scan settings do not match. The connection stays usable for the next "
                "acquisition")
        return False  # ScanEnd (or AcquisitionEnd) after the last position

    def _store(self, out: RingWriter, hdr: ArrayChunk, stop: threading.Event) -> None:
        msgs = self.msgs
        size = HEADER_SIZE + msgs.payload_size
        rows = hdr.nframes
        dest = memoryview(out.reserve_record(self.positions, size, rows))
        dest[:HEADER_SIZE] = msgs.header_bytes
        msgs.payload_into(dest[HEADER_SIZE:size], stop)
        # a chunk's indptr runs from 0 to its nnz: two loads catch a payload
        # shorter than its rows say, or garbage, before the workers see it
        ipsz = self._ipsz
        end = HEADER_SIZE + rows * ipsz
        first = int.from_bytes(dest[HEADER_SIZE:HEADER_SIZE + ipsz], "little")
        last = int.from_bytes(dest[end:end + ipsz], "little")
        if first != 0 or last != hdr.length:
            self._bad_indptr(hdr, first, last)
        out.commit_shared(size, rows)

    def _bad_indptr(self, hdr: ArrayChunk, first: int, last: int) -> None:
        a = self.positions
        raise Tpx3ProtocolError(
            f"the ArrayChunk for scan positions {a}..{a + hdr.nframes - 1} from the "
            f"{self.source} is corrupt: its indptr runs from {first} to {last}, but a chunk "
            f"starts at 0 and ends at the {hdr.length} entries it stores (a payload shorter "
            "than its rows say, or garbage)", offset=self.msgs.offset, chunk=self.chunks,
            hint="the scan's data cannot be trusted; check the ASI software and repeat the "
                 "scan (the connection skips the rest of it)")

    def _store_split(self, out: RingWriter, hdr: ArrayChunk, stop: threading.Event) -> None:
        """Store an oversized chunk as several valid sub-records (module docstring)."""
        msgs = self.msgs
        n = msgs.payload_size
        if self._scratch.size < n:
            self._scratch = np.empty(max(n, 2 * self._scratch.size), np.uint8)
        payload = self._scratch[:n]
        msgs.payload_into(payload, stop)
        acq = self.acq
        ip_dt = self._ip_dt
        ipsz, ixsz = self._ipsz, itemsize(acq.indices_dtype)
        vsz = itemsize(hdr.value_dtype)
        rows, nnz = hdr.nframes, hdr.length
        indptr = payload[:(rows + 1) * ipsz].view(ip_dt).astype(np.int64)
        if indptr[0] != 0 or indptr[-1] != nnz or np.any(np.diff(indptr) < 0):
            self._bad_indptr(hdr, int(indptr[0]), int(indptr[-1]))
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
                    f"scan position {self.positions + r0} from the {self.source} alone has "
                    f"{events} events, more than one ring slot of {self._slot_bytes} bytes "
                    "holds; open the connection with a larger bytes_per_chunk")
            count = r1 - r0
            a, b = int(indptr[r0]), int(indptr[r1])
            ixo = (count + 1) * ipsz
            vo = ixo + (b - a) * ixsz
            size = HEADER_SIZE + vo + (b - a) * vsz
            sub = ArrayChunk(value_dtype=hdr.value_dtype, nframes=count, length=b - a,
                             indices_offset=ixo, values_offset=vo)
            dest = out.reserve_record(self.positions + r0, size, count)
            dest[:HEADER_SIZE] = np.frombuffer(sub.pack(), np.uint8)
            p = dest[HEADER_SIZE:]
            p[:ixo] = (indptr[r0:r1 + 1] - a).astype(ip_dt).view(np.uint8)
            p[ixo:vo] = ix[a * ixsz:b * ixsz]
            p[vo:vo + (b - a) * vsz] = vals[a * vsz:b * vsz]
            out.commit_shared(size, count)
            r0 = r1

