"""The page-fault helpers (.heap, .warm) and the reader's header readahead."""
import socket
import threading

import numpy as np

from libertem_live.transport.stream import FrameStream, RingConfig
from libertem_live_asi_tpx3 import heap
from libertem_live_asi_tpx3.headers import AcquisitionStart, ArrayChunk, DType, ScanStart
from libertem_live_asi_tpx3.stream import Tpx3Reader
from libertem_live_asi_tpx3.warm import populate, start_prefault


def test_keep_freed_memory_is_applied_once_per_process():
    first = heap.keep_freed_memory()
    assert isinstance(first, bool)
    assert heap.keep_freed_memory() is first


def test_keep_freed_memory_can_be_switched_off(monkeypatch):
    monkeypatch.setattr(heap, "_state", {})
    monkeypatch.setenv("LIBERTEM_LIVE_TPX3_KEEP_HEAP", "0")
    assert heap.keep_freed_memory() is False


def test_populate_keeps_the_contents():
    stream = FrameStream(10, ring=RingConfig(num_slots=4, slot_bytes=1 << 20, max_frames=8))
    try:
        payload = stream.ring.views.payload
        payload[1, 100:200] = np.arange(100, dtype=np.uint8)
        before = payload.copy()
        populate(payload)
        np.testing.assert_array_equal(payload, before)
        t = start_prefault(stream)
        assert t is not None
        t.join(10)
        np.testing.assert_array_equal(payload, before)
    finally:
        stream.close()


def test_prefault_of_a_closed_stream_is_a_no_op():
    stream = FrameStream(10, ring=RingConfig(num_slots=2, slot_bytes=1 << 16, max_frames=8))
    stream.close()
    assert start_prefault(stream) is None


def test_header_after_a_large_payload_is_read_on_its_own():
    """After a large payload the reader takes only the next 32-byte header from
    the socket; the following payload still arrives intact."""
    acq = AcquisitionStart(nav_shape=(1, 2), sig_shape=(64, 64))
    nnz = 20000  # > 32 KiB of indices + values
    chunks = []
    for _ in range(2):
        indptr = np.array([0, nnz], np.uint32)
        ix = np.arange(nnz, dtype=np.uint32) % 4096
        vals = np.ones(nnz, np.uint32)
        hdr = ArrayChunk(value_dtype=DType.U32, nframes=1, length=nnz, indices_offset=8,
                         values_offset=8 + 4 * nnz)
        chunks.append(hdr.pack() + indptr.tobytes() + ix.tobytes() + vals.tobytes())
    wire = acq.pack() + ScanStart().pack() + b"".join(chunks)
    a, b = socket.socketpair()
    sender = threading.Thread(target=a.sendall, args=(wire,))
    sender.start()
    try:
        r = Tpx3Reader(b, check_frame_count=False)
        r.read_header(1.0)
        r.read_header(1.0)
        for k in range(2):
            hdr = r.read_header(1.0)
            assert isinstance(hdr, ArrayChunk)
            buf = bytearray(r.payload_size)
            r.read_payload_into(buf)
            assert bytes(buf) == chunks[k][32:]
            assert r._ahead == 32  # the next header is read on its own
    finally:
        sender.join(5)
        a.close()
        b.close()
