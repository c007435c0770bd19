"""The reader's header readahead."""
import socket
import threading

import numpy as np

from libertem_live_asi_tpx3.headers import AcquisitionStart, ArrayChunk, DType, ScanStart
from libertem_live_asi_tpx3.stream import Tpx3Reader


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
