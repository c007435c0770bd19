"""Several PULL sockets on one stream V2: the DCU's PUSH socket hands each
message to one connected receiver after the other, so with N sockets each
gets about every N-th message, the ``start`` and ``end`` messages included.

The images are put back in image-id order before they reach the ring (the
core's receive loop wants each frame under its own index, in order): an
image that arrives early waits in a bounded reorder window.  Each socket
delivers its share in increasing image id, so the next image can only come
from a socket that has not yet passed it.  When the window is full, only
those sockets are read (the others fill up, and the PUSH socket sends to
the ones with room); an image that every socket has passed is lost, and
the core is told at once (a ``FrameGapError`` naming it).  Images that
one socket delivered before another delivered the series' ``start`` are
kept and replayed once the start is known.  The ``end`` message can arrive
before the last images (it travels on another socket), so the series ends
when every image is in, or when the end was seen and no socket has more.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import zmq

from libertem_live.driver import (
    FLUSH_LATENCY_S, DuplicateFrameError, PeerClosed, RingWriter,
)

from libertem_live_dectris.receiver import PeerWatch
from libertem_live_dectris.receiver_v2 import DectrisV2Framing, order_error
from libertem_live_dectris.wire_v2 import (
    END, IMAGE, START, SeriesStartV2, V2FormatError, loads, message_type, parse_start,
)

POLL_MS = 100
#: Images that may wait for an earlier one before only the sockets that can
#: still deliver it are read.
REORDER_WINDOW = 4096
#: How long a full window waits for the sockets that can still deliver the
#: missing image before it is booked as lost.
GAP_GRACE_S = 2.0
#: Messages kept that came before the series' ``start`` on another socket.
EARLY_LIMIT = 4096


def find_series_fanin(socks: Sequence[zmq.Socket], timeout: float | None,
                      series: int | None = None, where: str = "the detector",
                      ) -> tuple[SeriesStartV2, list[bytes]] | None:
    """Wait for a ``start`` message on any of ``socks``; returns it with the
    messages of that series that came before it on the other sockets."""
    poller = zmq.Poller()
    for s in socks:
        poller.register(s, zmq.POLLIN)
    deadline = None if timeout is None else time.monotonic() + timeout
    early: list[bytes] = []
    discarded = 0
    while True:
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready = poller.poll(POLL_MS if left is None else min(POLL_MS, int(left * 1000)))
        if not ready:
            if left is not None and left <= 0:
                return None
            continue
        for sock, _ in ready:
            buf = sock.recv(zmq.NOBLOCK, copy=True)
            try:
                msg = loads(buf)
            except ValueError:
                discarded += 1
                continue
            if message_type(msg) != START:
                if message_type(msg) == IMAGE and len(early) < EARLY_LIMIT:
                    early.append(buf)
                else:
                    discarded += 1
                continue
            try:
                start = parse_start(msg)
            except ValueError as e:
                raise V2FormatError(
                    f"a stream V2 start message from {where} is unusable: {e}") from None
            if series is not None and start.series != series:
                discarded += 1
                continue
            mine = [b for b in early if loads(b).get("series_id") == start.series]
            start.discarded = discarded + len(early) - len(mine)
            return start, mine


class DectrisV2FanInFraming(DectrisV2Framing):
    """The images of one stream V2 series from several sockets, in order."""

    def __init__(self, socks: Sequence[zmq.Socket], start: SeriesStartV2, nimages: int,
                 where: str, channel: str, *, early: Sequence[bytes] = (),
                 peer: PeerWatch | None = None):
        super().__init__(socks[0], start, nimages, where, channel, peer=peer, compiled=False)
        self.socks = list(socks)
        self.poller = zmq.Poller()
        for s in self.socks:
            self.poller.register(s, zmq.POLLIN)
        self.waiting: dict[int, tuple[Any, int]] = {}
        self.last_id = [-1] * len(self.socks)  # the last image id each socket delivered
        self._stuck_since: float | None = None
        self.unsettled = set(range(len(self.socks)))  # sockets yet to deliver this series
        self._early = list(early)

    def receive(self, out: RingWriter, stop: threading.Event) -> bool:
        for buf in self._early:
            self._take(buf, out)
        self._early = []
        started = time.monotonic()
        took = False
        while True:
            if self.frame >= self.nimages and self.got_end:
                return False
            poller = self.poller
            if len(self.waiting) >= REORDER_WINDOW:
                poller = self._lagging_poller(out)
                if poller is None:
                    return True
            wait = 1 if (took or out.pending) else POLL_MS
            ready = poller.poll(wait)
            if not ready:
                if self.got_end:
                    self._flush_waiting(out)
                    return False
                if not took and self.peer is not None and self.peer.update():
                    raise PeerClosed(f"series {self.series}: the stream connection dropped")
                return True
            self._stuck_since = None
            for sock, _ in ready:
                i = self.socks.index(sock)
                for _ in range(64):
                    try:
                        buf = sock.recv(zmq.NOBLOCK, copy=True)
                    except zmq.Again:
                        break
                    image_id = self._take(buf, out, i)
                    took = True
                    if image_id is not None:
                        self.last_id[i] = image_id
                        if image_id > self.frame and len(self.waiting) >= REORDER_WINDOW:
                            break  # this socket is ahead: read the others
            if time.monotonic() - started > FLUSH_LATENCY_S:
                return True

    def _lagging_poller(self, out: RingWriter) -> zmq.Poller | None:
        """A poller over the sockets that may still deliver the next image;
        None after booking it as lost (every socket has passed it, or those
        that have not stayed silent for ``GAP_GRACE_S``)."""
        lagging = [s for s, last in zip(self.socks, self.last_id) if last < self.frame]
        now = time.monotonic()
        if self._stuck_since is None:
            self._stuck_since = now
        if not lagging or now - self._stuck_since > GAP_GRACE_S:
            self._stuck_since = None
            self._flush_waiting(out)
            return None
        poller = zmq.Poller()
        for s in lagging:
            poller.register(s, zmq.POLLIN)
        return poller

    def _take(self, buf: bytes, out: RingWriter, sock: int | None = None) -> int | None:
        """Place one message's image; returns its id (None: not an image of
        the series).  ``sock``: the index of the socket it came from."""
        found = self.scanner.payload(buf)
        if found is not None and found[0] == self.series:
            if self.unsettled and sock is not None:
                self.unsettled.discard(sock)
            self._place(found[1], found[2], found[3], out)
            return found[1]
        if sock is not None and sock in self.unsettled:
            if self._leftover(buf):
                self.discarded += 1
                return None
            self.unsettled.discard(sock)
        image = self._message(buf, self.frame)
        if image is not None:
            self._place(*image, out)
            return image[0]
        return None

    def _leftover(self, buf: bytes) -> bool:
        """Whether ``buf`` is an image or end of another series: the rest of an
        earlier series (one that failed, say) that a socket still held.  Each
        socket is first in, first out, so until it has delivered something of
        this series, that is all another series' message can be."""
        try:
            msg = loads(buf)
        except ValueError:
            return False
        return (message_type(msg) in (IMAGE, END)
                and msg.get("series_id") not in (None, self.series))

    def _place(self, image_id: int, payload: bytes, form: int, out: RingWriter) -> None:
        if image_id >= self.nimages:
            raise DuplicateFrameError(
                f"image {image_id} of series {self.series} from {self.where} is beyond the "
                f"{self.nimages} images of the series")
        if image_id < self.frame or image_id in self.waiting:
            raise order_error(self.series, self.where, self.frame, image_id)
        if image_id > self.frame:
            self.waiting[image_id] = (payload, form)
            return
        out.put(image_id, payload, form)
        self.frame += 1
        waiting = self.waiting
        while self.frame in waiting:
            p, f = waiting.pop(self.frame)
            out.put(self.frame, p, f)
            self.frame += 1

    def _flush_waiting(self, out: RingWriter) -> None:
        """Hand the waiting images to the ring as they are: an earlier image
        never came, and the core's receive loop books the gap and fails the
        run with a FrameGapError naming it."""
        for image_id in sorted(self.waiting):
            payload, form = self.waiting.pop(image_id)
            out.put(image_id, payload, form)
            self.frame = image_id + 1


__all__ = ["DectrisV2FanInFraming", "find_series_fanin"]
