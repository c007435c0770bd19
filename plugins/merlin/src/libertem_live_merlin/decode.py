"""Decode Merlin frame payloads into numeric arrays (the receive hot path).

Runs inside worker processes, batch by batch: :class:`MerlinDecoder` is a
small picklable description of the stream's pixel encoding, and
:meth:`MerlinDecoder.decode` makes **one numba call per batch** that writes
straight into the caller's ``out`` array (any numeric dtype), so there is no
per-frame allocation or Python overhead.

Span convention: frame ``i`` of a batch is ``data[offsets[i]:offsets[i]+sizes[i]]``
and that span is the **pixel payload only** — the receiver strips the MPX
prefix and the MQ1 header (whose length it knows from the first frame). A
decoder built with ``spans_include_header=True`` instead expects spans that
start at the MQ1 header and skips ``data_offset`` bytes itself. ``aux`` is
accepted for the core's interface and ignored (all the information needed is
fixed per acquisition).

Encodings:

* sorted ``U08``/``U16``/``U32``/``U64`` (and ``U01`` as one byte per pixel):
  big-endian, row-major, already assembled (gaps included for ``G`` layouts);
  any layout, the image shape is the header's height x width;
* raw ``R64``: each 8-byte chunk read as a big-endian uint64 ``v`` holds
  pixels ``j`` at bits ``[b*j, b*j+b)`` with ``b`` = 1, 8 (6-bit values) or 16
  (12-bit values) — the byte/word reversal rules of the spec in one sentence;
* raw 24 bit, **our framing** (the live framing is unverified upstream): one
  MPX message per frame whose payload is two complete 12-bit raw images back
  to back, first the high 12 bits, then the low 12 bits:
  ``value = (first << 12) + second``; the MQ1 header width is doubled, as the
  LiberTEM MIB reader expects. This also reads MIB files written that way;
* quad (``2x2``, ``2x2G``) raw: 256 row groups of four chip rows in order
  Q4, Q3, Q2, Q1; Q1/Q2 fill rows ``k`` of the top half, Q3/Q4 row ``H-1-k``
  with x reversed (180° rotation); ``2x2G`` gap rows/columns 256-257 are
  written as zero on every frame, so ``out`` may be reused dirty.

Out-of-range values for a narrow ``out`` dtype wrap or truncate like numpy
casts do; pick a dtype that holds the counter depth (float32 is exact up to
24 bit).
"""
from __future__ import annotations

from typing import Any, Optional

import numba
import numpy as np

from .errors import DecodeError
from .headers import (CHIP, FrameHeader, decoded_shape, layout_gap, num_chips_for,
                      raw_payload_size)

_SORTED_BPP = {"U01": 1, "U08": 1, "U16": 2, "U32": 4, "U64": 8}


# ---------------------------------------------------------------------------
# numba kernels
# ---------------------------------------------------------------------------

@numba.njit(inline="always")
def _bs16(v):  # pragma: no cover - numba
    return np.uint16((v >> np.uint16(8)) | (v << np.uint16(8)))


@numba.njit(inline="always")
def _bs32(v):  # pragma: no cover - numba
    return np.uint32(((v >> np.uint32(24)) & np.uint32(0xFF))
                     | ((v >> np.uint32(8)) & np.uint32(0xFF00))
                     | ((v << np.uint32(8)) & np.uint32(0xFF0000))
                     | (v << np.uint32(24)))


@numba.njit(inline="always")
def _bs64(v):  # pragma: no cover - numba
    """Byte-swap a uint64 (three mask-and-shift steps; LLVM emits bswap/pshufb)."""
    v = (((v & np.uint64(0x00FF00FF00FF00FF)) << np.uint64(8))
         | ((v >> np.uint64(8)) & np.uint64(0x00FF00FF00FF00FF)))
    v = (((v & np.uint64(0x0000FFFF0000FFFF)) << np.uint64(16))
         | ((v >> np.uint64(16)) & np.uint64(0x0000FFFF0000FFFF)))
    return (v << np.uint64(32)) | (v >> np.uint64(32))


# Sorted kernels reinterpret each frame's bytes as native words and swap
# bytes: this vectorises (SIMD shuffles), where per-byte assembly did not.

@numba.njit(cache=True, nogil=True)
def _sorted_u8(data, offsets, skip, out):  # pragma: no cover - numba
    n, npix = out.shape
    for i in range(n):
        p = offsets[i] + skip
        fr = data[p:p + npix]
        o = out[i]
        for x in range(npix):
            o[x] = fr[x]


@numba.njit(cache=True, nogil=True)
def _sorted_u16(data, offsets, skip, out):  # pragma: no cover - numba
    n, npix = out.shape
    for i in range(n):
        p = offsets[i] + skip
        fr = data[p:p + 2 * npix].view(np.uint16)
        o = out[i]
        for x in range(npix):
            o[x] = _bs16(fr[x])


@numba.njit(cache=True, nogil=True)
def _sorted_u32(data, offsets, skip, out):  # pragma: no cover - numba
    n, npix = out.shape
    for i in range(n):
        p = offsets[i] + skip
        fr = data[p:p + 4 * npix].view(np.uint32)
        o = out[i]
        for x in range(npix):
            o[x] = _bs32(fr[x])


@numba.njit(cache=True, nogil=True)
def _sorted_u64(data, offsets, skip, out):  # pragma: no cover - numba
    n, npix = out.shape
    for i in range(n):
        p = offsets[i] + skip
        fr = data[p:p + 8 * npix].view(np.uint64)
        o = out[i]
        for x in range(npix):
            o[x] = _bs64(fr[x])


# Raw chip rows. Each decodes the 256 pixels of one chip row starting at
# uint64 word ``p`` of the frame view ``w`` into ``row[x0:x0+256]`` (x reversed
# when ``flip``). ``second`` > 0 (24 bit) is the word distance to the
# low-12-bit image. All follow from "read each 8-byte chunk as a big-endian
# uint64 V; pixel j sits at bits [b*j, b*j+b)": V = bswap64(native word). For
# 6 bit no swap is needed: pixel j is byte 7-j, i.e. bits 56-8j of the native
# (little-endian) word. Whole-word loads and shifts vectorise; per-byte and
# per-uint16 gathers did not (1.5-2x slower, measured).

@numba.njit(inline="always")
def _row12(w, p, second, row, x0, flip):  # pragma: no cover - numba
    m16 = np.uint64(0xFFFF)
    if flip:
        for c2 in range(64):
            v = _bs64(w[p + 63 - c2])
            for m in range(4):
                row[x0 + 4 * c2 + m] = (v >> np.uint64(48 - 16 * m)) & m16
    else:
        for c in range(64):
            v = _bs64(w[p + c])
            for j in range(4):
                row[x0 + 4 * c + j] = (v >> np.uint64(16 * j)) & m16


@numba.njit(inline="always")
def _row24(w, p, second, row, x0, flip):  # pragma: no cover - numba
    """Like _row12 on the high image at ``p`` and the low one at ``p + second``."""
    m16 = np.uint64(0xFFFF)
    if flip:
        for c2 in range(64):
            hi = _bs64(w[p + 63 - c2])
            lo = _bs64(w[p + 63 - c2 + second])
            for m in range(4):
                s = np.uint64(48 - 16 * m)
                row[x0 + 4 * c2 + m] = (((hi >> s) & m16) << np.uint64(12)) + ((lo >> s) & m16)
    else:
        for c in range(64):
            hi = _bs64(w[p + c])
            lo = _bs64(w[p + c + second])
            for j in range(4):
                s = np.uint64(16 * j)
                row[x0 + 4 * c + j] = (((hi >> s) & m16) << np.uint64(12)) + ((lo >> s) & m16)


@numba.njit(inline="always")
def _row6(w, p, second, row, x0, flip):  # pragma: no cover - numba
    m8 = np.uint64(0xFF)
    if flip:
        for c2 in range(32):
            v = w[p + 31 - c2]
            for m in range(8):
                row[x0 + 8 * c2 + m] = (v >> np.uint64(8 * m)) & m8
    else:
        for c in range(32):
            v = w[p + c]
            for j in range(8):
                row[x0 + 8 * c + j] = (v >> np.uint64(56 - 8 * j)) & m8


@numba.njit(inline="always")
def _row1(w, p, second, row, x0, flip):  # pragma: no cover - numba
    one = np.uint64(1)
    for c in range(4):
        v = _bs64(w[p + c])
        if flip:
            for j in range(64):
                row[x0 + 255 - 64 * c - j] = (v >> np.uint64(j)) & one
        else:
            for j in range(64):
                row[x0 + 64 * c + j] = (v >> np.uint64(j)) & one


def _make_assemble(row_fn):  # noqa: ANN001 - a numba dispatcher
    """Frame assembler for one row decoder (one per bit width).

    Generated rather than dispatching on ``bits`` inside one function: numba
    inlines at IR level, so a dispatching helper would paste all three row
    decoders into every call site and triple compile time. (Passing the row
    function as an argument instead compiled to an indirect call per chip row
    and made quad decoding ~6x slower.) Not cached itself; the kernels that
    inline it are.
    """
    @numba.njit(inline="always")
    def assemble(w, o, nchips, gap, sw, wpr):  # pragma: no cover - numba
        H, W = o.shape
        if gap > 0:  # G layouts: gap pixels are not transmitted; keep them zero
            for y in range(CHIP, CHIP + gap):
                for x in range(W):
                    o[y, x] = 0
            for y in range(H):
                for x in range(CHIP, CHIP + gap):
                    o[y, x] = 0
        if nchips == 1:
            for k in range(CHIP):
                row_fn(w, k * wpr, sw, o[k, :CHIP], 0, False)
        else:
            right = CHIP + gap
            for k in range(CHIP):
                p = k * 4 * wpr
                bottom = o[H - 1 - k]
                top = o[k]
                # Per-chip row slices with x0 = 0: with a run-time x0 numba
                # cannot prove indices non-negative, emits wraparound checks,
                # and the loops stop vectorising (measured 3-4x slower).
                row_fn(w, p, sw, bottom[right:right + CHIP], 0, True)  # Q4, rotated
                row_fn(w, p + wpr, sw, bottom[:CHIP], 0, True)  # Q3, rotated
                row_fn(w, p + 2 * wpr, sw, top[right:right + CHIP], 0, False)  # Q2
                row_fn(w, p + 3 * wpr, sw, top[:CHIP], 0, False)  # Q1
    return assemble


_assemble1 = _make_assemble(_row1)
_assemble6 = _make_assemble(_row6)
_assemble12 = _make_assemble(_row12)
_assemble24 = _make_assemble(_row24)


# One kernel per bit width (explicit, not generated: numba's on-disk cache
# keys functions by name and line, which generated closures would share).
# Frames are viewed as uint64 words: wpr = words per chip row.

@numba.njit(cache=True, nogil=True)
def _raw1(data, offsets, skip, out, nchips, gap, second):  # pragma: no cover
    nbytes = CHIP * 32 * nchips
    for i in range(out.shape[0]):
        base = offsets[i] + skip
        w = data[base:base + nbytes].view(np.uint64)
        _assemble1(w, out[i], nchips, gap, 0, 4)


@numba.njit(cache=True, nogil=True)
def _raw6(data, offsets, skip, out, nchips, gap, second):  # pragma: no cover
    nbytes = CHIP * 256 * nchips
    for i in range(out.shape[0]):
        base = offsets[i] + skip
        w = data[base:base + nbytes].view(np.uint64)
        _assemble6(w, out[i], nchips, gap, 0, 32)


@numba.njit(cache=True, nogil=True)
def _raw12(data, offsets, skip, out, nchips, gap, second):  # pragma: no cover
    nbytes = CHIP * 512 * nchips
    for i in range(out.shape[0]):
        base = offsets[i] + skip
        w = data[base:base + nbytes].view(np.uint64)
        _assemble12(w, out[i], nchips, gap, 0, 64)


@numba.njit(cache=True, nogil=True)
def _raw24(data, offsets, skip, out, nchips, gap, second):  # pragma: no cover
    """Two 12-bit images; ``second`` = bytes from the high to the low image."""
    nbytes = CHIP * 1024 * nchips
    for i in range(out.shape[0]):
        base = offsets[i] + skip
        w = data[base:base + nbytes].view(np.uint64)
        _assemble24(w, out[i], nchips, gap, second // 8, 64)


_SORTED_KERNELS = {1: _sorted_u8, 2: _sorted_u16, 4: _sorted_u32, 8: _sorted_u64}
_RAW_KERNELS = {1: _raw1, 6: _raw6, 12: _raw12, 24: _raw24}


# ---------------------------------------------------------------------------
# batch decoder
# ---------------------------------------------------------------------------

class MerlinDecoder:
    """Decodes batches of frames of one acquisition (picklable, stateless).

    Parameters come from the first frame's MQ1 header (see
    :meth:`from_frame_header`): ``pixel_format`` (``U08``... or ``R64``),
    ``counter_depth`` (required for R64), ``layout`` (``1x1``/``2x2``/``2x2G``;
    raw supports only these), ``sig_shape`` (decoded (H, W)), ``data_offset``
    (MQ1 header length, only used with ``spans_include_header``).
    """

    def __init__(self, pixel_format: str, counter_depth: Optional[int], layout: str,
                 sig_shape: tuple[int, int], data_offset: int = 384,
                 spans_include_header: bool = False):
        self.pixel_format = pixel_format
        self.counter_depth = counter_depth
        self.layout = layout
        self.sig_shape = (int(sig_shape[0]), int(sig_shape[1]))
        self.data_offset = int(data_offset)
        self.spans_include_header = bool(spans_include_header)
        if pixel_format == "R64":
            if counter_depth not in _RAW_KERNELS:
                raise DecodeError(
                    f"raw (R64) decoding needs counter depth 1, 6, 12 or 24, got "
                    f"{counter_depth!r} (is the MQ1A header extension missing?)")
            try:
                self.num_chips = num_chips_for(layout)
                expected_shape = decoded_shape(layout)
            except ValueError:
                raise DecodeError(
                    f"raw (R64) decoding supports layouts 1x1, 2x2 and 2x2G, "
                    f"got {layout!r}") from None
            if self.sig_shape != expected_shape:
                raise DecodeError(
                    f"raw layout {layout} decodes to {expected_shape}, but sig_shape "
                    f"is {self.sig_shape}")
            self.gap = layout_gap(layout)
            self.payload_size = raw_payload_size(counter_depth, self.num_chips)
            self.second = self.payload_size // 2 if counter_depth == 24 else 0
        elif pixel_format in _SORTED_BPP:
            self.num_chips = 0
            self.gap = 0
            self.second = 0
            self.payload_size = (self.sig_shape[0] * self.sig_shape[1]
                                 * _SORTED_BPP[pixel_format])
        else:
            raise DecodeError(f"unsupported pixel format {pixel_format!r}")
        self.frame_size = self.payload_size + (
            self.data_offset if self.spans_include_header else 0)

    @classmethod
    def from_frame_header(cls, header: FrameHeader,
                          spans_include_header: bool = False) -> "MerlinDecoder":
        return cls(header.pixel_format, header.counter_depth, header.layout,
                   header.sig_shape, header.data_offset, spans_include_header)

    def __repr__(self) -> str:
        return (f"MerlinDecoder({self.pixel_format!r}, {self.counter_depth!r}, "
                f"{self.layout!r}, {self.sig_shape!r}, data_offset={self.data_offset}, "
                f"spans_include_header={self.spans_include_header})")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MerlinDecoder) and vars(self) == vars(other)

    @property
    def warmup_key(self) -> tuple:
        """Decoders that run the same numba kernel share one warm-up."""
        if self.pixel_format == "R64":
            return ("merlin", "R64", self.counter_depth)
        return ("merlin", _SORTED_BPP[self.pixel_format])

    def warmup(self, dtype: Any = "float32") -> None:
        """Compile (or load from the numba cache) this decoder's kernel for
        ``dtype`` by decoding one zero frame: a compile stall on the first real
        frame would back up the stream for seconds."""
        data = np.zeros(self.frame_size, dtype=np.uint8)
        out = np.empty((1,) + self.sig_shape, dtype=np.dtype(dtype))
        self.decode(data, np.zeros(1, np.int64), np.array([self.frame_size], np.int64),
                    None, out)

    def decode(self, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
               aux: Any, out: np.ndarray) -> None:
        """Decode ``len(offsets)`` frames from ``data`` into ``out[:n]``.

        ``out`` must be C-contiguous with shape (n, H, W) (extra leading
        capacity is allowed: only the first n entries are written).
        """
        offsets = np.asarray(offsets)
        sizes = np.asarray(sizes)
        n = offsets.shape[0]
        if sizes.shape[0] != n:
            raise DecodeError(f"{n} offsets but {sizes.shape[0]} sizes")
        if n == 0:
            return
        if out.ndim != 3 or out.shape[1:] != self.sig_shape or out.shape[0] < n:
            raise DecodeError(
                f"out has shape {out.shape}, need ({n}, {self.sig_shape[0]}, "
                f"{self.sig_shape[1]}) for a batch of {n} frames")
        if not out.flags.c_contiguous:
            raise DecodeError("out must be C-contiguous")
        bad = np.flatnonzero(sizes != self.frame_size)
        if bad.size:
            i = int(bad[0])
            raise DecodeError(
                f"frame {i} of the batch ({n} frames) has {int(sizes[i])} bytes, "
                f"expected {self.frame_size} for {self.pixel_format} "
                f"{self.counter_depth}-bit {self.layout}"
                + (" including the MQ1 header" if self.spans_include_header else "")
                + f" ({bad.size} frame(s) wrong)")
        if offsets.min() < 0 or int(offsets.max()) + self.frame_size > data.shape[0]:
            raise DecodeError(
                f"batch spans reach outside the data buffer of {data.shape[0]} bytes "
                f"(offsets {int(offsets.min())}..{int(offsets.max())}, "
                f"frame size {self.frame_size})")
        if data.dtype != np.uint8 or data.ndim != 1:
            raise DecodeError(f"data must be a 1-D uint8 array, got {data.dtype} "
                              f"{data.ndim}-D")
        if offsets.dtype != np.int64:
            offsets = offsets.astype(np.int64)
        skip = self.data_offset if self.spans_include_header else 0
        dst = out[:n] if out.shape[0] != n else out
        if self.pixel_format == "R64":
            _RAW_KERNELS[self.counter_depth](data, offsets, skip, dst, self.num_chips,
                                             self.gap, self.second)
        else:
            flat = dst.reshape(n, self.sig_shape[0] * self.sig_shape[1])
            _SORTED_KERNELS[_SORTED_BPP[self.pixel_format]](data, offsets, skip, flat)

    def decode_one(self, payload: bytes | bytearray | memoryview | np.ndarray,
                   out: Optional[np.ndarray] = None, dtype: Any = np.float32) -> np.ndarray:
        """Convenience for tests and tools: decode a single frame's bytes."""
        arr = np.frombuffer(payload, dtype=np.uint8) if not isinstance(
            payload, np.ndarray) else payload
        if out is None:
            out = np.empty((1,) + self.sig_shape, dtype=dtype)
        elif out.ndim == 2:
            out = out.reshape((1,) + out.shape)
        self.decode(arr, np.zeros(1, np.int64), np.array([arr.shape[0]], np.int64),
                    None, out)
        return out[0]
