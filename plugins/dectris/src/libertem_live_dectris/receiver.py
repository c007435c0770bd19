"""The DECTRIS stream receiver: ZeroMQ PULL -> the core's frame ring.

Two phases per acquisition.  *Finding the series* (in the caller's thread):
skip everything until a ``dheader-1.0`` (of the armed series id in active
mode) and read the configuration part.  *Receiving images* (a
:class:`~libertem_live.transport.thread.ReceiverThread`): every image
message is checked (series id, frame id in sequence, shape/type/encoding as
announced) and its blob copied once into the ring.  Stale messages of
earlier series are discarded and counted, never mixed in.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zmq

from libertem_live.errors import (
    AcquisitionError, AcquisitionTimeoutError, FrameOrderError, StreamTruncatedError,
)
from libertem_live.transport.stream import FrameStream

from libertem_live_dectris import zmqloop
from libertem_live_dectris.messages import (
    DHEADER, DIMAGE, DPIXELMASK, DSERIES_END, MessageError, SeriesConfig, parse_config,
    parse_dheader, parse_dimage, parse_dimage_d, parse_dseries_end, peek_htype,
)

log = logging.getLogger(__name__)

POLL_MS = 100
FLUSH_S = 0.02
USE_COMPILED_LOOP = True
"""False: every image through the Python loop (the fallback where libzmq's
symbols are out of reach; the tests run both)."""


@dataclass
class SeriesStart:
    """What the global header told us."""

    series: int
    config: SeriesConfig
    pixel_mask: np.ndarray | None = None
    discarded: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def _recv_part(sock: zmq.Socket, deadline: float | None, stop: Any = None) -> zmq.Frame | None:
    """One message part, or None once ``deadline`` passed (or ``stop`` is set)."""
    while True:
        if sock.poll(POLL_MS, zmq.POLLIN):
            return sock.recv(copy=False)
        if stop is not None and stop.is_set():
            return None
        if deadline is not None and time.monotonic() >= deadline:
            return None


def _drain_rest(sock: zmq.Socket) -> int:
    n = 0
    while sock.getsockopt(zmq.RCVMORE):
        sock.recv(copy=False)
        n += 1
    return n


def find_series(sock: zmq.Socket, timeout: float | None, series: int | None = None,
                where: str = "the detector") -> SeriesStart | None:
    """Wait for the global header (of ``series`` if given); None on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    discarded = 0
    while True:
        part = _recv_part(sock, deadline)
        if part is None:
            if discarded:
                log.info("discarded %d stale message parts while waiting for a series", discarded)
            return None
        htype = peek_htype(part.bytes) if len(part) < 4096 else None
        if htype != DHEADER:
            discarded += 1 + _drain_rest(sock)
            continue
        head = parse_dheader(part.bytes)
        if series is not None and head.series != series:
            discarded += 1 + _drain_rest(sock)
            continue
        if head.header_detail == "none":
            raise FrameOrderError(
                f"series {head.series} from {where} has header_detail 'none': without the "
                "configuration part the number of images is unknown. Set the stream's "
                "header_detail to 'basic' (PUT stream/api/1.8.0/config/header_detail)"
            )
        cfg_part = _recv_part(sock, time.monotonic() + 5.0)
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
        return start


def _read_all_detail(sock: zmq.Socket, start: SeriesStart) -> None:
    """header_detail 'all': flat field, pixel mask and count-rate table follow
    (three JSON + blob pairs); keep the pixel mask, skip the rest."""
    for _ in range(3):
        meta = _recv_part(sock, time.monotonic() + 5.0)
        blob = _recv_part(sock, time.monotonic() + 5.0)
        if meta is None or blob is None:
            raise AcquisitionTimeoutError(
                f"series {start.series}: header_detail 'all' parts did not arrive within 5 s")
        if peek_htype(meta.bytes) == DPIXELMASK:
            import json
            desc = json.loads(meta.bytes)
            shape = desc.get("shape", [start.config.width, start.config.height])
            mask = np.frombuffer(blob.buffer, dtype=desc.get("type", "uint32"))
            start.pixel_mask = mask.reshape((shape[1], shape[0])).copy()


class ImageReceiver:
    """Receives the images of one series into a stream (runs in its thread)."""

    def __init__(self, sock: zmq.Socket, start: SeriesStart, nimages: int, encoding: str,
                 where: str):
        self.sock = sock
        self.start = start
        self.nimages = nimages
        cfg = start.config
        self.expect = ((cfg.height, cfg.width), str(cfg.dtype), encoding)
        self.where = where
        self.got_end = False

    def __call__(self, stream: FrameStream) -> None:
        if zmqloop.AVAILABLE and USE_COMPILED_LOOP:
            self._receive_compiled(stream)
        else:
            self._receive_python(stream)

    def _receive_compiled(self, stream: FrameStream) -> None:
        """Images through :mod:`.zmqloop`'s kernel; every message it holds is
        judged here by the same checks as in the Python loop."""
        sock = self.sock
        address = sock.underlying
        n = self.nimages
        writer = stream.writer()
        stop = stream.stop_event
        stream.ledger.add(discarded_stale=self.start.discarded)
        msgs, state, scratch = zmqloop.new_buffers()
        no_prefix = np.zeros(0, dtype=np.uint8)
        head_prefix = desc_prefix = no_prefix
        kernel = zmqloop.receive_images
        monotonic = time.monotonic
        last_flush = monotonic()

        def lease() -> tuple[np.ndarray, np.ndarray]:
            payload, table, count, fill = writer.lease(int(state[zmqloop.S_FRAME]))
            state[zmqloop.S_COUNT] = count
            state[zmqloop.S_FILL] = fill
            return payload, table

        try:
            payload, table = lease()
            while True:
                code = kernel(address, msgs, scratch, state, payload, table, n, 1024,
                              head_prefix, desc_prefix)
                writer.settle(int(state[zmqloop.S_COUNT]), int(state[zmqloop.S_FILL]))
                frame = int(state[zmqloop.S_FRAME])
                if code == zmqloop.DONE:
                    break
                if code == zmqloop.AGAIN:
                    if sock.poll(1, zmq.POLLIN) and monotonic() - last_flush < FLUSH_S:
                        continue
                    if writer.pending:
                        writer.flush()
                        last_flush = monotonic()
                        payload, table = lease()
                    while not sock.poll(POLL_MS, zmq.POLLIN):
                        if stop.is_set():
                            return
                    continue
                if stop.is_set():
                    return
                if code == zmqloop.FULL:
                    writer.flush()
                    last_flush = monotonic()
                elif code == zmqloop.BATCH:
                    if monotonic() - last_flush > FLUSH_S:
                        writer.flush()
                        last_flush = monotonic()
                elif code == zmqloop.HELD:
                    if state[zmqloop.S_HELD] < zmqloop.MAX_PARTS:
                        head = zmqloop.msg_bytes(msgs, 0)
                        zmqloop.close_held(msgs, state)
                        self._not_an_image(stream, writer, head, frame)
                        if stream.error is not None:
                            return
                    else:
                        prefix = self._check_head(writer, stream, zmqloop.msg_bytes(msgs, 0),
                                                  frame)
                        desc = self._check_desc(writer, zmqloop.msg_bytes(msgs, 1), frame)
                        head_prefix = np.frombuffer(prefix, dtype=np.uint8)
                        desc_prefix = np.frombuffer(desc, dtype=np.uint8)
                        size = zmqloop.msg_size(msgs, 2)
                        if size > writer.slot_bytes:
                            writer.flush()
                            raise AcquisitionError(
                                f"frame {frame} of series {self.start.series} has {size} "
                                f"bytes, more than a ring slot holds ({writer.slot_bytes}); "
                                "open the connection with a larger ring slot")
                        if int(state[zmqloop.S_FILL]) + size > payload.shape[0]:
                            writer.flush()
                            last_flush = monotonic()
                else:
                    errno = int(state[zmqloop.S_ERRNO])
                    if errno == 4:  # EINTR
                        continue
                    writer.flush()
                    raise AcquisitionError(
                        f"receiving frame {frame} of series {self.start.series} from "
                        f"{self.where} failed: ZeroMQ error {errno} "
                        f"({zmq.strerror(errno)}). The connection's socket is unusable; "
                        "close the connection and open a new one")
                payload, table = lease()
        finally:
            zmqloop.close_held(msgs, state)
        writer.flush()
        stream.finish()
        self._read_end(stop)

    def _receive_python(self, stream: FrameStream) -> None:
        """The per-frame hot path.  Each image's first two parts are checked
        against the bytes the previous frame predicts (series, next frame id;
        the descriptor up to its ``size`` field), which costs a few hundred
        nanoseconds; only on a mismatch are they parsed, to tell what is wrong.
        Small messages are received as bytes (cheaper than zero-copy frames)."""
        sock = self.sock
        n = self.nimages
        writer = stream.writer()
        put = writer.put
        stop = stream.stop_event
        stream.ledger.add(discarded_stale=self.start.discarded)
        frame = 0
        last_flush = time.monotonic()
        recv = sock.recv
        getsockopt = sock.getsockopt
        RCVMORE = zmq.RCVMORE
        noblock = zmq.NOBLOCK
        cfg = self.start.config
        zero_copy = cfg.width * cfg.height * np.dtype(cfg.dtype).itemsize > (256 << 10)
        prefix = b"\0"  # learnt from the first image the slow path accepts
        lp = 1
        desc_prefix: bytes | None = None
        monotonic = time.monotonic
        while frame < n:
            try:
                first = recv(noblock, copy=not zero_copy)
            except zmq.Again:
                if writer.pending:
                    writer.flush()
                    last_flush = monotonic()
                while not sock.poll(POLL_MS, zmq.POLLIN):
                    if stop.is_set():
                        return
                continue
            # an image is 4 parts (dimage, dimage_d, blob, dconfig), all
            # delivered together; anything shorter is an end or header message
            parts = [first]
            while len(parts) < 3 and getsockopt(RCVMORE):
                parts.append(recv(copy=not zero_copy))
            if len(parts) < 3:
                head = parts[0] if not zero_copy else parts[0].bytes
                self._not_an_image(stream, writer, head, frame)
                if stream.error is not None:
                    return
                continue
            if getsockopt(RCVMORE):
                recv(copy=False)  # dconfig: not needed
                if getsockopt(RCVMORE):
                    _drain_rest(sock)  # image appendix
            if zero_copy:
                head, desc, blob = parts[0].bytes, parts[1].bytes, parts[2].buffer
            else:
                head, desc, blob = parts[0], parts[1], parts[2]
            if not (head.startswith(prefix) and head.startswith(b"%d," % frame, lp)):
                prefix = self._check_head(writer, stream, head, frame)
                lp = len(prefix)
            if desc_prefix is None or not desc.startswith(desc_prefix):
                desc_prefix = self._check_desc(writer, desc, frame)
            put(frame, blob)
            frame += 1
            if monotonic() - last_flush > FLUSH_S:
                writer.flush()
                last_flush = monotonic()
        writer.flush()
        stream.finish()
        self._read_end(stop)

    def _check_head(self, writer: Any, stream: FrameStream, head: bytes, frame: int) -> bytes:
        """The slow path for an unexpected first part: raises, or returns the
        prefix that predicts the next image's first part (everything before
        the frame number, if the series id comes before it; else a prefix that
        never matches, so every image takes this path)."""
        series = self.start.series
        try:
            s, fid = parse_dimage(head)
        except MessageError as e:
            writer.flush()
            raise FrameOrderError(
                f"series {series} from {self.where}: expected image {frame}, got a "
                f"message that is not an image ({e})") from None
        if s != series:
            writer.flush()
            raise FrameOrderError(
                f"received an image of series {s} (frame {fid}) while receiving series "
                f"{series} from {self.where}: another acquisition is sending on this "
                "stream. Stop it, then start the acquisition again")
        if fid == frame:
            at = head.find(b'"frame"')
            series_at = head.find(b'"series"')
            if at < 0 or series_at < 0 or series_at > at:
                return b"\0"
            colon = head.find(b":", at) + 1
            while head[colon:colon + 1] in (b" ", b"\t"):
                colon += 1
            return bytes(head[:colon])
        writer.flush()
        if fid > frame:
            stream.ledger.report_missing(frame, fid - frame)
            raise FrameOrderError(
                f"frame id gap in series {series} from {self.where}: expected frame "
                f"{frame}, got {fid} ({fid - frame} images missing). The detector "
                "dropped images (see its stream status 'dropped') or the network "
                "lost them; lower the frame rate or check the link")
        raise FrameOrderError(
            f"frame {fid} of series {series} from {self.where} arrived again after "
            f"frame {frame - 1} (duplicate or out of order)")

    def _check_desc(self, writer: Any, desc_part: bytes, frame: int) -> bytes:
        """Parse a descriptor that does not start like the last good one; returns
        the prefix (everything before ``"size"``) to compare the next ones with."""
        desc = parse_dimage_d(desc_part)
        expect_shape, expect_dtype, expect_enc = self.expect
        if (desc.shape, desc.dtype, desc.encoding) != (expect_shape, expect_dtype, expect_enc):
            writer.flush()
            raise FrameOrderError(
                f"frame {frame} of series {self.start.series} from {self.where} has shape "
                f"{desc.shape} {desc.dtype} {desc.encoding!r}, but the series header "
                f"announced {expect_shape} {expect_dtype} {expect_enc!r}")
        cut = desc_part.find(b'"size"')
        return bytes(desc_part[:cut]) if cut > 0 else bytes(desc_part)

    def _not_an_image(self, stream: FrameStream, writer: Any, head: bytes, frame: int) -> None:
        htype = peek_htype(head)
        series = self.start.series
        if htype == DSERIES_END:
            ended = parse_dseries_end(head)
            if ended != series:
                stream.ledger.add(discarded_stale=1)
                return
            writer.flush()
            # idempotent: a failing run may book the rest as missing too
            stream.ledger.finish_short()
            stream.fail(StreamTruncatedError(
                f"series {series} from {self.where} ended after {frame} of {self.nimages} "
                "images (end-of-series message): the detector was disarmed, the series "
                "aborted, or it was configured for fewer images than the scan has"))
            return
        if htype == DHEADER:
            writer.flush()
            raise FrameOrderError(
                f"a new series header arrived while series {series} from {self.where} had "
                f"sent only {frame} of {self.nimages} images: the detector was re-armed")
        stream.ledger.add(discarded_stale=1)

    def _read_end(self, stop: Any) -> None:
        """The end-of-series message should follow the last image; its absence is
        noted, not fatal (the frames are all here)."""
        part = _recv_part(self.sock, time.monotonic() + 2.0, stop)
        if part is None:
            return
        if peek_htype(part.bytes) == DSERIES_END:
            self.got_end = True
        _drain_rest(self.sock)


def encoding_for(config: SeriesConfig) -> str:
    """The image encoding a series' configuration implies."""
    comp = (config.compression or "bslz4").lower()
    bits = 8 * np.dtype(config.dtype).itemsize
    if comp == "bslz4":
        return f"bs{bits}-lz4<"
    if comp == "lz4":
        return "lz4<"
    if comp == "none":
        return "<"
    raise FrameOrderError(f"unknown DECTRIS compression {config.compression!r}")


__all__ = ["SeriesStart", "find_series", "ImageReceiver", "encoding_for", "DIMAGE"]
