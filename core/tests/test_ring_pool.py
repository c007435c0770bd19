"""A connection keeps its ring for the next acquisition only when nothing can
still touch it; every ring is freed when the connection closes."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from libertem_live.transport.pool import RingPool
from libertem_live.transport.ring import RingConfig
from libertem_live.transport.stream import FrameStream

CFG = RingConfig(num_slots=4, slot_bytes=1 << 12, max_frames=8)


def _exists(name: str) -> bool:
    return os.path.exists(os.path.join("/dev/shm", name.lstrip("/")))


def _run(stream: FrameStream, frames: int, consume: bool) -> None:
    """Write ``frames`` frames and (optionally) consume them as a worker would."""
    writer = stream.writer()
    for i in range(frames):
        writer.put(i, np.full(16, i, dtype=np.uint8))
    writer.flush()
    stream.finish()
    got = 0
    while got < frames:
        st = stream.next_stack()
        if consume:
            stream.ring.release(st.slot, 0, st.count, st.gen)
        got += st.count


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")
def test_consumed_ring_is_kept_and_reused_until_close() -> None:
    pool = RingPool()
    first = FrameStream(20, ring=CFG, pool=pool)
    name = first.spec.name
    gen_before = first.ring.views.generation.copy()
    _run(first, 20, consume=True)
    first.close()
    assert _exists(name), "a fully consumed ring is kept for the next acquisition"

    second = FrameStream(20, ring=CFG, pool=pool)
    assert second.spec.name == name
    _run(second, 20, consume=True)
    assert (second.ring.views.generation > gen_before).any(), \
        "generations keep counting up across acquisitions"
    second.close()
    pool.close()
    assert not _exists(name), "closing the pool frees the ring"


@pytest.mark.skipif(not os.path.isdir("/dev/shm"), reason="needs /dev/shm")
def test_ring_with_unconsumed_frames_is_freed_not_reused() -> None:
    """A worker may still read (and later mark) frames of a cancelled run."""
    pool = RingPool()
    first = FrameStream(20, ring=CFG, pool=pool)
    name = first.spec.name
    _run(first, 20, consume=False)
    first.close()
    assert not _exists(name)
    second = FrameStream(4, ring=CFG, pool=pool)
    assert second.spec.name != name
    second.close()
    pool.close()
    assert not _exists(second.spec.name)


def test_other_configuration_gets_its_own_ring() -> None:
    pool = RingPool()
    a = FrameStream(1, ring=CFG, pool=pool)
    a.close()
    b = FrameStream(1, ring=RingConfig(num_slots=2, slot_bytes=1 << 12, max_frames=8), pool=pool)
    assert b.spec.num_slots == 2 and b.spec.name != a.spec.name
    b.close()
    pool.close()


def test_prepared_ring_is_the_one_the_first_acquisition_gets() -> None:
    pool = RingPool()
    pool.prepare(CFG)
    stream = FrameStream(20, ring=CFG, pool=pool)
    name = stream.spec.name
    _run(stream, 20, consume=True)
    stream.close()
    pool.prepare(CFG)  # one is idle already: nothing new
    again = FrameStream(20, ring=CFG, pool=pool)
    assert again.spec.name == name
    again.close()
    pool.close()
    assert not [t for t in threading.enumerate() if t.name == "libertem-live-ring-prefault"]
    if os.path.isdir("/dev/shm"):
        assert not _exists(name)


def test_populate_keeps_the_contents() -> None:
    """Faulting a ring's pages in must not change a byte, so a receiver may
    already be writing while it runs."""
    from libertem_live.transport.pool import populate
    from libertem_live.transport.ring import Ring
    ring = Ring(num_slots=4, slot_bytes=1 << 20, max_frames=8)
    try:
        payload = ring.views.payload
        payload[1, 100:200] = np.arange(100, dtype=np.uint8)
        before = payload.copy()
        done = populate(ring)
        assert done in (0, payload.nbytes)  # 0: the kernel cannot (before Linux 5.14)
        np.testing.assert_array_equal(payload, before)
    finally:
        ring.close()
    assert populate(ring) == 0, "a closed ring is left alone"
