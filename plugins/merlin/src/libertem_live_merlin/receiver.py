"""The Merlin data plane: one TCP socket, MPX messages -> the core's frame ring.

Two parts.  :class:`DataPort` is the data socket of a connection (the core's
:class:`~libertem_live.driver.TcpReader`: back-off, exact reads, skipping
the rest of an abandoned message) plus what lies between acquisitions:
finding the next acquisition header (discarding stale frames), peeking the
first frame's header, which defines the format.  :class:`MerlinFraming` is
one acquisition's :class:`~libertem_live.driver.Framing`, run by the core's
receive loop.

Why the socket is used the way it is: it stays in blocking mode with
``SO_RCVTIMEO`` set to a short poll interval (the reader sets it up), and the
hot path reads many frames per ``recvmsg_into`` with ``MSG_WAITALL``: the
MPX prefix + MQ1 headers into rows of a scratch array, the pixel payloads
straight into their places in a ring slot (:mod:`.batch`).  A batch that
comes back short (a stall, a stop request, the end of the data for now) is
completed frame by frame on a slow path; so is a batch with a header that
is not the predicted one, which the slow path names (or, for a frame number
that jumps, writes under the detector's number so that the core books the
gap).

The MPX stream has no end-of-series message.  A series ends when its last
frame came; one that the detector stopped early shows as the next
acquisition's header where a frame was due, or (when the connection's
control port is open) as a silent data port while the detector reports
``DETECTORSTATUS`` 0 (idle).
"""
from __future__ import annotations

import logging
import select
import socket
import threading
import time
from typing import Callable, Optional

import numpy as np

from libertem_live.driver import (
    FOREVER, AcquisitionTimeoutError, DecodeError, FrameFormatError, FrameOrderError,
    IdleTimeout, PeerClosed, RingWriter, Stalled, StreamTruncatedError, TcpReader, Truncated,
    frame_aligned,
)

from .batch import ExpectedHeader, SlotScatter, table_rows
from .decode import MerlinDecoder
from .errors import MerlinProtocolError, MerlinStillSendingError
from .headers import (AcquisitionHeader, FrameHeader, parse_acquisition_header,
                      parse_frame_header, peek_data_offset)
from .wire import (MAX_HEADER_MESSAGE, PREFIX_LEN, frame_format_for, mq1_tail, parse_prefix,
                   same_encoding)

log = logging.getLogger(__name__)

DRAIN_LIMIT_S = 2.0
"""Before an active-mode arm, stale data is discarded for at most this long;
data still coming then is a running acquisition, not leftovers."""
PROBE_AFTER_S = 0.25
"""Quiet seconds in the middle of a series before the receiver asks the
control port whether the detector still acquires (and between two asks)."""

Peeked = tuple[bytes, FrameHeader]


class DataPort:
    """The data socket of one connection and where it stands between acquisitions.

    ``timeout``: seconds without a byte, once a message started, before a
    read stalls.  ``reconnect_timeout``: how long (re)connecting retries,
    with back-off, before :class:`~libertem_live.driver.DetectorConnectionError`.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 30.0,
                 reconnect_timeout: float = 10.0, rcvbuf: Optional[int] = None):
        self.where = f"the Merlin data port tcp://{host}:{port}"
        self.reader = TcpReader(
            host, port, where=self.where, stall_timeout=timeout,
            reconnect_timeout=reconnect_timeout, rcvbuf=rcvbuf,
            hint="Is the Merlin software running and is the data port right (default "
                 "6342)? Raise reconnect_timeout to wait longer")
        self.timeout = float(timeout)
        self.pending_hdr: Optional[AcquisitionHeader] = None
        self.peeked: Optional[Peeked] = None  # prefix + MQ1 header of the first frame
        self.discarded = 0  # stale messages skipped while looking for a header
        self.pushed = 0
        """Bytes pushed back into the reader and not read again yet (at most: a
        skip may discard some unseen); while any are left, the batch path,
        which reads the socket directly, must not run."""
        self._connects = 0

    # --- reads that keep count of pushed-back bytes ------------------------------------
    def push_back(self, data: bytes) -> None:
        if data:
            self.reader.push_back(data)
            self.pushed += len(data)

    def read_into(self, view, **kw) -> None:  # noqa: ANN001, ANN003 - as TcpReader's
        r = self.reader
        if r.connects != self._connects:  # a new connection has no pushed-back bytes
            self._connects = r.connects
            self.pushed = 0
        r.read_into(view, **kw)
        if self.pushed:
            self.pushed = max(0, self.pushed - memoryview(view).nbytes)

    def read_exactly(self, n: int, **kw) -> bytearray:  # noqa: ANN003 - as TcpReader's
        buf = bytearray(n)
        self.read_into(buf, **kw)
        return buf

    @property
    def has_pushback(self) -> bool:
        if self.reader.connects != self._connects:
            self._connects = self.reader.connects
            self.pushed = 0
        return self.pushed > 0

    def connect(self) -> None:
        self.reader.connect()
        self.pending_hdr = None
        self.peeked = None

    def close(self) -> None:
        self.reader.close()
        self.pending_hdr = None
        self.peeked = None

    # --- reading between acquisitions ------------------------------------------------
    def read_prefix(self, deadline: Optional[float],
                    stop: Optional[threading.Event] = None) -> tuple[bytes, int]:
        """One MPX prefix and its payload length (``deadline`` as for
        :meth:`TcpReader.read_into`).  Garbage marks the socket broken: there
        is no way to find the next message boundary."""
        r = self.reader
        start = r.offset
        prefix = self.read_exactly(PREFIX_LEN, deadline=deadline, stop=stop, what="an MPX prefix")
        try:
            return bytes(prefix), parse_prefix(prefix, start)
        except MerlinProtocolError:
            r.mark_broken(f"not an MPX message: {bytes(prefix)!r}")
            raise

    def find_header(self, deadline: Optional[float],
                    stop: Optional[threading.Event] = None) -> Optional[AcquisitionHeader]:
        """The next acquisition header; frames of an earlier acquisition are
        discarded and counted.  None when ``deadline`` (``time.monotonic()``
        seconds; None: wait until one comes) passes.  A lost connection is
        re-established (a Merlin restart) while time is left."""
        if self.pending_hdr is not None:
            return self.pending_hdr
        r = self.reader
        wait = FOREVER if deadline is None else deadline
        while True:
            try:
                r.ensure(stop)
                _, n = self.read_prefix(wait, stop)
                k = min(n, 4)
                start = self.read_exactly(k, stop=stop, at_boundary=False, what="a message",
                                       after=n - k)
                if bytes(start[:3]) != b"HDR" or n > MAX_HEADER_MESSAGE:
                    r.skip += n - k
                    self.discarded += 1
                    continue
                rest = self.read_exactly(n - k, stop=stop, at_boundary=False,
                                      what="the acquisition header")
                try:
                    self.pending_hdr = parse_acquisition_header(bytes(start) + bytes(rest))
                except MerlinProtocolError as e:
                    raise FrameFormatError(
                        f"the acquisition header from {self.where} does not parse: {e}. "
                        "Is this a Merlin data port?") from None
                if self.discarded:
                    log.info("discarded %d stale messages before the acquisition header",
                             self.discarded)
                    self.discarded = 0
                return self.pending_hdr
            except IdleTimeout:
                return None
            except Stalled:
                raise AcquisitionTimeoutError(
                    f"{self.where} stopped sending in the middle of a message for "
                    f"{self.timeout:g} s") from None
            except (PeerClosed, Truncated) as e:
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                log.warning("%s closed the connection (%s); reconnecting", self.where, e)
            except MerlinProtocolError as e:
                log.warning("garbage on %s (%s); reconnecting", self.where, e)

    def peek_first_frame(self, deadline: Optional[float],
                         stop: Optional[threading.Event] = None) -> Optional[Peeked]:
        """Read (and keep for the receiver) the first frame's MPX prefix and MQ1
        header; None when nothing came by ``deadline`` (as for
        :meth:`TcpReader.read_into`: None waits one poll interval).  The
        first frame defines the format."""
        if self.peeked is not None:
            return self.peeked
        r = self.reader
        try:
            prefix, n = self.read_prefix(deadline, stop)
        except IdleTimeout:
            return None
        k = min(n, 32)
        start = bytes(self.read_exactly(k, stop=stop, at_boundary=False,
                                     what="the first frame header", after=n - k))
        if start[:3] == b"HDR":
            rest = self.read_exactly(n - k, stop=stop, at_boundary=False,
                                  what="an acquisition header")
            log.warning("%s announced an acquisition that sent no frames; a new one "
                        "follows", self.where)
            self.pending_hdr = parse_acquisition_header(start + bytes(rest))
            return self.peek_first_frame(deadline, stop)
        consumed = k
        try:
            offset = peek_data_offset(start)
            if not k <= offset <= n:
                raise MerlinProtocolError(f"data offset {offset} outside the message of "
                                          f"{n} bytes")
            rest = self.read_exactly(offset - k, stop=stop, at_boundary=False,
                                  what="the first frame header", after=n - offset)
            consumed += len(rest)
            head = start + bytes(rest)
            fh = parse_frame_header(head)
        except MerlinProtocolError as e:
            r.skip += max(0, n - consumed)
            self.pending_hdr = None
            raise DecodeError(
                f"the first frame from {self.where} has a header that does not parse: {e}"
            ) from None
        if n - fh.data_offset <= 0:
            self.pending_hdr = None
            raise DecodeError(f"the first frame from {self.where} has no pixel payload "
                              f"(MPX length {n + 1}, data offset {fh.data_offset})")
        self.peeked = (prefix + head, fh)
        return self.peeked

    def take_acquisition(self) -> tuple[AcquisitionHeader, Optional[Peeked]]:
        """Hand the found header (and peeked first frame) to a receiver."""
        hdr, peeked = self.pending_hdr, self.peeked
        assert hdr is not None
        self.pending_hdr, self.peeked = None, None
        return hdr, peeked

    def drain_available(self, limit_s: float = DRAIN_LIMIT_S) -> int:
        """Discard whatever is already buffered, message by message (stale
        frames or headers of an acquisition nobody consumed), without waiting.
        Data that keeps coming for ``limit_s`` is not stale: the detector is
        acquiring, and MerlinStillSendingError says so."""
        n = 0
        self.pending_hdr = None
        self.peeked = None
        r = self.reader
        sock = r.ensure()
        deadline = time.monotonic() + limit_s
        while True:
            if time.monotonic() > deadline:
                raise MerlinStillSendingError(
                    f"{self.where} kept sending after {n} stale messages were discarded "
                    f"for {limit_s:g} s: the detector is acquiring (a continuous "
                    f"acquisition, or one started by another program). Stop it "
                    f"(CMD STOPACQUISITION on the control port) and arm again")
            if not r.skip and not self.has_pushback:
                ready, _, _ = select.select([sock], [], [], 0)
                if not ready:
                    return n
            try:
                _, size = self.read_prefix(time.monotonic())
            except IdleTimeout:
                return n
            except (PeerClosed, Truncated, Stalled, MerlinProtocolError):
                sock = r.ensure()
                continue
            r.skip += size
            n += 1


class MerlinFraming:
    """Receives the frames of one acquisition (a Framing for the core's loop).

    ``peeked``: the first frame's prefix + header, already read (passive
    mode); otherwise it waits for it (active mode: until the trigger).
    ``expect``: in active mode the decoder that the control-port settings
    predicted; the first frame must match it.  ``probe``: asks the control
    port whether the detector is idle (True), busy (False) or cannot tell
    (None); used when the data port falls silent in the middle of a series.
    """

    def __init__(self, port: DataPort, hdr: AcquisitionHeader, nimages: int,
                 peeked: Optional[Peeked] = None, expect: Optional[MerlinDecoder] = None,
                 probe: Optional[Callable[[], Optional[bool]]] = None):
        self.port = port
        self.reader = port.reader
        self.where = port.where
        self.hdr = hdr
        self.nimages = nimages
        self.peeked = peeked
        self.expect = expect
        self.probe = probe
        self.first: Optional[FrameHeader] = None
        self.next = 0  # 0-based index of the frame the detector sends next
        self._ready = False
        self._scatter: Optional[SlotScatter] = None
        self._partial: Optional[bytearray] = None  # a frame a short batch read began
        self._partial_got = 0
        self._halted = False  # a frame came out of sequence: the core fails the run
        self._quiet_since: Optional[float] = None
        self._idle_at: Optional[float] = None
        self._last_probe = 0.0
        if port.discarded:
            log.info("%d stale messages were discarded on %s before this acquisition",
                     port.discarded, self.where)
            port.discarded = 0

    # --- the Framing ------------------------------------------------------------------
    def receive(self, out: RingWriter, stop: threading.Event) -> bool:
        try:
            if self._halted:
                stop.wait(0.05)  # until the consumer, failing the run, closes the stream
                return True
            if not self._ready:
                if not self._start(out, stop):
                    return True
            elif self._partial is not None or self.port.has_pushback:
                if out.pending:
                    return True  # publish what came before waiting on the slow path
                if self._partial is not None:
                    self._complete_partial(out, stop)
                else:
                    self._frame_slowly(out, stop)
            elif self.next < self.nimages:
                self._batch(out, stop)
            return self.next < self.nimages
        except BaseException:
            if self.reader.broken is not None:
                # drop a desynchronised socket before the error reaches the user:
                # what the detector sends next must go to a fresh connection
                self.reader.close()
            raise

    def release(self) -> None:
        """Drop every view of the ring (the stream is closing)."""
        if self._scatter is not None:
            self._scatter.release()
            self._scatter = None

    # --- the first frame ----------------------------------------------------------------
    def _start(self, out: RingWriter, stop: threading.Event) -> bool:
        """The first frame: defines what every later one must look like."""
        if self.peeked is not None:
            head = bytearray(self.peeked[0])
        else:
            peeked = self.port.peek_first_frame(None, stop)
            if peeked is None:
                return False
            self.port.peeked = None
            self.port.pending_hdr = None
            head = bytearray(peeked[0])
        payload = parse_prefix(head[:PREFIX_LEN]) - (len(head) - PREFIX_LEN)
        index = self._check_first(head, payload)
        self._mpx = bytes(head[:PREFIX_LEN])
        self._payload = payload
        self._head_len = len(head)
        self._frame_bytes = len(head) + payload
        self._expected = ExpectedHeader(head, mq1_tail(head))
        self._ready = True
        dest = out.reserve(index, payload)
        self._read(dest, stop, f"the payload of frame {index}")
        out.commit(payload)
        self.next = index + 1
        self._halted = index != 0  # frames before it are lost: the core fails the run
        return True

    def _check_first(self, head: bytearray, payload: int) -> int:
        fh = parse_frame_header(head[PREFIX_LEN:])
        self.first = fh
        if self.expect is not None:
            got = frame_format_for(fh, self.hdr).decoder
            assert isinstance(got, MerlinDecoder)
            if not same_encoding(got, self.expect):
                self.reader.skip += payload
                raise FrameFormatError(
                    f"the frames from {self.where} are {fh.pixel_format} "
                    f"{fh.counter_depth}-bit {fh.layout} {got.sig_shape}, but the "
                    f"detector settings read before arming said {self.expect.pixel_format} "
                    f"{self.expect.counter_depth}-bit {self.expect.sig_shape}: the "
                    "settings changed after make_acquisition; make the acquisition again")
        if not 1 <= fh.sequence <= self.nimages:
            self.reader.skip += payload
            raise FrameOrderError(
                f"the first frame from {self.where} has frame number {fh.sequence}, outside "
                f"1..{self.nimages} of this acquisition")
        if fh.sequence != 1:
            log.warning("first frame from %s has sequence number %d, expected 1",
                        self.where, fh.sequence)
        return fh.sequence - 1

    # --- the hot path -----------------------------------------------------------------
    def _batch(self, out: RingWriter, stop: threading.Event) -> None:
        """As many frames as the current ring slot holds, in one ``recvmsg_into``."""
        frame = self.next
        payload = self._payload
        out.reserve(frame, payload)  # a slot with room for at least one more frame
        row, table, count, fill = out.lease(frame)
        sc = self._scatter
        if sc is None:
            sc = self._scatter = SlotScatter(self._head_len, payload, frame_aligned(payload),
                                             table.shape[1])
        frame_bytes = self._frame_bytes
        k = min(self.nimages - frame,
                sc.frames_that_fit(count, fill, out.slot_bytes, table.shape[1]))
        sock = self.reader.sock
        assert sock is not None
        try:
            got = sock.recvmsg_into(sc.buffers(row, count, k), 0, socket.MSG_WAITALL)[0]
        except (BlockingIOError, socket.timeout):
            self._quiet()
            return
        except OSError as e:
            self.reader.mark_broken(f"socket error: {e}")
            raise PeerClosed(f"{e}") from None
        if got == 0:
            self.reader.mark_broken("connection closed by the detector")
            raise PeerClosed("between frames")
        self._quiet_since = self._idle_at = None
        self.reader.offset += got
        heads = sc.heads
        whole = got // frame_bytes
        checked = whole + (1 if got - whole * frame_bytes >= sc.head_len else 0)
        bad = self._expected.first_bad(heads, count, checked, frame + 1) if checked else -1
        good = min(checked if bad < 0 else bad, whole)
        if good:
            table_rows(table, sc.offsets, count, count + good, payload)
            out.settle(count + good, fill + good * sc.stride)
            self.next = frame + good
        if bad >= 0:
            rest = sc.received_after_head(row, count, bad, got)
            head = bytearray(heads[count + bad])
            self.port.push_back(rest)
            index = self._classify(head, frame + bad)
            self._store(out, index, b"", stop)
            return
        part = got - whole * frame_bytes
        if part == 0:
            return
        # a short read: keep the frame it began and complete it on the slow path
        buf = bytearray(frame_bytes)
        hl = sc.head_len
        buf[:min(part, hl)] = heads[count + whole, :min(part, hl)].tobytes()
        if part > hl:
            start = int(sc.offsets[count + whole])
            buf[hl:part] = row[start:start + part - hl].tobytes()
        self._partial, self._partial_got = buf, part

    # --- the slow path ----------------------------------------------------------------
    def _read(self, view, stop: threading.Event, what: str,  # noqa: ANN001 - a buffer
              at_boundary: bool = False, after: int = 0) -> None:
        self.port.read_into(view, stop=stop, at_boundary=at_boundary, what=what, after=after)

    def _store(self, out: RingWriter, index: int, have: bytes | bytearray | memoryview,
               stop: threading.Event) -> None:
        """Frame ``index``: ``have`` of its payload bytes came, read the rest."""
        payload = self._payload
        dest = out.reserve(index, payload)
        n = len(have)
        if n:
            dest[:n] = np.frombuffer(have, dtype=np.uint8)
        if n < payload:
            self._read(dest[n:], stop, f"the payload of frame {index}")
        out.commit(payload)
        if index != self.next:
            # Out of sequence: the core fails the run when it reaches this frame
            # (a gap or a step back in the detector's numbering); reading on would
            # only book frames the failed run never uses.
            self._halted = True
        self.next = index + 1

    def _complete_partial(self, out: RingWriter, stop: threading.Event) -> None:
        """Complete the frame a short batch read began (its header, if whole,
        was checked already)."""
        buf, got = self._partial, self._partial_got
        assert buf is not None
        self._partial = None
        index = self.next
        hl = self._head_len
        if got < hl:
            self._read(memoryview(buf)[got:hl], stop, f"the header of frame {index}",
                       after=self._payload)
            if not self._expected.ok(buf[:hl], index + 1):
                index = self._classify(buf[:hl], index)
            got = hl
        self._store(out, index, memoryview(buf)[hl:got], stop)

    def _frame_slowly(self, out: RingWriter, stop: threading.Event) -> None:
        """One frame through the reader (which serves pushed-back bytes first)."""
        index = self.next
        head = bytearray(self._head_len)
        self._read(head, stop, f"the header of frame {index}", at_boundary=True,
                   after=self._payload)
        if not self._expected.ok(head, index + 1):
            index = self._classify(head, index)
        self._store(out, index, b"", stop)

    def _skip_rest(self, head: bytearray, n: int) -> None:
        """Keep the reader on a message boundary after a frame whose MPX length
        is ``n`` and of which ``head`` was read."""
        body = len(head) - PREFIX_LEN
        self.reader.skip += max(0, n - body)
        if n < body:
            self.port.push_back(bytes(head[PREFIX_LEN + n:]))

    def _classify(self, head: bytearray, frame: int) -> int:
        """A header that does not look like the predicted one: the index the
        detector gave the frame (a gap, a duplicate or a swap: the core books
        it), or an error that says exactly why it cannot be used, with the
        reader kept on a message boundary."""
        seq_no = frame + 1
        n_all = self.nimages
        try:
            n = parse_prefix(head[:PREFIX_LEN])
        except MerlinProtocolError as e:
            self.reader.mark_broken("garbage where an MPX prefix was expected")
            raise FrameOrderError(
                f"expected frame {seq_no} of {n_all} from {self.where}, got bytes that are "
                f"not an MPX message ({e}); {frame} frames came. The stream lost "
                "synchronisation; the connection reconnects for the next acquisition"
            ) from None
        body = head[PREFIX_LEN:]
        if body.startswith(b"HDR"):
            self._skip_rest(head, n)
            self.reader.skip = 0
            rest = bytearray(max(0, n - len(body)))
            try:
                self.port.read_into(rest, at_boundary=False, what="an acquisition header")
                self.port.pending_hdr = parse_acquisition_header(bytes(body[:n]) + bytes(rest))
            except (MerlinProtocolError, IdleTimeout, Stalled, PeerClosed, Truncated):
                self.reader.mark_broken("unreadable acquisition header")
            raise StreamTruncatedError(
                f"a new acquisition header arrived from {self.where} after {frame} of "
                f"{n_all} frames: the acquisition was stopped or aborted early. "
                "The new acquisition is kept for the next wait_for_acquisition()")
        try:
            fh = parse_frame_header(body)
        except MerlinProtocolError as e:
            self._skip_rest(head, n)
            raise DecodeError(
                f"frame {seq_no} of {n_all} from {self.where} has a header that does "
                f"not parse ({e}); {frame} frames came before it") from None
        first = self.first
        assert first is not None
        if (fh.pixel_format, fh.layout, fh.width, fh.height, fh.data_offset,
                fh.counter_depth) != (first.pixel_format, first.layout, first.width,
                                      first.height, first.data_offset, first.counter_depth):
            self._skip_rest(head, n)
            raise FrameFormatError(
                f"frame {fh.sequence} from {self.where} is {fh.pixel_format} "
                f"{fh.counter_depth}-bit {fh.layout} {fh.width}x{fh.height}, the "
                f"acquisition started as {first.pixel_format} {first.counter_depth}-bit "
                f"{first.layout} {first.width}x{first.height} ({frame} of {n_all} frames "
                "came)")
        if head[:PREFIX_LEN] != self._mpx:
            self._skip_rest(head, n)
            raise DecodeError(
                f"frame {fh.sequence} from {self.where} is an MPX message of {n + 1} bytes, "
                f"the acquisition's frames are {int(self._mpx[4:14])}: the frame size changed "
                f"mid-acquisition, its payload is cut short or padded ({frame} of {n_all} "
                "frames came)")
        if not 1 <= fh.sequence <= n_all:
            self._skip_rest(head, n)
            raise FrameOrderError(
                f"frame number {fh.sequence} from {self.where} is outside 1..{n_all} of this "
                f"acquisition (expected frame {seq_no})")
        if fh.sequence != seq_no:
            log.warning("%s: expected frame %d, got %d", self.where, seq_no, fh.sequence)
        return fh.sequence - 1

    # --- a silent data port ---------------------------------------------------------------
    def _quiet(self) -> None:
        """Nothing came in one poll interval.  After a while, ask the control
        port: a detector that is idle while frames are due stopped early."""
        if self.probe is None:
            return
        now = time.monotonic()
        if self._quiet_since is None:
            self._quiet_since = now
            return
        if now - self._quiet_since < PROBE_AFTER_S:
            return
        if self._idle_at is not None:
            if now > self._idle_at:  # idle, and still nothing came since
                raise StreamTruncatedError(
                    f"{self.where} fell silent after {self.next} of {self.nimages} frames "
                    "and the Merlin reports it is idle (DETECTORSTATUS 0): the acquisition "
                    "was stopped or aborted early. Check the detector's frame count "
                    "(NUMFRAMESTOACQUIRE must equal the scan's positions)")
            return
        if now - self._last_probe < PROBE_AFTER_S:
            return
        self._last_probe = now
        if self.probe() is True:
            self._idle_at = time.monotonic()


__all__ = ["DataPort", "MerlinFraming", "PROBE_AFTER_S"]
