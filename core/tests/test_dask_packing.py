"""Packing a partition's frames out of the ring for a remote worker (or
holding them there for a worker on this machine): every
frame's bytes and aux word as the receiver wrote them (frames of varying
size, records shared by several frames, partitions that span slots or start
mid-slot, frames a ROI skipped), the ring given back, and the bytes aligned
again where they are unpickled.  No cluster needed."""
from __future__ import annotations

import pickle

import numpy as np

from libertem_live.cluster.packing import PAYLOAD_ALIGN, FramePacker, PackedFrames
from libertem_live.transport.ring import RingConfig
from libertem_live.transport.stream import FrameStream


def _frame(i: int) -> np.ndarray:
    return np.full(17 + 13 * (i % 7), i % 251, dtype=np.uint8)  # sizes vary, unaligned


def _stream(n: int) -> tuple[FrameStream, dict[int, tuple[bytes, int]]]:
    """``n`` frames in a ring of small slots; frames 20..27 form one shared
    record (as sparse formats store them); returns what each frame holds."""
    stream = FrameStream(n, ring=RingConfig(num_slots=8, slot_bytes=1 << 10, max_frames=8))
    writer = stream.writer()
    truth: dict[int, tuple[bytes, int]] = {}
    i = 0
    while i < n:
        if i == 20:
            record = np.arange(100, dtype=np.uint8)
            dest = writer.reserve_record(i, record.nbytes, 8)
            dest[:] = record
            writer.commit_shared(record.nbytes, 8)
            for k in range(8):
                truth[i + k] = (record.tobytes(), k)
            i += 8
            continue
        writer.put(i, _frame(i), aux=i * 3)
        truth[i] = (_frame(i).tobytes(), i * 3)
        i += 1
    writer.flush()
    stream.finish()
    return stream, truth


def _frames_of(packed: PackedFrames) -> dict[int, tuple[bytes, int]]:
    return {packed.first + j: (packed.payload[o:o + s].tobytes(), int(a))
            for j, (o, s, a) in enumerate(zip(packed.offsets, packed.sizes, packed.aux))}


def test_partitions_carry_every_frame_as_written() -> None:
    stream, truth = _stream(50)
    try:
        packer = FramePacker(stream)
        got: dict[int, tuple[bytes, int]] = {}
        for start, stop in ((0, 13), (13, 24), (24, 40), (45, 50)):  # 40..44 left out
            packed = packer.pack(start, stop)
            assert (packed.first, packed.count) == (start, stop - start)
            assert all(o % 16 == 0 for o in packed.offsets)
            got.update(_frames_of(packed))
        assert got == {i: v for i, v in truth.items() if not 40 <= i < 45}
        packer.release_rest()
        assert stream.ring.idle(), "every slot is free once its frames were packed"
        assert stream.ledger.snapshot().dispatched == 45
    finally:
        stream.close()


def test_unpickled_payload_is_aligned() -> None:
    stream, truth = _stream(12)
    try:
        packed = FramePacker(stream).pack(0, 12)
    finally:
        stream.close()
    # a buffer at an odd address, as the network layer may hand it over
    raw = pickle.dumps(packed, protocol=5)
    shifted = np.empty(len(raw) + 1, dtype=np.uint8)[1:]
    shifted[:] = np.frombuffer(raw, dtype=np.uint8)
    back = pickle.loads(memoryview(shifted))
    assert back.payload.ctypes.data % PAYLOAD_ALIGN == 0
    assert _frames_of(back) == truth


def test_taken_by_reference_until_released() -> None:
    """``take`` hands out the ring pieces of a partition for a worker on this
    machine: the frames stay in their slots (held) until ``release``; a
    partition spread over more than ``max_slots`` slots is copied out and
    its slots freed instead, as ``pack`` does."""
    stream, truth = _stream(50)
    try:
        packer = FramePacker(stream)
        views = stream.ring.views
        held = packer.take(0, 13, max_slots=4)
        assert isinstance(held, list)
        got = {}
        for slot, lo, hi, first, _gen in held:
            for j in range(lo, hi):
                o, s, a = (int(x) for x in views.table[slot, :, j])
                got[first + j - lo] = (views.payload[slot, o:o + s].tobytes(), a)
        assert got == {i: truth[i] for i in range(13)}
        assert not stream.ring.idle(), "held pieces keep their slots"
        spilled = packer.take(13, 40, max_slots=1)
        assert isinstance(spilled, PackedFrames)
        assert (spilled.first, spilled.count) == (13, 27)
        assert _frames_of(spilled) == {i: truth[i] for i in range(13, 40)}
        assert _frames_of(packer.pack(40, 50)) == {i: truth[i] for i in range(40, 50)}
        assert not stream.ring.idle()
        packer.release(held)
        assert stream.ring.idle(), "every slot is free once the held pieces were released"
        assert stream.ledger.snapshot().dispatched == 50
    finally:
        stream.close()
