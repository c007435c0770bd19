"""The Merlin data plane: one TCP socket, MPX messages -> the core's frame ring.

Two layers.  :class:`DataChannel` owns the data socket for the lifetime of a
connection: (re)connecting with back-off, finding the next acquisition
header, peeking the first frame's header, and keeping the stream position on
a message boundary across acquisitions (after an early stop it remembers how
many bytes of the current message are still to be skipped; after garbage it
reconnects).  :class:`FrameReceiver` is the per-acquisition hot loop that a
:class:`~libertem_live.transport.thread.ReceiverThread` runs.

Why the socket is used the way it is: the socket stays in blocking mode with
``SO_RCVTIMEO`` set to a short poll interval, and every read passes
``MSG_WAITALL``.  A frame then costs two ``recv_into`` system calls (MPX
prefix + MQ1 header into a scratch buffer, pixel payload straight into the
ring slot) and no ``poll``; the interval only bounds how late a stop request
or an idle timeout is noticed.  Python's own socket timeout would add a
``poll`` before every read.
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from typing import Any, Optional

import numpy as np

from libertem_live.errors import (
    AcquisitionTimeoutError, DecodeError, DetectorConnectionError, FrameOrderError,
    StreamTruncatedError,
)
from libertem_live.protocols import FrameFormat
from libertem_live.reconnect import connect_with_backoff
from libertem_live.transport.ring import frame_aligned
from libertem_live.transport.stream import FrameStream

from .batch import ExpectedHeader, SlotScatter, table_rows
from .decode import MerlinDecoder
from .errors import (MerlinConnectionClosed, MerlinError, MerlinProtocolError,
                     MerlinStopped, MerlinTimeout, MerlinTruncatedError)
from .headers import (AcquisitionHeader, FrameHeader, parse_acquisition_header,
                      parse_frame_header, peek_data_offset)
from .mpx import PREFIX_LEN, parse_prefix

log = logging.getLogger(__name__)

POLL_S = 0.05  # SO_RCVTIMEO: how late a stop request / idle timeout is noticed
FLUSH_S = 0.02  # publish a partly filled ring slot at least this often
MAX_HEADER_MESSAGE = 1 << 20  # an HDR larger than this is garbage, not a header

#: counter depth -> the dtype that holds its values (protocols.md 2.3)
DEPTH_DTYPES = {1: np.uint8, 6: np.uint8, 12: np.uint16, 24: np.uint32}
_FORMAT_DTYPES = {"U01": np.uint8, "U08": np.uint8, "U16": np.uint16, "U32": np.uint32,
                  "U64": np.uint64}


def dtype_for(pixel_format: str, counter_depth: Optional[int]) -> np.dtype:
    """The natural dtype of decoded frames: by counter depth, else by pixel format."""
    if counter_depth in DEPTH_DTYPES:
        return np.dtype(DEPTH_DTYPES[counter_depth])
    if pixel_format in _FORMAT_DTYPES:
        return np.dtype(_FORMAT_DTYPES[pixel_format])
    raise FrameOrderError(
        f"cannot tell the pixel dtype of {pixel_format} frames without a counter depth "
        "(no MQ1A extension in the frame header and none in the acquisition header)")


def frame_format_for(first: FrameHeader, hdr: Optional[AcquisitionHeader],
                     extra: Optional[dict[str, Any]] = None) -> FrameFormat:
    """The FrameFormat that the first frame's MQ1 header defines (passive mode)."""
    depth = first.counter_depth
    if depth is None and hdr is not None:
        depth = hdr.counter_depth
    if first.is_raw and first.counter_depth is None and depth is not None:
        import dataclasses
        first = dataclasses.replace(first, counter_depth=depth)
    try:
        decoder = MerlinDecoder.from_frame_header(first)
    except MerlinError as e:
        raise DecodeError(f"the first frame's header describes frames this driver cannot "
                          f"decode: {e}") from None
    meta: dict[str, Any] = {
        "detector": "merlin", "pixel_format": first.pixel_format, "layout": first.layout,
        "counter_depth": depth, "frame_header": first,
    }
    if hdr is not None:
        meta["acquisition_header"] = dict(hdr.raw)
    if extra:
        meta.update(extra)
    return FrameFormat(sig_shape=decoder.sig_shape, dtype=dtype_for(first.pixel_format, depth),
                       decoder=decoder, metadata=meta)


def same_encoding(a: MerlinDecoder, b: MerlinDecoder) -> bool:
    """Whether two decoders read the same bytes the same way (layout only matters raw)."""
    def fmt(d: MerlinDecoder) -> str:
        return "U08" if d.pixel_format == "U01" else d.pixel_format  # both 1 byte/pixel
    if (fmt(a), a.sig_shape, a.payload_size) != (fmt(b), b.sig_shape, b.payload_size):
        return False
    if a.pixel_format == "R64":
        return (a.counter_depth, a.layout) == (b.counter_depth, b.layout)
    return True


class DataChannel:
    """The data socket of one connection and where it stands in the stream.

    ``timeout``: seconds without a byte, once a message has started, before a
    read fails.  ``reconnect_timeout``: how long (re)connecting retries, with
    exponential back-off, before :class:`DetectorConnectionError`.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 30.0,
                 reconnect_timeout: float = 10.0, connect_timeout: float = 5.0,
                 rcvbuf: Optional[int] = None):
        self.host, self.port = host, int(port)
        self.timeout = timeout
        self.reconnect_timeout = reconnect_timeout
        self.connect_timeout = connect_timeout
        self.rcvbuf = rcvbuf
        self.sock: Optional[socket.socket] = None
        self.broken: Optional[str] = None  # why the stream position is lost
        self.skip = 0  # bytes of an abandoned message still to discard
        self.pushback = bytearray()  # bytes read ahead, consumed before the socket
        self.pending_hdr: Optional[AcquisitionHeader] = None
        self.peeked: Optional[tuple[bytes, FrameHeader]] = None  # prefix+MQ1 header
        self.discarded = 0  # stale messages skipped while looking for a header
        self.connects = 0
        self.in_use = threading.Lock()  # held by the receiver thread while it reads

    @property
    def where(self) -> str:
        return f"the Merlin data port tcp://{self.host}:{self.port}"

    # --- connecting --------------------------------------------------------------
    def _connect_once(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        try:
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sec = int(POLL_S)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                            struct.pack("ll", sec, int((POLL_S - sec) * 1e6)))
        except BaseException:
            sock.close()
            raise
        return sock

    def connect(self, stop: Optional[threading.Event] = None) -> None:
        """Connect, retrying refused/unreachable with back-off (0.05 s doubling to
        1 s) for ``reconnect_timeout`` s: a restarting Merlin PC comes back, a
        wrong address fails with a message that says what to check."""
        self.close_socket()
        self.sock = connect_with_backoff(
            self._connect_once, where=self.where, timeout=self.reconnect_timeout, stop=stop,
            hint="Is the Merlin software running and is the data port right (default "
                 "6342)? Raise reconnect_timeout to wait longer")
        if self.connects:
            log.warning("reconnected to %s (connection %d)", self.where, self.connects + 1)
        self.connects += 1
        self.broken = None
        self.skip = 0
        self.pushback = bytearray()
        self.peeked = None
        self.pending_hdr = None

    def ensure(self) -> socket.socket:
        """The socket, reconnected first if the position in the stream was lost."""
        if self.sock is None or self.broken is not None:
            if self.broken is not None:
                log.info("reconnecting to %s: %s", self.where, self.broken)
            self.connect()
        assert self.sock is not None
        return self.sock

    def mark_broken(self, reason: str) -> None:
        self.broken = reason

    def close_socket(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # --- reading -------------------------------------------------------------------
    def recv_into(self, view: Any, *, deadline: Optional[float] = None,
                  stop: Optional[threading.Event] = None, what: str = "data",
                  at_boundary: bool = False, after: int = 0) -> None:
        """Fill ``view`` (pushback first).  Before the first byte of a message
        (``at_boundary``) the absolute ``deadline`` applies and a timeout leaves
        the position intact; once bytes came, the idle ``timeout`` applies and a
        stall marks the channel broken.  ``stop`` abandons the read; mid-message
        the rest of the message (this view's remainder plus ``after`` bytes) is
        remembered as :attr:`skip`, so the next acquisition starts on a message
        boundary without reconnecting."""
        mv = memoryview(view).cast("B")
        total = len(mv)
        got = 0
        if self.pushback:
            k = min(total, len(self.pushback))
            mv[:k] = self.pushback[:k]
            del self.pushback[:k]
            got = k
        sock = self.sock
        if sock is None:
            raise DetectorConnectionError(f"{self.where}: not connected")
        last = time.monotonic()
        while got < total:
            try:
                n = sock.recv_into(mv[got:], total - got, socket.MSG_WAITALL)
            except (BlockingIOError, socket.timeout):
                now = time.monotonic()
                started = got > 0 or not at_boundary
                if stop is not None and stop.is_set():
                    if started:
                        self.skip += total - got + after
                    raise MerlinStopped(f"stopped while reading {what}") from None
                if not started and deadline is not None and now >= deadline:
                    raise MerlinTimeout(f"no {what} before the deadline") from None
                if started and now - last >= self.timeout:
                    self.mark_broken(f"stalled in the middle of {what}")
                    raise MerlinTimeout(
                        f"no data for {self.timeout:g} s while reading {what} "
                        f"({got} of {total} bytes)") from None
                continue
            except OSError as e:
                self.mark_broken(f"socket error: {e}")
                raise MerlinConnectionClosed(f"{self.where}: {e}") from None
            if n == 0:
                self.mark_broken("connection closed by the detector")
                if got == 0 and at_boundary:
                    raise MerlinConnectionClosed(
                        f"{self.where} closed the connection (between messages)")
                raise MerlinTruncatedError(
                    f"{self.where} closed the connection in the middle of {what} "
                    f"({got} of {total} bytes)")
            got += n
            last = time.monotonic()

    def discard(self, n: int, stop: Optional[threading.Event] = None) -> None:
        """Drop ``n`` bytes (the rest of a message we do not want)."""
        buf = bytearray(min(n, 1 << 20))
        while n > 0:
            k = min(n, len(buf))
            self.recv_into(memoryview(buf)[:k], stop=stop, what="a skipped message")
            n -= k

    def _finish_skip(self, stop: Optional[threading.Event]) -> None:
        if self.skip:
            n, self.skip = self.skip, 0
            try:
                self.discard(n, stop)
            except MerlinStopped:
                self.mark_broken("stopped while skipping an abandoned message")
                raise

    def read_prefix(self, deadline: Optional[float],
                    stop: Optional[threading.Event] = None) -> tuple[bytes, int]:
        """One 15-byte MPX prefix and its payload length; garbage marks the
        channel broken (there is no way to find the next message boundary)."""
        self._finish_skip(stop)
        prefix = bytearray(PREFIX_LEN)
        self.recv_into(prefix, deadline=deadline, stop=stop, what="an MPX prefix",
                       at_boundary=True)
        try:
            return bytes(prefix), parse_prefix(prefix)
        except MerlinProtocolError:
            self.mark_broken(f"not an MPX message: {bytes(prefix)!r}")
            raise

    def find_header(self, deadline: Optional[float],
                    stop: Optional[threading.Event] = None) -> Optional[AcquisitionHeader]:
        """The next acquisition header; frames of an earlier acquisition are
        discarded and counted.  None when ``deadline`` passes.  A lost
        connection is re-established (a Merlin restart) while time is left."""
        if self.pending_hdr is not None:
            return self.pending_hdr
        while True:
            try:
                self.ensure()
                _, n = self.read_prefix(deadline, stop)
                start = bytearray(min(n, 4))
                self.recv_into(start, stop=stop, what="a message")
                if bytes(start[:3]) != b"HDR" or n > MAX_HEADER_MESSAGE:
                    self.skip = n - len(start)
                    self.discarded += 1
                    continue
                rest = bytearray(n - len(start))
                self.recv_into(rest, stop=stop, what="the acquisition header")
                try:
                    self.pending_hdr = parse_acquisition_header(bytes(start) + bytes(rest))
                except MerlinProtocolError as e:
                    raise FrameOrderError(
                        f"the acquisition header from {self.where} does not parse: {e}. "
                        "Is this a Merlin data port?") from None
                if self.discarded:
                    log.info("discarded %d stale messages before the acquisition header",
                             self.discarded)
                    self.discarded = 0
                return self.pending_hdr
            except MerlinTimeout:
                if self.broken is not None:
                    raise AcquisitionTimeoutError(
                        f"{self.where} stopped sending in the middle of a message for "
                        f"{self.timeout:g} s") from None
                return None
            except (MerlinConnectionClosed, MerlinTruncatedError) as e:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                log.warning("%s; reconnecting", e)
                self.mark_broken(str(e))
            except MerlinProtocolError as e:
                log.warning("garbage on %s (%s); reconnecting", self.where, e)
                self.mark_broken(str(e))

    def peek_first_frame(self, deadline: Optional[float],
                         stop: Optional[threading.Event] = None
                         ) -> Optional[tuple[bytes, FrameHeader]]:
        """Read (and keep for the receiver) the first frame's MPX prefix and MQ1
        header; None when ``deadline`` passes first.  It defines the format."""
        if self.peeked is not None:
            return self.peeked
        try:
            prefix, n = self.read_prefix(deadline, stop)
        except MerlinTimeout:
            return None
        start = bytearray(min(n, 32))
        self.recv_into(start, stop=stop, what="the first frame header")
        if bytes(start[:3]) == b"HDR":
            rest = bytearray(n - len(start))
            self.recv_into(rest, stop=stop, what="an acquisition header")
            log.warning("%s announced an acquisition that sent no frames; a new one "
                        "follows", self.where)
            self.pending_hdr = parse_acquisition_header(bytes(start) + bytes(rest))
            return self.peek_first_frame(deadline, stop)
        consumed = len(start)
        try:
            offset = peek_data_offset(start)
            if not len(start) <= offset <= n:
                raise MerlinProtocolError(f"data offset {offset} outside the message of "
                                          f"{n} bytes")
            rest = bytearray(offset - len(start))
            self.recv_into(rest, stop=stop, what="the first frame header")
            consumed += len(rest)
            head = bytes(start) + bytes(rest)
            fh = parse_frame_header(head)
        except MerlinProtocolError as e:
            self.skip = max(0, n - consumed)
            self.pending_hdr = None
            raise DecodeError(
                f"the first frame from {self.where} has a header that does not parse: {e}"
            ) from None
        if n - fh.data_offset <= 0:
            self.skip = 0
            self.pending_hdr = None
            raise DecodeError(f"the first frame from {self.where} has no pixel payload "
                              f"(MPX length {n + 1}, data offset {fh.data_offset})")
        self.peeked = (prefix + head, fh)
        return self.peeked

    def take_acquisition(self) -> tuple[AcquisitionHeader, Optional[tuple[bytes, FrameHeader]]]:
        """Hand the found header (and peeked first frame) to a receiver."""
        hdr, peeked = self.pending_hdr, self.peeked
        assert hdr is not None
        self.pending_hdr, self.peeked = None, None
        return hdr, peeked

    def drain_available(self) -> int:
        """Discard whatever is already buffered, message by message (stale
        frames or headers of an acquisition nobody consumed), without waiting."""
        n = 0
        self.pending_hdr = None
        self.peeked = None
        sock = self.ensure()
        import select
        while True:
            if not self.skip and not self.pushback:
                r, _, _ = select.select([sock], [], [], 0)
                if not r:
                    return n
            try:
                _, size = self.read_prefix(time.monotonic())
            except MerlinTimeout:
                return n
            except (MerlinConnectionClosed, MerlinTruncatedError, MerlinProtocolError):
                self.ensure()
                sock = self.sock
                continue
            self.skip = size
            n += 1

    def close(self) -> None:
        self.close_socket()
        self.pending_hdr = None
        self.peeked = None
        self.pushback = bytearray()
        self.skip = 0


class FrameReceiver:
    """Receives the frames of one acquisition into a stream (its own thread).

    ``peeked``: the first frame's prefix + header, already read (passive mode);
    otherwise the receiver waits for it (active mode: until the trigger).
    ``expect``: in active mode the decoder that the control-port settings
    predicted; the first frame must match it.
    """

    def __init__(self, channel: DataChannel, hdr: AcquisitionHeader, nimages: int,
                 peeked: Optional[tuple[bytes, FrameHeader]] = None,
                 expect: Optional[MerlinDecoder] = None):
        self.channel = channel
        self.hdr = hdr
        self.nimages = nimages
        self.peeked = peeked
        self.expect = expect
        self.first: Optional[FrameHeader] = None
        self.where = channel.where

    # --- errors -----------------------------------------------------------------------
    def _frames_came(self, frame: int) -> str:
        return f"{frame} of {self.nimages} frames came"

    def _fail_eof(self, frame: int, e: MerlinError) -> DetectorConnectionError:
        return DetectorConnectionError(
            f"{self.where} closed the connection during the acquisition ({self._frames_came(frame)}"
            f"; {e}). The Merlin software stopped or crashed, or the network dropped; the "
            "connection reconnects for the next acquisition")

    def _fail_timeout(self, frame: int) -> AcquisitionTimeoutError:
        return AcquisitionTimeoutError(
            f"no data from {self.where} for {self.channel.timeout:g} s: "
            f"{self._frames_came(frame)}. The acquisition was aborted or stopped early "
            "(no end message exists in the Merlin protocol), or the scan is not triggered; "
            "raise the connection's timeout for slow scans")

    # --- the hot path -----------------------------------------------------------------
    def __call__(self, stream: FrameStream) -> None:
        ch = self.channel
        with ch.in_use:
            try:
                self._run(stream)
            except MerlinStopped:
                return  # stream closed by the consumer; ch.skip holds the message rest
            finally:
                if ch.broken is not None:
                    # Drop a desynchronised socket now, before the run's error reaches
                    # the user: whatever the detector sends next (the next
                    # acquisition's header) must go to the fresh connection.
                    ch.close_socket()

    def _fill(self, view: Any, got: int, frame: int, stream: FrameStream, writer: Any,
              what: str, at_boundary: bool, after: int = 0) -> None:
        """Complete a read that the fast path left partial (or timed out on).

        Before waiting for a frame's header (``at_boundary``) the frames
        received so far are published, so that a slow stream still shows live
        results; a payload read never publishes: its frame's place in the
        current slot is reserved and is booked right after."""
        ch = self.channel
        mv = memoryview(view).cast("B")
        if at_boundary and writer.pending:
            writer.flush()
        try:
            # boundary reads wait as long as the idle timeout, not a deadline
            deadline = time.monotonic() + ch.timeout if (at_boundary and got == 0) else None
            ch.recv_into(mv[got:], deadline=deadline, stop=stream.stop_event,
                         what=what, at_boundary=at_boundary and got == 0, after=after)
        except MerlinTimeout:
            if got == 0 and at_boundary:
                stream.ledger.report_missing(frame, self.nimages - frame)
            raise self._fail_timeout(frame) from None
        except (MerlinConnectionClosed, MerlinTruncatedError) as e:
            stream.ledger.report_missing(frame, self.nimages - frame)
            raise self._fail_eof(frame, e) from None

    def _run(self, stream: FrameStream) -> None:
        ch = self.channel
        assert ch.sock is not None
        writer = stream.writer()
        stream.ledger.add(discarded_stale=ch.discarded)
        ch.discarded = 0

        # first frame: defines what every later one must look like
        if self.peeked is not None:
            head = bytearray(self.peeked[0])
        else:
            head = self._read_first_head(stream, writer)
        fh = self._check_first(head, stream)
        payload = int(parse_prefix(head[:PREFIX_LEN])) - fh.data_offset
        self._mpx = bytes(head[:PREFIX_LEN])
        self._payload = payload
        self._head_len = len(head)
        self._expected = ExpectedHeader(head, self._tail(head))
        dest = writer.reserve(0, payload)
        self._fill(dest, 0, 0, stream, writer, "the payload of frame 1", False)
        writer.commit(payload)
        scatter = SlotScatter(len(head), payload, frame_aligned(payload), stream.spec.max_frames)
        try:
            self._receive(stream, writer, scatter, 1)
        finally:
            scatter.release()
        writer.flush()
        stream.finish()

    def _receive(self, stream: FrameStream, writer: Any, scatter: SlotScatter,
                 frame: int) -> None:
        """Frames ``frame ..`` of the acquisition, as many per ``recvmsg_into``
        as the current ring slot holds.  A read that comes back short (stalled
        stream, stop request, connection lost) and bytes pushed back after an
        unexpected header continue frame by frame on the slow path."""
        ch = self.channel
        sock = ch.sock
        assert sock is not None
        n = self.nimages
        payload = self._payload
        frame_bytes = scatter.head_len + payload
        slot_bytes = writer.slot_bytes
        max_frames = stream.spec.max_frames
        check = self._expected.first_bad
        heads = scatter.heads
        recvmsg_into = sock.recvmsg_into
        WAITALL = socket.MSG_WAITALL
        monotonic = time.monotonic
        last_flush = monotonic()
        while frame < n:
            if ch.pushback:
                self._frame_slowly(frame, stream, writer)
                frame += 1
                continue
            row, table, count, fill = writer.lease(frame)
            k = min(n - frame, scatter.frames_that_fit(count, fill, slot_bytes, max_frames))
            if k == 0:
                writer.flush()
                continue
            want = k * frame_bytes
            try:
                got = recvmsg_into(scatter.buffers(row, count, k), 0, WAITALL)[0]
            except (BlockingIOError, socket.timeout):
                got = 0
            except OSError as e:
                ch.mark_broken(f"socket error: {e}")
                stream.ledger.report_missing(frame, n - frame)
                raise self._fail_eof(frame, MerlinConnectionClosed(str(e))) from None
            whole = got // frame_bytes
            checked = whole + (1 if got - whole * frame_bytes >= scatter.head_len else 0)
            bad = check(heads, count, checked, frame + 1) if checked else -1
            good = checked if bad < 0 else bad
            good = min(good, whole)
            if good:
                table_rows(table, scatter.offsets, count, count + good, payload)
                writer.settle(count + good, fill + good * scatter.stride)
            if bad >= 0:
                ch.pushback = bytearray(scatter.received_after_head(row, count, bad, got))
                self._unexpected(bytearray(heads[count + bad]), frame + bad, stream, writer)
                frame += bad + 1
                continue
            frame += good
            if got == want:
                if monotonic() - last_flush > FLUSH_S:
                    writer.flush()
                    last_flush = monotonic()
                continue
            part = got - whole * frame_bytes
            start = int(scatter.offsets[count + whole])
            self._finish_partial(frame, part, heads[count + whole],
                                 row[start:start + max(0, part - scatter.head_len)],
                                 stream, writer)
            frame += 1
            if monotonic() - last_flush > FLUSH_S:
                writer.flush()
                last_flush = monotonic()

    def _finish_partial(self, frame: int, part: int, head_row: np.ndarray,
                        got_payload: np.ndarray, stream: FrameStream, writer: Any) -> None:
        """Complete frame ``frame`` of which a short batch read ``part`` bytes
        (its header, if complete, was already checked; ``got_payload`` holds
        the payload bytes that came), and book it.  The frames before it are
        published first: the stream has stalled, and a failure must find them
        counted."""
        hl = head_row.shape[0]
        payload = self._payload
        if part < hl:
            head = bytearray(hl)
            head[:part] = head_row[:part].tobytes()
            self._fill(head, part, frame, stream, writer, f"the header of frame {frame + 1}",
                       True, after=payload)
            self._check_head(head, frame, stream, writer)
            part = hl
        saved = got_payload.tobytes()
        writer.flush()
        dest = writer.reserve(frame, payload)
        dest[:len(saved)] = np.frombuffer(saved, dtype=np.uint8)
        self._fill(dest, part - hl, frame, stream, writer, f"the payload of frame {frame + 1}",
                   False)
        writer.commit(payload)

    def _frame_slowly(self, frame: int, stream: FrameStream, writer: Any) -> None:
        """One frame through the channel (which serves pushed-back bytes first)."""
        head = bytearray(self._head_len)
        self._fill(head, 0, frame, stream, writer, f"the header of frame {frame + 1}", True,
                   after=self._payload)
        self._check_head(head, frame, stream, writer)
        dest = writer.reserve(frame, self._payload)
        self._fill(dest, 0, frame, stream, writer, f"the payload of frame {frame + 1}", False)
        writer.commit(self._payload)

    def _check_head(self, head: bytearray, frame: int, stream: FrameStream,
                    writer: Any) -> None:
        if not self._expected.ok(head, frame + 1):
            self._slow_check(head, frame, stream, writer, self._mpx, self._payload)

    def _unexpected(self, head: bytearray, frame: int, stream: FrameStream,
                    writer: Any) -> None:
        """A batch read found a header that is not the predicted one: the slow
        check raises the error that names it, or it was fine after all and
        the frame is read from the pushed-back bytes."""
        self._slow_check(head, frame, stream, writer, self._mpx, self._payload)
        dest = writer.reserve(frame, self._payload)
        self._fill(dest, 0, frame, stream, writer, f"the payload of frame {frame + 1}", False)
        writer.commit(self._payload)

    def _tail(self, head: bytearray) -> bytes:
        """Fields 2..7 of the MQ1 header (offset, chips, width, height, format,
        layout) with their commas: constant over an acquisition."""
        body = bytes(head[PREFIX_LEN:])
        parts = body.split(b",", 8)
        return b",".join(parts[2:8]) + b","

    def _read_first_head(self, stream: FrameStream, writer: Any) -> bytearray:
        """Active mode: wait for the first frame (the trigger) and read its header."""
        ch = self.channel
        deadline = time.monotonic() + ch.timeout
        try:
            peeked = ch.peek_first_frame(deadline, stream.stop_event)
        except (MerlinConnectionClosed, MerlinTruncatedError) as e:
            stream.ledger.report_missing(0, self.nimages)
            raise self._fail_eof(0, e) from None
        except MerlinTimeout:
            peeked = None
        if peeked is None:
            stream.ledger.report_missing(0, self.nimages)
            raise AcquisitionTimeoutError(
                f"the Merlin was armed, but no frame came from {self.where} within "
                f"{ch.timeout:g} s: 0 of {self.nimages} frames came. Is it triggered "
                "(TRIGGERSTART, a soft trigger in on_ready_for_data or soft_trigger=True, "
                "or the scan engine)?")
        ch.peeked = None
        ch.pending_hdr = None
        return bytearray(peeked[0])

    def _check_first(self, head: bytearray, stream: FrameStream) -> FrameHeader:
        fh = parse_frame_header(head[PREFIX_LEN:])
        self.first = fh
        if fh.sequence != 1:
            log.warning("first frame from %s has sequence number %d, expected 1",
                        self.where, fh.sequence)
            if fh.sequence > 1:
                stream.ledger.report_missing(0, min(fh.sequence - 1, self.nimages))
                self._skip_payload(head)
                raise FrameOrderError(
                    f"the first frame from {self.where} has sequence number {fh.sequence}: "
                    f"frames 1..{fh.sequence - 1} were lost (the receiver connected or "
                    "was armed late?)")
        if self.expect is not None:
            fmt = frame_format_for(fh, self.hdr)
            got = fmt.decoder
            assert isinstance(got, MerlinDecoder)
            if not same_encoding(got, self.expect):
                self._skip_payload(head)
                stream.ledger.report_missing(0, self.nimages)
                raise DecodeError(
                    f"the frames from {self.where} are {fh.pixel_format} "
                    f"{fh.counter_depth}-bit {fh.layout} {got.sig_shape}, but the "
                    f"detector settings read before arming said {self.expect.pixel_format} "
                    f"{self.expect.counter_depth}-bit {self.expect.sig_shape}: the "
                    "settings changed after make_acquisition; make the acquisition again")
        return fh

    def _skip_payload(self, head: bytearray) -> None:
        try:
            n = parse_prefix(head[:PREFIX_LEN])
        except MerlinProtocolError:
            self.channel.mark_broken("garbage where a frame was expected")
            return
        self.channel.skip = max(0, n - (len(head) - PREFIX_LEN))
        if n < len(head) - PREFIX_LEN:
            self.channel.pushback = bytearray(head[PREFIX_LEN + n:]) + self.channel.pushback

    def _slow_check(self, head: bytearray, frame: int, stream: FrameStream, writer: Any,
                    mpx: bytes, payload: int) -> None:
        """A header that does not look like the predicted one: say exactly why, keep
        the channel on a message boundary, and fail.  Returns only when the
        header is fine after all (a sequence number past 999999 that the fast
        check did not predict)."""
        ch = self.channel
        writer.flush()
        seq_no = frame + 1
        try:
            n = parse_prefix(head[:PREFIX_LEN])
        except MerlinProtocolError as e:
            ch.mark_broken("garbage where an MPX prefix was expected")
            stream.ledger.report_missing(frame, self.nimages - frame)
            raise FrameOrderError(
                f"expected frame {seq_no} of {self.nimages} from {self.where}, got bytes that "
                f"are not an MPX message ({e}); {frame} frames came. The stream lost "
                "synchronisation; the connection reconnects for the next acquisition"
            ) from None
        body = head[PREFIX_LEN:]
        if body.startswith(b"HDR"):
            self._skip_payload(head)
            ch.skip = 0
            rest = bytearray(max(0, n - len(body)))
            try:
                ch.recv_into(rest, stop=stream.stop_event, what="an acquisition header")
                ch.pending_hdr = parse_acquisition_header(bytes(body[:n]) + bytes(rest))
            except MerlinError:
                ch.mark_broken("unreadable acquisition header")
            stream.ledger.report_missing(frame, self.nimages - frame)
            raise StreamTruncatedError(
                f"a new acquisition header arrived from {self.where} after {frame} of "
                f"{self.nimages} frames: the acquisition was stopped or aborted early. "
                "The new acquisition is kept for the next wait_for_acquisition()")
        try:
            fh = parse_frame_header(body)
        except MerlinProtocolError as e:
            self._skip_payload(head)
            stream.ledger.report_missing(frame, self.nimages - frame)
            raise DecodeError(
                f"frame {seq_no} of {self.nimages} from {self.where} has a header that does "
                f"not parse ({e}); {frame} frames came before it") from None
        if head[:PREFIX_LEN] != mpx:
            self._skip_payload(head)
            stream.ledger.report_missing(frame, self.nimages - frame)
            raise DecodeError(
                f"frame {fh.sequence} from {self.where} is an MPX message of {n + 1} bytes, "
                f"the acquisition's frames are {int(mpx[4:14])}: the frame size changed "
                f"mid-acquisition ({frame} of {self.nimages} frames came)")
        first = self.first
        assert first is not None
        if (fh.pixel_format, fh.layout, fh.width, fh.height, fh.data_offset) != (
                first.pixel_format, first.layout, first.width, first.height,
                first.data_offset):
            self._skip_payload(head)
            stream.ledger.report_missing(frame, self.nimages - frame)
            raise DecodeError(
                f"frame {fh.sequence} from {self.where} is {fh.pixel_format} {fh.layout} "
                f"{fh.width}x{fh.height}, the acquisition started as {first.pixel_format} "
                f"{first.layout} {first.width}x{first.height}")
        if fh.sequence == seq_no:
            return  # e.g. a 7-digit sequence number: fine
        self._skip_payload(head)
        if fh.sequence > seq_no:
            stream.ledger.report_missing(frame, fh.sequence - seq_no)
            raise FrameOrderError(
                f"sequence gap from {self.where}: expected frame {seq_no}, got "
                f"{fh.sequence} ({fh.sequence - seq_no} frames lost after {frame} of "
                f"{self.nimages}). The detector or the network dropped frames; frames "
                "are never shifted into the wrong scan positions")
        stream.ledger.report_missing(frame, self.nimages - frame)
        raise FrameOrderError(
            f"frame {fh.sequence} from {self.where} arrived again after frame {frame} "
            "(duplicate or out of order)")


__all__ = ["DataChannel", "FrameReceiver", "frame_format_for", "dtype_for", "same_encoding"]
