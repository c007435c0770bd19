"""The stream V2 receiver: CBOR messages on a ZeroMQ PULL socket -> the ring.

As for stream V1, two phases: :func:`find_series_v2` (caller's thread) skips
everything up to a ``start`` message (of the armed series, in active mode);
:class:`DectrisV2Framing` (the core's receive loop) checks each ``image``
(series id, image id, the chosen channel's shape / type / compression) and
copies that channel's still-compressed bytes once into the ring under the
image id, with the compression form as the frame's ``aux`` value.  An
image as expected is found by a compiled walk over its bytes
(:mod:`.cbor_scan`), inside a compiled receive loop that calls libzmq
(:mod:`.zmqloop`, without the GIL and without a Python object per image);
anything else (start, end, other series, wrong shape, malformed) goes
through ``cbor2.loads`` and the checks that word the errors.
"""
from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import zmq

from libertem_live.driver import (
    FLUSH_LATENCY_S, DuplicateFrameError, FrameGapError, FrameOrderError,
    PeerClosed, RingWriter, zmq_recv_part,
)

from libertem_live_dectris import receiver, zmqloop
from libertem_live_dectris.cbor_scan import ImageScanner
from libertem_live_dectris.receiver import CompiledReceive, PeerWatch
from libertem_live_dectris.wire_v2 import (
    END, IMAGE, START, TYPED_ARRAY_TAGS, SeriesStartV2, V2FormatError, image_payload, loads,
    message_type, parse_start,
)

POLL_MS = 100
BATCH = 1024


def find_series_v2(sock: zmq.Socket, timeout: float | None, series: int | None = None,
                   where: str = "the detector") -> SeriesStartV2 | None:
    """Wait for a ``start`` message (of ``series`` if given); None on timeout."""
    deadline = None if timeout is None else time.monotonic() + timeout
    discarded = 0
    while True:
        part = zmq_recv_part(sock, deadline)
        if part is None:
            return None
        try:
            msg = loads(part.buffer)
        except ValueError:
            discarded += 1
            continue
        if message_type(msg) != START:
            discarded += 1
            continue
        try:
            start = parse_start(msg)
        except ValueError as e:
            raise V2FormatError(f"a stream V2 start message from {where} is unusable: {e}") from None
        if series is not None and start.series != series:
            discarded += 1
            continue
        start.discarded = discarded
        return start


class DectrisV2Framing(CompiledReceive):
    """The images of one stream V2 series, for the core's receive loop."""

    def __init__(self, sock: zmq.Socket, start: SeriesStartV2, nimages: int, where: str,
                 channel: str, *, peer: PeerWatch | None = None, compiled: bool | None = None):
        self.sock = sock
        self.peer = peer
        self.start = start
        self.series = start.series
        self.nimages = nimages
        self.where = where
        self.channel = channel
        self.got_end = False
        self.discarded = 0
        self.frame = 0
        self.scanner = ImageScanner(channel, start.shape, start.dtype, TYPED_ARRAY_TAGS)
        if compiled is None:
            compiled = zmqloop.AVAILABLE and receiver.USE_COMPILED_LOOP
        self.compiled = compiled
        if self.compiled:
            self._msgs, self._state, _ = zmqloop.new_buffers()
            self._address = sock.underlying
            h, w = start.shape
            itemsize = start.dtype.itemsize
            self._expect = np.array([h, w, itemsize, h * w * itemsize], np.int64)
            self._tag_ok = np.zeros(128, np.uint8)
            self._tag_ok[list(self.scanner.tags)] = 1
            self._found = np.zeros(10, np.int64)
            self._head = np.zeros(2, np.int64)
            # writable, like the array zmqloop.warmup compiles the kernel for: a
            # read-only one is another numba signature, compiled on the first image
            self._channel = self.scanner.channel.copy()
        if peer is not None:
            peer.update()

    def receive(self, out: RingWriter, stop: threading.Event) -> bool:
        if self.compiled and self.frame < self.nimages:
            self._state[zmqloop.S_FRAME] = self.frame
            try:
                return self._receive_compiled(out)
            finally:
                self.frame = int(self._state[zmqloop.S_FRAME])
        return self._receive_python(out)

    def _kernel(self, payload: np.ndarray, table: np.ndarray) -> int:
        """Images the kernel vouches for go straight from libzmq's message
        into the slot (:func:`.zmqloop.receive_images_v2`)."""
        return zmqloop.receive_images_v2(
            self._address, self._msgs, self._state, payload, table, self.nimages, BATCH,
            self.series, self._channel, self._expect, self._tag_ok, self._found,
            self._head)

    def _held(self, out: RingWriter, room: int) -> bool:
        """A message the kernel held goes through :meth:`_one`, which stores
        it, skips it or raises; False: it was the series' end."""
        st = self._state
        buf = zmqloop.msg_bytes(self._msgs, 0)
        zmqloop.close_held(self._msgs, st)
        nxt = self._one(buf, int(st[zmqloop.S_FRAME]), out)
        if nxt < 0:
            return False
        st[zmqloop.S_FRAME] = nxt
        return True

    def _receive_python(self, out: RingWriter) -> bool:
        recv = self.sock.recv
        noblock = zmq.NOBLOCK
        put = out.put
        fast = self.scanner.payload
        frame = first = self.frame
        last = min(self.nimages, frame + BATCH)
        started = time.monotonic()
        try:
            while frame < last or frame >= self.nimages:
                try:
                    buf = recv(noblock, copy=True)
                except zmq.Again:
                    if self._more_soon(out, started, frame != first):
                        continue
                    return True
                found = fast(buf)
                if found is not None:
                    series, image_id, payload, form = found
                    if series == self.series and image_id == frame < self.nimages:
                        put(frame, payload, form)
                        frame += 1
                        continue
                nxt = self._one(buf, frame, out)
                if nxt < 0:
                    return False
                frame = nxt
            return True
        finally:
            self.frame = frame

    def _one(self, buf: bytes, frame: int, out: RingWriter) -> int:
        """A message the fast paths did not store, ``frame`` being the next
        image: stores it if it is that image and returns the next frame,
        skips it (returns ``frame``), returns -1 for this series' end, or
        raises what is wrong with it."""
        found = self.scanner.payload(buf)
        if found is not None:
            series, image_id, payload, form = found
            if series == self.series and image_id == frame < self.nimages:
                out.put(frame, payload, form)
                return frame + 1
        image = self._message(buf, frame)
        if image is None:
            return -1 if self.got_end else frame
        image_id, payload, form = image
        if image_id != frame:
            raise order_error(self.series, self.where, frame, image_id)
        if frame >= self.nimages:
            raise DuplicateFrameError(
                f"image {image_id} of series {self.series} from {self.where} is beyond "
                f"the {self.nimages} images of the series")
        out.put(frame, payload, form)
        return frame + 1

    def _message(self, buf: bytes, frame: int) -> tuple[int, Any, int] | None:
        """A message the fast path did not take, decoded with cbor2: an image
        of this series as ``(image_id, payload, form)``; None for this
        series' end (``got_end`` set) or a message to skip (counted); an
        error naming the image for everything else.  ``frame``: the next
        image expected, for the messages."""
        where = self.where
        try:
            msg = loads(buf)
        except ValueError as e:
            raise V2FormatError(
                f"series {self.series} from {where}: the message after image "
                f"{frame - 1} (expected image {frame}) is not valid CBOR: {e}") from None
        kind = message_type(msg)
        if kind == IMAGE:
            series, image_id, payload, form = image_payload(
                msg, self.channel, self.start.shape, self.start.dtype, where)
            if series != self.series:
                raise FrameOrderError(
                    f"received image {image_id} of series {series} while receiving series "
                    f"{self.series} from {where}: another acquisition is sending on this "
                    "stream. Stop it, then start the acquisition again")
            return image_id, payload, form
        if kind == END and msg.get("series_id") == self.series:
            self.got_end = True
            return None
        if kind == START:
            raise FrameOrderError(
                f"a new series' start message arrived while series {self.series} from "
                f"{where} had sent only {frame} of {self.nimages} images: the detector "
                "was re-armed")
        self.discarded += 1
        return None

    def _more_soon(self, out: RingWriter, started: float, stored: bool) -> bool:
        if stored or out.pending:
            return (time.monotonic() - started < FLUSH_LATENCY_S
                    and bool(self.sock.poll(1, zmq.POLLIN)))
        if self.sock.poll(POLL_MS, zmq.POLLIN):
            return True
        if self.peer is not None and self.peer.update():
            raise PeerClosed(f"series {self.series}: the stream connection dropped")
        return False


def order_error(series: int, where: str, frame: int, image_id: int) -> Exception:
    """The error for image ``image_id`` arriving when ``frame`` was next."""
    if image_id < frame:
        return DuplicateFrameError(
            f"image {image_id} of series {series} from {where} arrived again after "
            f"image {frame - 1} (duplicate or out of order); the scan cannot be assembled "
            "safely. Check that only one detector sends to this port")
    n = image_id - frame
    return FrameGapError(
        f"image id gap in series {series} from {where}: expected image {frame}, "
        f"got {image_id} ({n} image{'s' if n != 1 else ''} missing). The detector dropped "
        "images or the network lost them; lower the frame rate or check the link")


def series_info(start: SeriesStartV2, channel: str) -> dict[str, Any]:
    """What a run's record keeps of the ``start`` message."""
    return {"stream": "v2", "series": start.series, "channel": channel,
            "channels": list(start.channels), **start.metadata}


__all__ = ["DectrisV2Framing", "find_series_v2", "order_error", "series_info"]
