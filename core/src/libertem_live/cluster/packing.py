"""A partition's frames, taken out of the ring to travel to a remote worker.

On one machine a worker reads its frames straight from the shared-memory
ring.  A worker on another machine cannot, so the main process copies the
partition's frames out of the ring as the detector sent them (still
compressed where the detector compressed them, raw bytes otherwise) into
one :class:`PackedFrames`, which travels inside the task; the worker
decodes them with the same picklable decoder.  The ring slots are given
back as soon as the bytes are copied, so the receiver never waits for the
network or for a remote worker.

Why copy and not send straight from the ring: the task is serialised with
its buffers out-of-band and sent later, from dask's event loop; a slot
handed back before that could be refilled under the send.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from libertem_live.transport.ring import AUX, FRAME_ALIGN, OFFSET, SIZE, Stack, frame_aligned
from libertem_live.transport.stream import FrameStream

#: (slot, lo, hi, first frame index, generation) of frames held in the ring.
Piece = tuple[int, int, int, int, int]

#: Alignment of the payload a worker decodes from (a cache line): the bytes
#: arrive in whatever buffer the network layer allocated, and compiled
#: decoders are fastest (and compiled once) for aligned arrays.
PAYLOAD_ALIGN = 64


def _aligned_empty(nbytes: int) -> np.ndarray:
    raw = np.empty(nbytes + PAYLOAD_ALIGN, dtype=np.uint8)
    skip = (-raw.ctypes.data) % PAYLOAD_ALIGN
    return raw[skip:skip + nbytes]


@dataclass
class PackedFrames:
    """Frames ``first .. first + count - 1`` in one buffer, laid out like a
    ring slot: frame ``i`` is ``payload[offsets[i]:offsets[i] + sizes[i]]``
    with the driver's ``aux[i]``; offsets keep the ring's 16-byte alignment
    (frames that shared a record in the ring still share it here)."""

    first: int
    payload: np.ndarray
    offsets: np.ndarray
    sizes: np.ndarray
    aux: np.ndarray

    @property
    def count(self) -> int:
        return int(self.offsets.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes that travel: the payload and the frame table."""
        return int(self.payload.nbytes + 3 * 8 * self.count)

    def __setstate__(self, state: dict[str, Any]) -> None:
        payload = state["payload"]
        if payload.ctypes.data % PAYLOAD_ALIGN:
            aligned = _aligned_empty(payload.nbytes)
            aligned[:] = payload
            state = dict(state, payload=aligned)
        self.__dict__.update(state)


class FramePacker:
    """Takes frames off a :class:`FrameStream` in frame order, partition by
    partition, in the main process (the stream has one consumer).

    Frames before a partition's start (partitions a ROI left out) are given
    back unread.  Each frame packed is booked as dispatched in the ledger.
    """

    def __init__(self, stream: FrameStream):
        self.stream = stream
        self._current: Stack | None = None
        self._used = 0
        self._cursor = 0
        self.busy_s = 0.0
        """Seconds spent copying frames (waits for them excluded)."""

    def _next_stack(self, check: Callable[[], None] | None, check_every: float) -> Stack:
        if self._current is None or self._used == self._current.count:
            self._current = self.stream.next_stack(check=check, check_every=check_every)
            self._used = 0
        return self._current

    def _pieces(self, start: int, stop: int, check: Callable[[], None] | None,
                check_every: float) -> Iterator[Piece]:
        ring = self.stream.ring
        while self._cursor < stop:
            st = self._next_stack(check, check_every)
            lo = self._used
            if self._cursor < start:
                skip = min(st.count - lo, start - self._cursor)
                ring.release(st.slot, lo, lo + skip, st.gen)
                self._used += skip
                self._cursor += skip
                continue
            n = min(st.count - lo, stop - self._cursor)
            first = self._cursor
            self._used = lo + n
            self._cursor += n
            self.stream.ledger.add(dispatched=n)
            yield (st.slot, lo, lo + n, first, st.gen)

    def take(self, start: int, stop: int, check: Callable[[], None] | None = None,
             check_every: float = 0.25, max_slots: int | None = None
             ) -> list[Piece] | PackedFrames:
        """The ring pieces holding frames ``start .. stop - 1``, still held
        (give them back with :meth:`release`), waiting for them as long as
        the stream's timeout allows (raises the stream's error if it failed
        or ended early).  ``check`` runs every ``check_every`` seconds while
        waiting and may raise.  A partition spread over more than
        ``max_slots`` slots is copied out instead (the ring could not hold
        it while others are held) and comes back as :class:`PackedFrames`."""
        held: list[Piece] = []
        copied: list[PackedFrames] = []
        try:
            for piece in self._pieces(start, stop, check, check_every):
                held.append(piece)
                if max_slots is not None and len({p[0] for p in held}) > max_slots:
                    copied.append(self.copy(held[0][3], held))
                    self.release(held)
                    held = []
                    max_slots = 0  # copy the rest too
        except BaseException:
            self.release(held)
            raise
        if not copied:
            return held
        if held:
            copied.append(self.copy(held[0][3], held))
            self.release(held)
        return _concat(start, copied)

    def copy(self, first: int, pieces: list[Piece]) -> PackedFrames:
        """The frames of ``pieces`` (held, frame ``first`` onwards) copied
        into one buffer; the pieces stay held."""
        t0 = time.perf_counter()
        views = self.stream.ring.views
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for slot, lo, hi, _first, _gen in pieces:
            table = views.table[slot]
            offsets = table[OFFSET, lo:hi]
            sizes = table[SIZE, lo:hi]
            span_lo = int(offsets.min())
            span_hi = int((offsets + sizes).max())
            data = views.payload[slot, span_lo:span_hi].copy()
            parts.append((data, offsets - span_lo, sizes.copy(), table[AUX, lo:hi].copy()))
        packed = _join(first, parts)
        self.busy_s += time.perf_counter() - t0
        return packed

    def release(self, pieces: list[Piece]) -> None:
        """Give held pieces back to the ring (the receiver may refill them)."""
        ring = self.stream.ring
        for slot, lo, hi, _first, gen in pieces:
            ring.release(slot, lo, hi, gen)

    def pack(self, start: int, stop: int, check: Callable[[], None] | None = None,
             check_every: float = 0.25) -> PackedFrames:
        """Frames ``start .. stop - 1`` copied out of the ring, whose slots
        are given back as soon as they are copied (see :meth:`take` for the
        waiting)."""
        packed = self.take(start, stop, check, check_every, max_slots=0)
        if isinstance(packed, list):  # no frames
            return _join(start, [])
        return packed

    def release_rest(self) -> None:
        """Give back the unread frames of the current stack (end of a run)."""
        st = self._current
        if st is not None and self._used < st.count:
            self.stream.ring.release(st.slot, self._used, st.count, st.gen)
            self._used = st.count


def _concat(first: int, parts: list[PackedFrames]) -> PackedFrames:
    if len(parts) == 1:
        return parts[0]
    return _join(first, [(p.payload, p.offsets, p.sizes, p.aux) for p in parts])


def _join(first: int, pieces: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
          ) -> PackedFrames:
    """One buffer from the pieces (each copied from one ring slot), every
    piece starting at a multiple of the ring's frame alignment.  The
    buffer's own alignment does not matter here: it is pickled, and aligned
    where it is unpickled (:meth:`PackedFrames.__setstate__`)."""
    if len(pieces) == 1:
        data, offsets, sizes, aux = pieces[0]
        return PackedFrames(first, data, offsets.astype(np.int64), sizes.astype(np.int64),
                            aux.astype(np.int64))
    starts = []
    total = 0
    for data, *_ in pieces:
        starts.append(total)
        total = frame_aligned(total + data.nbytes)
    assert total % FRAME_ALIGN == 0
    payload = np.zeros(total, dtype=np.uint8)
    for (data, *_), at in zip(pieces, starts):
        payload[at:at + data.nbytes] = data
    if not pieces:
        empty = np.zeros(0, dtype=np.int64)
        return PackedFrames(first, payload, empty, empty.copy(), empty.copy())
    offsets = np.concatenate([rel + at for (_, rel, _, _), at in zip(pieces, starts)])
    sizes = np.concatenate([p[2] for p in pieces])
    aux = np.concatenate([p[3] for p in pieces])
    return PackedFrames(first, payload, offsets.astype(np.int64), sizes.astype(np.int64),
                        aux.astype(np.int64))
