"""Serialise CSR chunks into ArrayChunk messages (header + payload).

The inverse of the driver's decoder, used by the simulator and by tests. It
lives apart from the server so that capture writers and tests can build
exact wire bytes without running one.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..headers import HEADER_SIZE, ArrayChunk, DType, dtype_code, numpy_dtype

__all__ = ["encode_chunk", "chunk_layout"]


def _round_up(x: int, align: int) -> int:
    return x if align <= 1 else -(-x // align) * align


def chunk_layout(
    nframes: int, nnz: int, indptr_dtype: int, indices_dtype: int, value_dtype: int,
    *, align: int = 1, extra_pad: int = 0,
) -> ArrayChunk:
    """Header for a chunk with the given sizes.

    ``align`` rounds the start of the indices and values regions up to a
    multiple of ``align`` bytes and ``extra_pad`` adds that many more padding
    bytes before each of them; ``align=1, extra_pad=0`` gives the packed
    layout upstream's generator writes. Real senders may pad, so receivers
    must honour the offsets instead of assuming packing.
    """
    ip = numpy_dtype(indptr_dtype).itemsize
    ix = numpy_dtype(indices_dtype).itemsize
    ixo = _round_up((nframes + 1) * ip + extra_pad, align)
    vo = _round_up(ixo + nnz * ix + extra_pad, align)
    return ArrayChunk(value_dtype=DType(dtype_code(value_dtype)), nframes=nframes,
                      length=nnz, indices_offset=ixo, values_offset=vo)


def encode_chunk(
    indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, *,
    indptr_dtype: int, indices_dtype: int, value_dtype: int,
    align: int = 1, extra_pad: int = 0, junk: Optional[int] = 0xA5,
) -> bytes:
    """ArrayChunk header + payload for one CSR block.

    ``indptr`` must start at 0 and end at ``len(indices)``; values are cast
    to the wire dtype, and a value that does not fit raises ``ValueError``
    (silent wrap-around would corrupt the ground truth). Padding bytes are
    filled with ``junk`` (so tests notice a decoder that reads them) or left
    zero when ``junk`` is None.
    """
    indptr = np.asarray(indptr)
    indices = np.asarray(indices)
    values = np.asarray(values)
    nframes = indptr.size - 1
    nnz = indices.size
    if nframes < 0 or indptr[0] != 0 or indptr[-1] != nnz or values.size != nnz:
        raise ValueError("indptr must run from 0 to len(indices) == len(values)")
    hdr = chunk_layout(nframes, nnz, indptr_dtype, indices_dtype, value_dtype,
                       align=align, extra_pad=extra_pad)
    buf = np.full(HEADER_SIZE + hdr.payload_size(), junk or 0, dtype=np.uint8)
    buf[:HEADER_SIZE] = np.frombuffer(hdr.pack(), dtype=np.uint8)
    payload = buf[HEADER_SIZE:]
    r_ip, r_ix, r_v = hdr.regions(indptr_dtype, indices_dtype)
    for region, arr, code, name in (
        (r_ip, indptr, indptr_dtype, "indptr"),
        (r_ix, indices, indices_dtype, "indices"),
        (r_v, values, value_dtype, "values"),
    ):
        dt = numpy_dtype(dtype_code(code))
        if arr.size and (arr.min() < 0 or int(arr.max()) > np.iinfo(dt).max):
            raise ValueError(f"{name} do not fit {dt}")
        payload[region] = np.ascontiguousarray(arr, dtype=dt).view(np.uint8)
    return buf.tobytes()
