"""The DECTRIS stream receiver: ZeroMQ PULL -> the core's frame ring.

Two phases per acquisition.  *Finding the series* (:func:`find_series`, in
the caller's thread): skip everything until a ``dheader-1.0`` (of the armed
series id in active mode) and read the configuration part.  *Receiving
images* (:class:`DectrisFraming`, run by the core's receive loop in its
thread): every image message is checked (series id, frame id, shape / type /
encoding as announced) and its blob copied once into the ring under the
frame id the detector gave it.  Stale messages of earlier series are
discarded, never mixed in.

The per-image work runs in machine code (:mod:`.zmqloop`: one compiled call
receives many images) where libzmq's symbols are reachable, else in a Python
loop that applies the same checks.  Either way, only an image the previous
one does not predict (the first, a gap, a new descriptor) goes through the
Python checks here.
"""
from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from libertem_live.driver import (
    FLUSH_LATENCY_S, AcquisitionError, AcquisitionTimeoutError, DuplicateFrameError,
    FrameFormatError, FrameGapError, FrameOrderError, PeerClosed, RingWriter, zmq_drain_rest, zmq_recv_part,
)

from libertem_live_dectris import zmqloop
from libertem_live_dectris.wire import (
    DHEADER, DPIXELMASK, DSERIES_END, MessageError, SeriesStart, encoding_for, parse_config,
    parse_dheader, parse_dimage, parse_dimage_d, parse_dseries_end, peek_htype,
)

log = logging.getLogger(__name__)

POLL_MS = 100
"""Longest wait for a message within one ``receive`` call."""
BATCH = 1024
"""Images one compiled call stores before it hands back (so that the loop
sees the clock and the stop flag)."""
USE_COMPILED_LOOP = True
"""False: every image through the Python loop (the fallback where libzmq's
symbols are out of reach; the tests run both)."""


def find_series(sock: zmq.Socket, timeout: float | None, series: int | None = None,
                where: str = "the detector") -> SeriesStart | None:
    """Wait for the global header (of ``series`` if given); None on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    discarded = 0
    while True:
        part = zmq_recv_part(sock, deadline)
        if part is None:
            if discarded:
                log.info("discarded %d stale message parts while waiting for a series", discarded)
            return None
        htype = peek_htype(part.bytes) if len(part) < 4096 else None
        if htype != DHEADER:
            discarded += 1 + zmq_drain_rest(sock)
            continue
        head = parse_dheader(part.bytes)
        if series is not None and head.series != series:
            discarded += 1 + zmq_drain_rest(sock)
            continue
        if head.header_detail == "none":
            raise FrameOrderError(
                f"series {head.series} from {where} has header_detail 'none': without the "
                "configuration part the number of images is unknown. Set the stream's "
                "header_detail to 'basic' (PUT stream/api/1.8.0/config/header_detail)"
            )
        cfg_part = zmq_recv_part(sock, time.monotonic() + 5.0)
        if cfg_part is None:
            raise AcquisitionTimeoutError(
                f"series {head.series} from {where}: the configuration part did not follow "
                "the global header within 5 s")
        try:
            config = parse_config(cfg_part.bytes)
        except MessageError as e:
            raise FrameOrderError(f"series {head.series} from {where}: {e}") from None
        start = SeriesStart(series=head.series, config=config, discarded=discarded)
        if head.header_detail == "all":
            _read_all_detail(sock, start)
        if discarded:
            log.info("series %d: discarded %d stale message parts before its header",
                     head.series, discarded)
        return start


def _read_all_detail(sock: zmq.Socket, start: SeriesStart) -> None:
    """header_detail 'all': flat field, pixel mask and count-rate table follow
    (three JSON + blob pairs); keep the pixel mask, skip the rest."""
    for _ in range(3):
        meta = zmq_recv_part(sock, time.monotonic() + 5.0)
        blob = zmq_recv_part(sock, time.monotonic() + 5.0)
        if meta is None or blob is None:
            raise AcquisitionTimeoutError(
                f"series {start.series}: header_detail 'all' parts did not arrive within 5 s")
        if peek_htype(meta.bytes) == DPIXELMASK:
            desc = json.loads(meta.bytes)
            shape = desc.get("shape", [start.config.width, start.config.height])
            mask = np.frombuffer(blob.buffer, dtype=desc.get("type", "uint32"))
            start.pixel_mask = mask.reshape((shape[1], shape[0])).copy()


class PeerWatch:
    """Whether the detector's end of the stream is connected, from the PULL
    socket's monitor.  ZeroMQ reconnects silently, so without it a detector
    that went away in the middle of a series would look like a slow one.

    The state is the connection's (kept across series): events are read in
    the order they happened, and a drop followed by a new connection (the
    DCU software restarted between two series) is not an error."""

    def __init__(self, sock: zmq.Socket):
        self.monitor = sock.get_monitor_socket(zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED)
        self.down = False

    def update(self) -> bool:
        """Read the events that came; True while the peer is disconnected."""
        monitor = self.monitor
        while monitor.poll(0, zmq.POLLIN):
            event = recv_monitor_message(monitor)["event"]
            if event == zmq.EVENT_DISCONNECTED:
                self.down = True
            elif event == zmq.EVENT_CONNECTED:
                self.down = False
        return self.down

    def close(self, sock: zmq.Socket | None) -> None:
        if sock is not None:
            try:
                sock.disable_monitor()
            except zmq.ZMQError:
                pass
        self.monitor.close(linger=0)


class CompiledReceive:
    """The loop around a :mod:`.zmqloop` kernel, the same for stream V1 and
    V2: lease the ring's current slot, let the kernel fill it, settle it, and
    act on what the kernel returned (socket empty, a message held for the
    Python checks, a ZeroMQ error).  A framing supplies ``_kernel`` (one call
    of its kernel into the leased slot), ``_held`` (the Python side of a held
    message; False: the series ended) and ``_more_soon``."""

    _state: np.ndarray
    _msgs: np.ndarray
    nimages: int
    series: int
    where: str

    def _kernel(self, payload: np.ndarray, table: np.ndarray) -> int:
        raise NotImplementedError

    def _held(self, out: RingWriter, room: int) -> bool:
        raise NotImplementedError

    def _more_soon(self, out: RingWriter, started: float, stored: bool) -> bool:
        raise NotImplementedError

    def _receive_compiled(self, out: RingWriter) -> bool:
        st = self._state
        started = time.monotonic()
        first = int(st[zmqloop.S_FRAME])
        try:
            while True:
                frame = int(st[zmqloop.S_FRAME])
                if frame >= self.nimages:
                    return True
                payload, table, count, fill = out.lease(frame)
                st[zmqloop.S_COUNT] = count
                st[zmqloop.S_FILL] = fill
                code = self._kernel(payload, table)
                out.settle(int(st[zmqloop.S_COUNT]), int(st[zmqloop.S_FILL]))
                if code == zmqloop.AGAIN:
                    if self._more_soon(out, started, int(st[zmqloop.S_FRAME]) != first):
                        continue
                    return True
                if code == zmqloop.HELD:
                    if not self._held(out, payload.shape[0]):
                        return False
                    continue
                if code == zmqloop.ERROR:
                    errno = int(st[zmqloop.S_ERRNO])
                    if errno == 4:  # EINTR
                        continue
                    raise AcquisitionError(
                        f"receiving image {frame} of series {self.series} from {self.where} "
                        f"failed: ZeroMQ error {errno} ({zmq.strerror(errno)}). The "
                        "connection's socket is unusable; close the connection and open a "
                        "new one")
                return True  # DONE, FULL (the next lease moves on), BATCH
        except BaseException:
            zmqloop.close_held(self._msgs, st)
            raise


class DectrisFraming(CompiledReceive):
    """The images of one series, for the core's receive loop.

    ``sock``: the connection's PULL socket, positioned after the series'
    global header; ``peer``: the connection's :class:`PeerWatch`, so that a
    detector that disconnects mid-series fails the acquisition at once.
    """

    def __init__(self, sock: zmq.Socket, start: SeriesStart, nimages: int, where: str, *,
                 peer: PeerWatch | None = None, compiled: bool | None = None):
        self.sock = sock
        self.peer = peer
        self.start = start
        self.series = start.series
        self.nimages = nimages
        cfg = start.config
        self.expect = ((cfg.height, cfg.width), str(cfg.dtype), encoding_for(cfg))
        self.where = where
        self.got_end = False
        self.discarded = 0
        self.compiled = (zmqloop.AVAILABLE and USE_COMPILED_LOOP) if compiled is None else compiled
        self._zero_copy = cfg.width * cfg.height * np.dtype(cfg.dtype).itemsize > (256 << 10)
        # what the previous image predicts about the next one (learnt from the
        # first image the checks accept): the first part up to the frame
        # number, the descriptor up to its size field
        self._prefix = b"\0"
        self._desc_prefix: bytes | None = None
        self.frame = 0
        if self.compiled:
            self._msgs, self._state, self._scratch = zmqloop.new_buffers()
            self._address = sock.underlying
            none = np.zeros(0, dtype=np.uint8)
            self._head_np, self._desc_np = none, none
        if peer is not None:
            peer.update()

    # --- the Framing protocol ------------------------------------------------------------
    def receive(self, out: RingWriter, stop: threading.Event) -> bool:
        if self._next_frame() >= self.nimages:
            return self._read_end()
        if self.compiled:
            return self._receive_compiled(out)
        return self._receive_python(out)

    def _next_frame(self) -> int:
        return int(self._state[zmqloop.S_FRAME]) if self.compiled else self.frame

    # --- the compiled path -------------------------------------------------------------
    def _kernel(self, payload: np.ndarray, table: np.ndarray) -> int:
        return zmqloop.receive_images(self._address, self._msgs, self._scratch, self._state,
                                      payload, table, self.nimages, BATCH, self._head_np,
                                      self._desc_np)

    def _held(self, out: RingWriter, room: int) -> bool:
        """A message the kernel could not vouch for; False: the series ended."""
        st = self._state
        msgs = self._msgs
        frame = int(st[zmqloop.S_FRAME])
        if st[zmqloop.S_HELD] < zmqloop.MAX_PARTS:
            head = zmqloop.msg_bytes(msgs, 0)
            zmqloop.close_held(msgs, st)
            return self._not_an_image(head, frame)
        fid = self._check_head(zmqloop.msg_bytes(msgs, 0), frame)
        self._check_desc(zmqloop.msg_bytes(msgs, 1), fid)
        self._head_np = np.frombuffer(self._prefix, dtype=np.uint8)
        self._desc_np = np.frombuffer(self._desc_prefix or b"", dtype=np.uint8)
        if fid > frame:
            raise self._gap(frame, fid)  # the held parts are closed on the way out
        if int(st[zmqloop.S_FILL]) + zmqloop.msg_size(msgs, 2) <= room:
            return True  # the kernel stores it on its next call
        # a blob that needs the next slot: through the writer, which opens one
        blob = zmqloop.msg_bytes(msgs, 2)
        zmqloop.close_held(msgs, st)
        out.put(fid, blob)
        st[zmqloop.S_FRAME] = fid + 1
        return True

    # --- the Python path -------------------------------------------------------------------
    def _receive_python(self, out: RingWriter) -> bool:
        """The fallback hot path.  Each image's first two parts are checked
        against the bytes the previous frame predicts (series, next frame id;
        the descriptor up to its ``size`` field), which costs a few hundred
        nanoseconds; only on a mismatch are they parsed, to tell what is
        wrong.  Small messages are received as bytes (cheaper than zero-copy
        frames)."""
        sock = self.sock
        recv = sock.recv
        getsockopt = sock.getsockopt
        RCVMORE = zmq.RCVMORE
        noblock = zmq.NOBLOCK
        copy = not self._zero_copy
        put = out.put
        n = self.nimages
        frame = first = self.frame
        last = min(n, frame + BATCH)
        prefix, lp = self._prefix, len(self._prefix)
        desc_prefix = self._desc_prefix
        started = time.monotonic()
        try:
            while frame < last:
                try:
                    head = recv(noblock, copy=copy)
                except zmq.Again:
                    if self._more_soon(out, started, frame != first):
                        continue
                    return True
                # an image is 4 parts (dimage, dimage_d, blob, dconfig), all
                # delivered together; anything shorter is an end or header message
                parts = [head]
                while len(parts) < 3 and getsockopt(RCVMORE):
                    parts.append(recv(copy=copy))
                if len(parts) < 3:
                    if not self._not_an_image(parts[0] if copy else parts[0].bytes, frame):
                        return False
                    continue
                if getsockopt(RCVMORE):
                    recv(copy=False)  # dconfig: not needed
                    if getsockopt(RCVMORE):
                        zmq_drain_rest(sock)  # image appendix
                if copy:
                    head, desc, blob = parts
                else:
                    head, desc, blob = parts[0].bytes, parts[1].bytes, parts[2].buffer
                if not (head.startswith(prefix) and head.startswith(b"%d," % frame, lp)):
                    fid = self._check_head(head, frame)
                    if fid > frame:
                        raise self._gap(frame, fid)
                    prefix, lp = self._prefix, len(self._prefix)
                if desc_prefix is None or not desc.startswith(desc_prefix):
                    self._check_desc(desc, frame)
                    desc_prefix = self._desc_prefix
                put(frame, blob)
                frame += 1
            return True
        finally:
            self.frame = frame

    # --- shared by both paths ------------------------------------------------------------
    def _more_soon(self, out: RingWriter, started: float, stored: bool) -> bool:
        """The socket ran dry: whether to go on receiving within this call.
        With frames waiting to be published, only if more come within a
        millisecond (and the call is young), so that the loop publishes them
        promptly at a pause; else wait up to :data:`POLL_MS`."""
        if stored or out.pending:
            return (time.monotonic() - started < FLUSH_LATENCY_S
                    and bool(self.sock.poll(1, zmq.POLLIN)))
        if self.sock.poll(POLL_MS, zmq.POLLIN):
            return True
        self._check_peer()
        return False

    def _check_head(self, head: bytes, frame: int) -> int:
        """The slow path for an unexpected first part: raises, or returns the
        frame id (learning the prefix that predicts the next image's first
        part: everything before the frame number, if the series id comes
        before it; else a prefix that never matches, so every image takes
        this path)."""
        series = self.series
        try:
            s, fid = parse_dimage(head)
        except MessageError as e:
            raise FrameOrderError(
                f"series {series} from {self.where}: expected image {frame}, got a "
                f"message that is not an image ({e})") from None
        if s != series:
            raise FrameOrderError(
                f"received an image of series {s} (frame {fid}) while receiving series "
                f"{series} from {self.where}: another acquisition is sending on this "
                "stream. Stop it, then start the acquisition again")
        if fid < frame:
            raise DuplicateFrameError(
                f"frame {fid} of series {series} from {self.where} arrived again after "
                f"frame {frame - 1} (duplicate or out of order); the scan cannot be "
                "assembled safely. Check that only one detector sends to this port")
        if fid == frame:
            at = head.find(b'"frame"')
            series_at = head.find(b'"series"')
            if at < 0 or series_at < 0 or series_at > at:
                self._prefix = b"\0"
            else:
                colon = head.find(b":", at) + 1
                while head[colon:colon + 1] in (b" ", b"\t"):
                    colon += 1
                self._prefix = bytes(head[:colon])
        return fid

    def _gap(self, frame: int, fid: int) -> FrameGapError:
        """The detector skipped from ``frame`` to ``fid``.  Failing at the
        first gap (rather than writing on under the detector's ids and
        leaving the gap to the consumer) ends the series with every frame
        either received or booked as missing, at once."""
        n = fid - frame
        return FrameGapError(
            f"frame id gap in series {self.series} from {self.where}: expected frame "
            f"{frame}, got {fid} ({n} image{'s' if n != 1 else ''} missing). The detector "
            "dropped images (see its stream status 'dropped') or the network lost them; "
            "lower the frame rate or check the link")

    def _check_desc(self, desc_part: bytes, frame: int) -> None:
        """Parse a descriptor that does not start like the last good one and
        learn the prefix (everything before ``"size"``) to compare the next
        ones with."""
        try:
            desc = parse_dimage_d(desc_part)
        except MessageError as e:
            raise FrameFormatError(
                f"frame {frame} of series {self.series} from {self.where} has an unreadable "
                f"image descriptor ({e})") from None
        expect_shape, expect_dtype, expect_enc = self.expect
        if (desc.shape, desc.dtype, desc.encoding) != (expect_shape, expect_dtype, expect_enc):
            raise FrameFormatError(
                f"frame {frame} of series {self.series} from {self.where} has shape "
                f"{desc.shape} {desc.dtype} {desc.encoding!r}, but the series header "
                f"announced {expect_shape} {expect_dtype} {expect_enc!r}; the detector's "
                "configuration changed while it was armed")
        cut = desc_part.find(b'"size"')
        self._desc_prefix = bytes(desc_part[:cut]) if cut > 0 else bytes(desc_part)

    def _not_an_image(self, head: bytes, frame: int) -> bool:
        """A short message among the images; False: it ended this series."""
        htype = peek_htype(head)
        if htype == DSERIES_END:
            try:
                ended = parse_dseries_end(head)
            except MessageError:
                ended = None
            if ended == self.series:
                self.got_end = True
                return False  # the core reports a series that ended short
        elif htype == DHEADER:
            raise FrameOrderError(
                f"a new series header arrived while series {self.series} from {self.where} "
                f"had sent only {frame} of {self.nimages} images: the detector was re-armed")
        self.discarded += 1
        return True

    def _read_end(self) -> bool:
        """Every image is in: the end-of-series message should follow.  Other
        messages are skipped; without one the core warns after a while."""
        part = zmq_recv_part(self.sock, time.monotonic() + POLL_MS / 1000)
        if part is None:
            self._check_peer()
            return True
        head = part.bytes if len(part) < 4096 else b""
        zmq_drain_rest(self.sock)
        if peek_htype(head) == DSERIES_END:
            try:
                if parse_dseries_end(head) == self.series:
                    self.got_end = True
                    return False
            except MessageError:
                pass
        self.discarded += 1
        return True

    def _check_peer(self) -> None:
        """Raise :class:`PeerClosed` if the detector's end of the stream is
        disconnected (nothing more of this series can come)."""
        if self.peer is not None and self.peer.update():
            raise PeerClosed(f"series {self.series}: the stream connection dropped")


__all__ = ["BATCH", "CompiledReceive", "DectrisFraming", "PeerWatch", "USE_COMPILED_LOOP",
           "find_series"]
