"""A shared-memory ring of fixed-size slots holding stacks of encoded frames.

Layout of the segment (all regions 4 KiB aligned)::

    counts    int64[2, num_slots]               frames in each published slot; generation
    table     int64[num_slots, 3, max_frames]   per frame: offset, size, aux
    consumed  int64[num_slots, max_frames]      set by whoever used the frame:
                                                generation << 2 | (1 skipped, 2 decoded)
    payload   uint8[num_slots, slot_bytes]      the frames' bytes

Release works without locks: each frame has its own ``consumed`` mark with a
single writer (the worker that decoded it, or the main process for frames no
task wants), and only the ring's owner reads them to find a free slot.  A
slot may therefore be split between partitions, and so between workers.

A mark carries the generation of the slot's filling it answers, and the
owner only counts marks of the current generation; it never clears them.
Why: a store can land twice.  ``memset`` fills 16 bytes with two
overlapping 16-byte stores, and a worker preempted (or page-faulting)
between them wrote its marks, let the receiver take the slot, refill and
clear it, and then wrote the same marks again: the slot looked consumed
while its new frames were still waiting (caught by the generation check in
the reader, under CPU load with the kernel reclaiming pages).  Marks are
written by :func:`_mark`, one 8-byte store per frame, so no mark is ever
written twice, and a stale one could not count anyway.

A ring serves one acquisition at a time.  A connection may keep it for
its next acquisition (:class:`~libertem_live.transport.pool.RingPool`), but
only when every frame was consumed: a cancelled run can leave a worker
reading a slot, and such a ring is freed instead, so a straggler can never
mark frames of the next acquisition as consumed.
"""
from __future__ import annotations

import mmap
import os
import threading
import time
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Callable

import numpy as np
from numba import njit

from libertem_live.errors import AcquisitionError
from libertem_live.transport.streamcopy import copy_frames

_ALIGN = 4096
FRAME_ALIGN = 16
"""Every frame's offset in a slot is a multiple of this; receivers that write
many frames at once (:meth:`RingWriter.lease`) must keep it."""
OFFSET, SIZE, AUX = 0, 1, 2
SKIPPED, DECODED = 1, 2
"""Kinds of a frame's ``consumed`` mark (its low two bits) once it is free:
the ring's owner counts the decoded ones when it takes a slot back, so the
ledger's decoded count needs no message from the workers."""


@njit(nogil=True, cache=True)
def _mark(row: np.ndarray, lo: int, hi: int, gen: int, kind: int, only_unmarked: bool,
          decoded_rows: np.ndarray) -> None:
    """``row[lo:hi]`` = ``gen << 2 | kind``, and DECODED for the frames listed
    in ``decoded_rows`` (absolute rows); with ``only_unmarked``, marks of this
    generation stay.  One store per frame, never a ``memset``/``memcpy`` (see
    the module doc)."""
    base = gen << 2
    for i in range(lo, hi):
        if not (only_unmarked and (row[i] >> 2) == gen):
            row[i] = base | kind
    for r in decoded_rows:
        row[r] = base | DECODED


_NO_ROWS = np.zeros(0, dtype=np.int64)


@njit(nogil=True, cache=True)
def _decoded_in(consumed: np.ndarray, slot: int, n: int, gen: int) -> int:
    """How many of the first ``n`` frames of ``slot`` are marked decoded in
    filling ``gen``."""
    done = 0
    for i in range(n):
        if consumed[slot, i] == (gen << 2 | DECODED):
            done += 1
    return done


@njit(nogil=True, cache=True)
def _settle(slot: int, in_use: np.ndarray, published: np.ndarray, consumed: np.ndarray,
            generation: np.ndarray, decoded: np.ndarray) -> bool:
    """Whether ``slot`` is free.  A slot in use becomes free once every
    published frame carries a mark of the slot's generation; its decoded
    frames are then added to ``decoded[0]``."""
    if not in_use[slot]:
        return True
    n = published[slot]
    if n == 0:
        return False
    gen = generation[slot]
    for i in range(n):
        if (consumed[slot, i] >> 2) != gen:
            return False
    in_use[slot] = False
    decoded[0] += _decoded_in(consumed, slot, n, gen)
    return True


@njit(nogil=True, cache=True)
def _first_free(in_use: np.ndarray, published: np.ndarray, consumed: np.ndarray,
                generation: np.ndarray, decoded: np.ndarray) -> int:
    """The lowest-numbered free slot, or -1.  One compiled call per scan: the
    receiver polls this while the ring is full."""
    for slot in range(in_use.shape[0]):
        if _settle(slot, in_use, published, consumed, generation, decoded):
            return slot
    return -1


@njit(nogil=True, cache=True)
def _all_free(in_use: np.ndarray, published: np.ndarray, consumed: np.ndarray,
              generation: np.ndarray, decoded: np.ndarray) -> bool:
    for slot in range(in_use.shape[0]):
        if not _settle(slot, in_use, published, consumed, generation, decoded):
            return False
    return True


def frame_aligned(n: int) -> int:
    """``n`` rounded up to :data:`FRAME_ALIGN` (where the next frame may start)."""
    return _up(n, FRAME_ALIGN)


def _up(n: int, align: int) -> int:
    return (n + align - 1) // align * align


@dataclass(frozen=True)
class RingSpec:
    """Picklable description of a ring: enough for a worker to attach."""

    name: str
    num_slots: int
    slot_bytes: int
    max_frames: int

    @property
    def _regions(self) -> tuple[int, int, int, int, int]:
        counts = 0
        table = _up(counts + 16 * self.num_slots, _ALIGN)
        consumed = _up(table + 8 * 3 * self.num_slots * self.max_frames, _ALIGN)
        payload = _up(consumed + 8 * self.num_slots * self.max_frames, _ALIGN)
        total = _up(payload + self.num_slots * self.slot_bytes, _ALIGN)
        return counts, table, consumed, payload, total

    @property
    def total_bytes(self) -> int:
        return self._regions[4]


class RingViews:
    """numpy views of the four regions of a mapped segment."""

    def __init__(self, spec: RingSpec, buf: memoryview | mmap.mmap):
        c, t, k, p, _ = spec._regions
        s, m = spec.num_slots, spec.max_frames
        self.counts = np.ndarray((s,), dtype=np.int64, buffer=buf, offset=c)
        self.generation = np.ndarray((s,), dtype=np.int64, buffer=buf, offset=c + 8 * s)
        self.table = np.ndarray((s, 3, m), dtype=np.int64, buffer=buf, offset=t)
        self.consumed = np.ndarray((s, m), dtype=np.int64, buffer=buf, offset=k)
        self.payload = np.ndarray((s, spec.slot_bytes), dtype=np.uint8, buffer=buf, offset=p)

    def release(self, slot: int, lo: int, hi: int, gen: int) -> None:
        """Frames ``lo..hi`` of ``slot`` (filling ``gen``) are done with; those
        not marked yet count as skipped."""
        _mark(self.consumed[slot], lo, hi, gen, SKIPPED, True, _NO_ROWS)

    def finish(self, slot: int, lo: int, hi: int, gen: int,
               decoded: list[np.ndarray] | None) -> None:
        """A worker is done with frames ``lo..hi`` of ``slot`` (filling
        ``gen``): all decoded (``decoded`` None) or those rows decoded and the
        rest skipped.  The moment the last mark lands, the receiver may take
        the slot again."""
        if decoded is None:
            _mark(self.consumed[slot], lo, hi, gen, DECODED, False, _NO_ROWS)
            return
        rows = np.concatenate(decoded) if decoded else _NO_ROWS
        _mark(self.consumed[slot], lo, hi, gen, SKIPPED, False, rows.astype(np.int64))


@dataclass(frozen=True)
class RingConfig:
    """How big the ring of one acquisition is.  The defaults hold 128 MiB."""

    num_slots: int = 32
    slot_bytes: int = 4 << 20
    max_frames: int = 256

    @property
    def nbytes(self) -> int:
        """Shared memory of the frame payload (the slot tables add a little)."""
        return self.num_slots * self.slot_bytes

    def resized(self, mib: float) -> RingConfig:
        """The same slots, as many as fit in ``mib`` MiB (at least 2, so the
        receiver can fill one while the workers read the other)."""
        if not mib > 0:
            raise ValueError(f"buffer_size must be a positive number of MiB, got {mib!r}")
        slots = max(2, int(float(mib) * (1 << 20)) // self.slot_bytes)
        return RingConfig(num_slots=slots, slot_bytes=self.slot_bytes,
                          max_frames=self.max_frames)


@dataclass(frozen=True)
class Stack:
    """Frames ``first .. first + count - 1`` stored in ``slot``; ``gen`` is the
    slot's generation when it was filled (it changes whenever the receiver
    takes the slot again, which lets a reader prove its frames were intact)."""

    slot: int
    first: int
    count: int
    gen: int = 0


class Ring:
    """Owner side of a ring: creates, hands out free slots, unlinks."""

    def __init__(self, num_slots: int = 64, slot_bytes: int = 4 << 20, max_frames: int = 256):
        if num_slots < 2:
            raise ValueError("a ring needs at least two slots")
        self.spec_without_name = (num_slots, frame_aligned(slot_bytes), max_frames)
        probe = RingSpec("", *self.spec_without_name)
        self._shm = shared_memory.SharedMemory(create=True, size=probe.total_bytes)
        self.spec = RingSpec(self._shm.name, *self.spec_without_name)
        self.views = RingViews(self.spec, self._shm.buf)
        self._published = np.zeros(num_slots, dtype=np.int64)
        self._in_use = np.zeros(num_slots, dtype=bool)
        self._decoded = np.zeros(1, dtype=np.int64)
        self._lock = threading.Lock()
        self._closed = False

    def _slot_state(self) -> tuple[np.ndarray, ...]:
        return (self._in_use, self._published, self.views.consumed, self.views.generation,
                self._decoded)

    def decoded_frames(self) -> int:
        """Frames marked decoded in this ring's life (exact once every frame
        of a run was used; approximate while workers still decode)."""
        with self._lock:
            total = int(self._decoded[0])
            for slot in np.flatnonzero(self._in_use):
                total += int(_decoded_in(self.views.consumed, slot, self._published[slot],
                                         self.views.generation[slot]))
            return total

    def try_acquire(self) -> int | None:
        """The lowest-numbered free slot.  Why not round-robin: while the
        workers keep up, the same few slots come back again and again, so
        their pages stay in the CPU cache and a large ring costs no more page
        faults than a small one (measured for Merlin: a 16 MiB ring ran
        1.2-1.6x faster than 128 MiB used round-robin)."""
        with self._lock:
            slot = int(_first_free(*self._slot_state()))
            if slot < 0:
                return None
            self._in_use[slot] = True
            self._published[slot] = 0
            self.views.counts[slot] = 0
            self.views.generation[slot] += 1  # before any byte is written
            return slot

    def acquire(self, stop: threading.Event, on_wait: Callable[[float], None],
                timeout: float | None = None) -> int:
        """A free slot; blocks (back-pressure) while every slot is in use."""
        slot = self.try_acquire()
        if slot is not None:
            return slot
        t0 = time.perf_counter()
        pause = 20e-6
        try:
            while True:
                if stop.is_set():
                    raise AcquisitionError("receiver stopped while waiting for a free ring slot")
                time.sleep(pause)
                pause = min(pause * 2, 1e-3)
                slot = self.try_acquire()
                if slot is not None:
                    return slot
                if timeout is not None and time.perf_counter() - t0 > timeout:
                    raise AcquisitionError(
                        f"every one of the {self.spec.num_slots} ring slots stayed in use "
                        f"for {timeout:.0f} s: the workers stopped consuming frames"
                    )
        finally:
            on_wait(time.perf_counter() - t0)

    def publish(self, slot: int, count: int) -> None:
        with self._lock:
            self.views.counts[slot] = count
            self._published[slot] = count

    def abandon(self, slot: int) -> None:
        """Give back a slot that was acquired but never published."""
        with self._lock:
            self._in_use[slot] = False

    def release(self, slot: int, lo: int, hi: int, gen: int) -> None:
        self.views.release(slot, lo, hi, gen)

    def idle(self) -> bool:
        """Every slot free: no frame of this ring is waiting for, or being
        read by, anyone (so no late reader can touch it any more)."""
        with self._lock:
            return bool(_all_free(*self._slot_state()))

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.views = None  # type: ignore[assignment]
        try:
            self._shm.close()
        except BufferError:
            pass  # a view is still alive somewhere; unlink frees the name anyway
        try:
            self._shm.unlink()
        except FileNotFoundError:
            pass


class RingWriter:
    """Receiver side: fills slots with consecutive frames and publishes them.

    A stack is published when its slot is full (bytes or frame table), when
    the next frame is not the successor of the last one, or on ``flush()``
    (the receiver flushes when the stream pauses, so that live results do not
    wait for a slot to fill at low frame rates).
    """

    def __init__(self, ring: Ring, publish: Callable[[Stack], None], stop: threading.Event,
                 on_wait: Callable[[float], None], slot_timeout: float | None = None):
        self.ring = ring
        self._publish = publish
        self._stop = stop
        self._on_wait = on_wait
        self._slot_timeout = slot_timeout
        self._slot: int | None = None
        self._first = 0
        self._count = 0
        self._fill = 0
        self._flushed = 0
        self._end = 0
        views = ring.views
        self._table = views.table
        self._payload = views.payload
        self._max_frames = ring.spec.max_frames
        self._slot_bytes = ring.spec.slot_bytes

    def reserve(self, index: int, nbytes: int) -> np.ndarray:
        """Writable uint8 space for frame ``index`` of ``nbytes`` bytes."""
        if nbytes > self._slot_bytes:
            raise AcquisitionError(
                f"frame {index} has {nbytes} bytes, more than a ring slot holds "
                f"({self._slot_bytes}); open the connection with a larger slot size"
            )
        self._open_slot(index, nbytes)
        return self._payload[self._slot, self._fill:self._fill + nbytes]

    def _open_slot(self, index: int, nbytes: int) -> None:
        """Make the current slot the one frame ``index`` (``nbytes`` long) goes
        to: publish the current one if the frame does not follow it or does
        not fit, and take a free slot (waiting for one) if there is none."""
        if self._slot is not None and (
            self._count == self._max_frames
            or index != self._first + self._count
            or self._fill + nbytes > self._slot_bytes
        ):
            self.flush()
        if self._slot is None:
            self._slot = self.ring.acquire(self._stop, self._on_wait, self._slot_timeout)
            self._first = index
            self._count = 0
            self._fill = 0

    def commit(self, nbytes: int, aux: int = 0) -> None:
        assert self._slot is not None
        row = self._count
        table = self._table[self._slot]
        table[OFFSET, row] = self._fill
        table[SIZE, row] = nbytes
        table[AUX, row] = aux
        self._count += 1
        self._fill = frame_aligned(self._fill + nbytes)

    def commit_shared(self, nbytes: int, count: int) -> None:
        """Book ``count`` consecutive frames that share one stored record (a
        sparse chunk, say): each gets the record's offset and size, and its row
        within the record as ``aux``.  Reserve with the first frame's index."""
        assert self._slot is not None
        if self._count + count > self._max_frames:
            raise AcquisitionError(
                f"a record of {count} frames does not fit the ring's frame table "
                f"({self._max_frames - self._count} of {self._max_frames} entries free)"
            )
        row = self._count
        table = self._table[self._slot]
        table[OFFSET, row:row + count] = self._fill
        table[SIZE, row:row + count] = nbytes
        table[AUX, row:row + count] = np.arange(count)
        self._count += count
        self._fill = frame_aligned(self._fill + nbytes)

    def room_for(self, index: int, nbytes: int, count: int) -> bool:
        """Whether the current slot can take a record of ``count`` frames
        starting at ``index`` without publishing first."""
        return (self._slot is not None and index == self._first + self._count
                and self._count + count <= self._max_frames
                and self._fill + nbytes <= self._slot_bytes)

    def reserve_record(self, index: int, nbytes: int, count: int) -> np.ndarray:
        """Like :meth:`reserve`, for a record of ``count`` frames
        (:meth:`commit_shared` books it)."""
        if count > self._max_frames:
            raise AcquisitionError(
                f"a record of {count} frames is larger than a ring slot's frame table "
                f"({self._max_frames}); split it or open the connection with a larger ring"
            )
        if self._slot is not None and not self.room_for(index, nbytes, count):
            self.flush()
        return self.reserve(index, nbytes)

    def lease(self, index: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        """For receivers that write many frames per call (a compiled receive
        loop): open the slot that frame ``index`` goes to, publishing the
        current one first if ``index`` does not follow it or its table is
        full.  Returns the slot's payload row, its frame table
        ``(3, max_frames)`` (offset, size, aux), and the frames and bytes
        already in it.  Report what was written with :meth:`settle`; offsets
        must stay 16-byte aligned."""
        self._open_slot(index, 0)
        return self._payload[self._slot], self._table[self._slot], self._count, self._fill

    def settle(self, count: int, fill: int) -> None:
        """The leased slot now holds ``count`` frames in its first ``fill`` bytes."""
        assert self._slot is not None or count == 0
        self._count = count
        self._fill = fill

    @property
    def slot_bytes(self) -> int:
        return self._slot_bytes

    @property
    def max_frames(self) -> int:
        """Frames one slot's table holds (a record must not span more)."""
        return self._max_frames

    def put(self, index: int, payload, aux: int = 0) -> None:
        """Copy one frame's bytes (any buffer) into the ring."""
        src = np.frombuffer(payload, dtype=np.uint8)
        dest = self.reserve(index, src.nbytes)
        dest[:] = src
        self.commit(src.nbytes, aux)

    def put_frames(self, index: int, frames: np.ndarray) -> int:
        """Copy consecutive equal-sized frames (uint8, one per row; the first
        is frame ``index``) into the ring: as many as the current slot takes,
        at least one (opening a slot, waiting for one if the ring is full).
        Returns how many were stored.  One call per stack instead of one per
        frame, and the copy bypasses the caches
        (:mod:`~libertem_live.transport.streamcopy`)."""
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        n, nbytes = frames.shape
        if n == 0:
            return 0
        self.reserve(index, nbytes)
        stride = frame_aligned(nbytes)
        room = min(n, self._max_frames - self._count,
                   (self._slot_bytes - self._fill - nbytes) // stride + 1)
        assert self._slot is not None
        copy_frames(self._payload[self._slot], self._table[self._slot], self._count,
                    self._fill, frames[:room], stride)
        self._count += room
        self._fill += room * stride
        return room

    @property
    def pending(self) -> int:
        return self._count

    @property
    def frames(self) -> int:
        """Frames written through this writer so far, published or not."""
        return self._flushed + self._count

    @property
    def next_index(self) -> int:
        """The index after the last frame written (where the series stands,
        counting a skipped frame as passed and a repeated one once)."""
        return self._first + self._count if self._slot is not None else self._end

    def flush(self) -> None:
        if self._slot is None:
            return
        slot, count = self._slot, self._count
        self._slot = None
        if count == 0:
            self.ring.abandon(slot)
            return
        self._flushed += count
        self._end = self._first + count
        self._count = 0
        self.ring.publish(slot, count)
        gen = int(self.ring.views.generation[slot])
        self._publish(Stack(slot=slot, first=self._first, count=count, gen=gen))


_ATTACHED: dict[str, tuple[mmap.mmap, RingViews]] = {}
_ATTACH_KEEP = 4


def attach(spec: RingSpec) -> RingViews:
    """Worker side: map a ring once per process (by its name) and keep it.

    Maps ``/dev/shm/<name>`` directly instead of using ``SharedMemory`` so that
    attaching does not register the segment with the resource tracker, which
    the workers share with the owner (only the owner must unlink).
    """
    hit = _ATTACHED.get(spec.name)
    if hit is not None:
        return hit[1]
    path = os.path.join("/dev/shm", spec.name.lstrip("/"))
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        raise AcquisitionError(
            f"the frame ring {spec.name!r} is gone: the acquisition ended before this "
            "worker could read its frames"
        ) from None
    try:
        mm = mmap.mmap(fd, spec.total_bytes)
    finally:
        os.close(fd)
    views = RingViews(spec, mm)
    while len(_ATTACHED) >= _ATTACH_KEEP:
        old_name = next(iter(_ATTACHED))
        old_mm, _old_views = _ATTACHED.pop(old_name)
        del _old_views
        try:
            old_mm.close()
        except BufferError:
            pass
    _ATTACHED[spec.name] = (mm, views)
    return views
