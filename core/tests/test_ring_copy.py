"""Frames written many at a time with cache-bypassing stores arrive intact,
booked at aligned offsets, and never overflow a slot."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from libertem_live.transport.ring import (
    FRAME_ALIGN, OFFSET, SIZE, Ring, RingWriter, Stack, attach,
)
from libertem_live.transport.streamcopy import stream_copy


@pytest.mark.parametrize("length", [0, 1, 15, 16, 17, 100, 4096 + 7])
@pytest.mark.parametrize("shift", [0, 1, 8, 15])
def test_stream_copy_copies_exactly_and_nothing_else(length: int, shift: int) -> None:
    src_buf = np.random.default_rng(length).integers(0, 256, length + 3, dtype=np.uint8)
    src = src_buf[3:]  # a source that is not aligned either
    dst_buf = np.full(length + 64, 0xAB, dtype=np.uint8)
    dst = dst_buf[shift:shift + length]
    stream_copy(dst, src)
    np.testing.assert_array_equal(dst, src)
    assert (dst_buf[:shift] == 0xAB).all() and (dst_buf[shift + length:] == 0xAB).all()


def test_stream_copy_refuses_unequal_lengths() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        stream_copy(np.zeros(8, np.uint8), np.zeros(9, np.uint8))


def test_put_frames_fills_a_slot_and_goes_on_in_the_next() -> None:
    ring = Ring(num_slots=3, slot_bytes=3 * 48, max_frames=8)
    got: list[Stack] = []
    writer = RingWriter(ring, got.append, threading.Event(), on_wait=lambda dt: None)
    frames = np.arange(5 * 40, dtype=np.uint8).reshape(5, 40)
    try:
        assert writer.put_frames(0, frames) == 3, "a slot of 144 bytes takes three 48-byte strides"
        assert writer.put_frames(3, frames[3:]) == 2
        writer.flush()
        assert [(s.first, s.count) for s in got] == [(0, 3), (3, 2)]
        views = attach(ring.spec)
        for st in got:
            table = views.table[st.slot]
            offsets = table[OFFSET, :st.count]
            assert (offsets % FRAME_ALIGN == 0).all()
            assert (table[SIZE, :st.count] == 40).all()
            for row, off in enumerate(offsets):
                np.testing.assert_array_equal(views.payload[st.slot, off:off + 40],
                                              frames[st.first + row])
    finally:
        ring.close()


def test_put_frames_publishes_when_the_index_jumps() -> None:
    ring = Ring(num_slots=3, slot_bytes=1 << 12, max_frames=8)
    got: list[Stack] = []
    writer = RingWriter(ring, got.append, threading.Event(), on_wait=lambda dt: None)
    frames = np.ones((2, 32), dtype=np.uint8)
    try:
        writer.put_frames(0, frames)
        writer.put_frames(10, frames)
        writer.flush()
        assert [(s.first, s.count) for s in got] == [(0, 2), (10, 2)]
    finally:
        ring.close()
