"""Encoders for the DECTRIS pixel encodings, used by the simulator and tests.

The simulator must produce exactly what a DCU sends: ``bs<N>-lz4<`` in the
HDF5 bitshuffle filter's layout with a correct 12-byte header (uncompressed
size and block size, big-endian; unlike LT-rs' mock generator,
which writes zeros there), ``lz4<`` as one raw LZ4 block, and ``<`` raw.
Speed is secondary: the simulator encodes a small pool of frames once and
cycles it, so the per-block ``lz4.block.compress`` call is fine.
"""
from __future__ import annotations

import struct

import lz4.block
import numpy as np

from libertem_live_dectris.kernels import bitshuffle_frame, default_block_elements

ENCODINGS: dict[str, str] = {
    # compression config value -> encoding string template (bits filled in)
    "bslz4": "bs{bits}-lz4<",
    "lz4": "lz4<",
    "none": "<",
}


def encoding_for(compression: str, dtype: np.dtype | str) -> str:
    """The ``encoding`` string a DCU puts into ``dimage_d-1.0`` for ``compression``."""
    try:
        template = ENCODINGS[compression]
    except KeyError:
        raise ValueError(f"unknown compression {compression!r}, expected one of {sorted(ENCODINGS)}")
    return template.format(bits=np.dtype(dtype).itemsize * 8)


def _as_le_bytes(arr: np.ndarray) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.dtype.kind not in "ui" or arr.dtype.itemsize not in (1, 2, 4):
        raise ValueError(f"pixel type must be an 8/16/32-bit integer, got {arr.dtype}")
    le = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return le.reshape(-1).view(np.uint8)


def encode_bslz4(
    arr: np.ndarray, block_size: int = 0, write_block_size: bool = True,
) -> bytes:
    """Bitshuffle+LZ4 in the HDF5-filter layout (12-byte header, blocks, raw tail).

    ``block_size`` is in elements (0 = the library default, a multiple of 8
    otherwise). ``write_block_size=False`` writes 0 into the header's block
    size field, like some third-party generators, to exercise the decoder's
    fallback to the default.
    """
    raw = _as_le_bytes(arr)
    itemsize = np.asarray(arr).dtype.itemsize
    n_el = raw.size // itemsize
    B = block_size or default_block_elements(itemsize)
    if B <= 0 or B % 8 != 0:
        raise ValueError(f"block size must be a positive multiple of 8 elements, got {B}")
    shuffled = np.empty_like(raw)
    bitshuffle_frame(raw, n_el, itemsize, B, shuffled)
    header_bs = B * itemsize if write_block_size else 0
    parts = [struct.pack(">QI", raw.size, header_bs)]
    nfull = n_el // B
    tail = n_el % 8
    short = (n_el % B) - tail
    bounds = [(k * B, (k + 1) * B) for k in range(nfull)]
    if short > 0:
        bounds.append((nfull * B, nfull * B + short))
    view = memoryview(shuffled)
    for e0, e1 in bounds:
        block = lz4.block.compress(view[e0 * itemsize:e1 * itemsize], store_size=False)
        parts.append(struct.pack(">I", len(block)))
        parts.append(block)
    parts.append(bytes(view[(n_el - tail) * itemsize:]))
    return b"".join(parts)


def encode_lz4(arr: np.ndarray) -> bytes:
    """The whole frame as one raw LZ4 block (``lz4<``), no size prefix."""
    return lz4.block.compress(_as_le_bytes(arr), store_size=False)


def encode_lz4_hdf5(arr: np.ndarray, block_size: int = 1 << 16) -> bytes:
    """Stream V2's ``lz4``: the HDF5 LZ4 filter framing (total size and
    block size, big-endian, then each block with its big-endian length;
    a block that does not shrink is stored as is)."""
    raw = memoryview(_as_le_bytes(arr))
    parts = [struct.pack(">QI", len(raw), block_size)]
    for start in range(0, len(raw), block_size):
        chunk = raw[start:start + block_size]
        block = lz4.block.compress(chunk, store_size=False)
        if len(block) >= len(chunk):
            block = bytes(chunk)
        parts.append(struct.pack(">I", len(block)))
        parts.append(block)
    return b"".join(parts)


def encode_raw(arr: np.ndarray) -> bytes:
    """Uncompressed little-endian pixels (encoding ``<``)."""
    return _as_le_bytes(arr).tobytes()


def encode(arr: np.ndarray, compression: str) -> bytes:
    """Encode ``arr`` for the detector config value ``compression`` (bslz4/lz4/none)."""
    if compression == "bslz4":
        return encode_bslz4(arr)
    if compression == "lz4":
        return encode_lz4(arr)
    if compression == "none":
        return encode_raw(arr)
    raise ValueError(f"unknown compression {compression!r}")
