"""A slot is free again only when every frame of its *current* filling was
marked: a mark that lands late, from an earlier filling of the slot, must not
hand the slot back while its new frames wait (the transport's design note
tells the story of the race)."""
from __future__ import annotations

import threading

import numpy as np

from libertem_live.transport.ring import Ring, RingWriter, Stack, attach


def _fill(ring: Ring, first: int, count: int) -> Stack:
    got: list[Stack] = []
    writer = RingWriter(ring, got.append, threading.Event(), on_wait=lambda dt: None)
    for i in range(first, first + count):
        writer.put(i, np.full(32, i % 251, dtype=np.uint8))
    writer.flush()
    return got[0]


def test_a_late_mark_of_an_earlier_filling_does_not_free_the_slot() -> None:
    ring = Ring(num_slots=2, slot_bytes=1 << 12, max_frames=4)
    try:
        views = attach(ring.spec)  # what a worker maps
        old = _fill(ring, 0, 4)
        views.finish(old.slot, 0, 4, old.gen, None)
        new = _fill(ring, 4, 4)
        assert new.slot == old.slot, "the lowest free slot is taken again"
        assert new.gen == old.gen + 1
        views.finish(old.slot, 0, 4, old.gen, None)  # the late duplicate
        other = ring.try_acquire()
        assert other is not None and other != new.slot, "a stale mark freed the refilled slot"
        ring.abandon(other)
        views.finish(new.slot, 0, 4, new.gen, None)
        assert ring.idle()
        assert ring.decoded_frames() == 8
    finally:
        ring.close()


def test_release_keeps_the_decoded_marks_of_a_split_slot() -> None:
    ring = Ring(num_slots=2, slot_bytes=1 << 12, max_frames=4)
    try:
        views = attach(ring.spec)
        st = _fill(ring, 0, 4)
        views.finish(st.slot, 0, 2, st.gen, None)                      # one partition
        views.finish(st.slot, 2, 4, st.gen, [np.array([3])])           # ROI keeps frame 3
        ring.release(st.slot, 0, 4, st.gen)                            # main: end of run
        assert ring.idle()
        assert ring.decoded_frames() == 3, "release must not turn decoded frames into skipped"
    finally:
        ring.close()
