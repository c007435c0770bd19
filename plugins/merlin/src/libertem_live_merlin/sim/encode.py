"""Encoders: assembled image -> Merlin pixel payload (inverse of ``decode.py``).

Used by the simulator to pre-encode a pool of frames and by tests for round
trips, so they favour obviously-correct vectorised numpy over speed (a
256x256 frame encodes in about a millisecond).

The raw rules, inverted: a chip row of 256 values becomes 8-byte chunks that,
read as a big-endian uint64, hold pixel ``j`` at bits ``[b*j, b*j+b)``
(b = 1, 8, 16 for 1, 6, 12 bit). Quad raw payloads interleave the chip rows
Q4, Q3, Q2, Q1 per row group; the bottom chips are stored rotated by 180°.
24 bit raw is two 12-bit raw images (high bits first), see ``decode.py``.
"""
from __future__ import annotations

import numpy as np

from ..headers import CHIP, COUNTER_DEPTHS, decoded_shape, layout_gap, sorted_format_for

_SORTED_DTYPES = {"U01": ">u1", "U08": ">u1", "U16": ">u2", "U32": ">u4", "U64": ">u8"}


def check_range(frame: np.ndarray, counter_depth: int) -> None:
    """Refuse values that the counter depth cannot hold (they would wrap silently)."""
    if counter_depth not in COUNTER_DEPTHS:
        raise ValueError(f"counter depth must be one of {COUNTER_DEPTHS}, got {counter_depth}")
    if frame.size and (frame.min() < 0 or int(frame.max()) >= (1 << counter_depth)):
        raise ValueError(
            f"frame values {frame.min()}..{frame.max()} do not fit in {counter_depth} bit")


def encode_sorted(frame: np.ndarray, pixel_format: str) -> bytes:
    """Big-endian row-major bytes of an assembled image (``U08``/``U16``/``U32``/``U64``)."""
    try:
        dt = _SORTED_DTYPES[pixel_format]
    except KeyError:
        raise ValueError(f"not a sorted pixel format: {pixel_format!r}") from None
    return np.ascontiguousarray(frame).astype(dt).tobytes()


def encode_chip_rows(rows: np.ndarray, bits: int) -> np.ndarray:
    """Encode chip rows of shape (R, 256) to raw bytes of shape (R, bytes_per_row)."""
    r = rows.shape[0]
    if bits == 12:
        return rows.reshape(r, 64, 4)[:, :, ::-1].astype(">u2").view(np.uint8).reshape(r, 512)
    if bits == 6:
        return np.ascontiguousarray(rows.reshape(r, 32, 8)[:, :, ::-1]).astype(
            np.uint8).reshape(r, 256)
    if bits == 1:
        bits_arr = (rows.reshape(r * 4, 64) & 1).astype(np.uint8)
        le = np.packbits(bits_arr, axis=1, bitorder="little")  # pixel j -> bit j, LE u64
        return np.ascontiguousarray(le[:, ::-1]).reshape(r, 32)  # -> big-endian u64
    raise ValueError(f"raw chip rows exist for 1, 6 and 12 bit, not {bits}")


def _chip_rows_in_wire_order(frame: np.ndarray, layout: str) -> np.ndarray:
    """(256 * chips, 256) chip rows in transmission order."""
    if layout == "1x1":
        return frame
    g = layout_gap(layout)
    top, bottom = frame[:CHIP], frame[CHIP + g:]
    q1, q2 = top[:, :CHIP], top[:, CHIP + g:]
    q3, q4 = bottom[::-1, :CHIP][:, ::-1], bottom[::-1, CHIP + g:][:, ::-1]
    return np.stack([q4, q3, q2, q1], axis=1).reshape(4 * CHIP, CHIP)


def encode_raw(frame: np.ndarray, counter_depth: int, layout: str = "1x1") -> bytes:
    """R64 payload of an assembled image (gap pixels of ``G`` layouts are dropped)."""
    expected = decoded_shape(layout)
    if frame.shape != expected:
        raise ValueError(f"layout {layout} needs a {expected} image, got {frame.shape}")
    check_range(frame, counter_depth)
    rows = _chip_rows_in_wire_order(np.asarray(frame), layout)
    if counter_depth == 24:
        hi = encode_chip_rows(rows >> 12, 12)
        lo = encode_chip_rows(rows & 0xFFF, 12)
        return hi.tobytes() + lo.tobytes()
    return encode_chip_rows(rows, counter_depth).tobytes()


def encode_frame(frame: np.ndarray, counter_depth: int, layout: str = "1x1",
                 raw: bool = False) -> tuple[bytes, str]:
    """Payload and pixel format for FILEFORMAT 2 (``raw``) or 0 (sorted)."""
    if raw:
        return encode_raw(frame, counter_depth, layout), "R64"
    check_range(frame, counter_depth)
    fmt = sorted_format_for(counter_depth)
    return encode_sorted(frame, fmt), fmt
