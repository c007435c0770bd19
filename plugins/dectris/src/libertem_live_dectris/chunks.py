"""DECTRIS payloads as HDF5 chunks, for recording them without decoding.

A ``bs<N>-lz4<`` payload is byte for byte a chunk of the HDF5 bitshuffle
filter (its 12-byte header included: the detector's own HDF5 writer stores
exactly these bytes), and stream V2's ``lz4`` payloads are chunks of the HDF5
LZ4 filter.  Stream V1's ``lz4<`` is one bare LZ4 block of the whole frame;
the LZ4 filter's framing around it is 16 bytes (sizes and the block's
length), so it costs one copy.  Only the header's size field is checked
here: the recorder stores chunks without decompressing them.
"""
from __future__ import annotations

import struct

import numpy as np
from libertem_live.driver import HDF5Filter

LZ4_FILTER = HDF5Filter.lz4()
_LZ4_FRAMING = struct.Struct(">QII")


def filtered(payload: np.ndarray, frame_bytes: int) -> bool:
    """Whether ``payload`` starts with a filter header (uncompressed size,
    block size; big-endian) announcing ``frame_bytes`` bytes."""
    return payload.size >= 12 and int.from_bytes(payload[:8].tobytes(), "big") == frame_bytes


def bslz4_chunk(payload: np.ndarray, frame_bytes: int,
                filt: HDF5Filter) -> tuple[HDF5Filter, np.ndarray] | None:
    return (filt, payload) if filtered(payload, frame_bytes) else None


def lz4_hdf5_chunk(payload: np.ndarray, frame_bytes: int) -> tuple[HDF5Filter, np.ndarray] | None:
    return (LZ4_FILTER, payload) if filtered(payload, frame_bytes) else None


def lz4_block_chunk(payload: np.ndarray, frame_bytes: int) -> tuple[HDF5Filter, bytes] | None:
    """A bare LZ4 block framed as an LZ4-filter chunk of one block.  A block
    exactly as long as the frame would read as stored uncompressed: decode
    that one instead."""
    n = payload.size
    if n == frame_bytes or n >= 1 << 32 or frame_bytes >= 1 << 32:
        return None
    return LZ4_FILTER, b"".join((_LZ4_FRAMING.pack(frame_bytes, frame_bytes, n), payload))


def raw_chunk(payload: np.ndarray, frame_bytes: int) -> tuple[None, np.ndarray] | None:
    return (None, payload) if payload.size == frame_bytes else None


__all__ = ["LZ4_FILTER", "bslz4_chunk", "filtered", "lz4_block_chunk", "lz4_hdf5_chunk",
           "raw_chunk"]
