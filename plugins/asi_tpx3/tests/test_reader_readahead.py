"""Large payloads back to back: each header after a large payload is read on its
own and the payloads arrive intact (the reader must not read ahead into the
next chunk's bytes and lose them)."""
import numpy as np

from libertem_live_asi_tpx3.headers import AcquisitionStart, ArrayChunk, DType, ScanStart

from _helpers import RawServer, messages, read_header


def test_headers_between_large_payloads():
    acq = AcquisitionStart(nav_shape=(1, 2), sig_shape=(64, 64))
    nnz = 20000  # > 32 KiB of indices + values
    chunks = []
    for k in range(2):
        indptr = np.array([0, nnz], np.uint32)
        ix = (np.arange(nnz, dtype=np.uint32) + k) % 4096
        vals = np.ones(nnz, np.uint32)
        hdr = ArrayChunk(value_dtype=DType.U32, nframes=1, length=nnz, indices_offset=8,
                         values_offset=8 + 4 * nnz)
        chunks.append(hdr.pack() + indptr.tobytes() + ix.tobytes() + vals.tobytes())
    wire = acq.pack() + ScanStart().pack() + b"".join(chunks)
    with RawServer([wire]) as srv:
        r = messages(srv.port)
        try:
            read_header(r, 1.0)
            read_header(r, 1.0)
            for k in range(2):
                hdr = read_header(r, 1.0)
                assert isinstance(hdr, ArrayChunk)
                assert bytes(r.header_bytes) == chunks[k][:32]
                buf = bytearray(r.payload_size)
                r.payload_into(buf)
                assert bytes(buf) == chunks[k][32:]
            assert r.reader.offset == len(wire)
        finally:
            r.reader.close()
