"""Frame sources for the simulator: pre-encoded pools of MQ1 frames.

A :class:`FramePool` holds ``K`` distinct frames as ready-to-send bytes
(MQ1 header + payload) plus, where known, their assembled ground truth.
Acquisition frame ``i`` (0-based) is pool entry ``i % K`` with its sequence
number rewritten to ``i + 1``; only the ~400-byte head is built per frame,
payloads go out as ``memoryview`` slices of prebuilt bytes (no copies).

Sources: :class:`SyntheticSource` (generated frames, any depth / format /
layout, pools cached per configuration) and :class:`MibSource` (a ``.mib``
file: frames back to back, each MQ1 header + payload, served verbatim apart
from the sequence number).

Synthetic frames (:func:`make_frames`): deterministic, diffraction-like
(a bright disk wandering from frame to frame on a weak background, plus hot
pixels at the top of the counter range so that round trips exercise every
bit of each counter depth).
"""
from __future__ import annotations

import mmap
import os
import threading
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..decode import MerlinDecoder
from ..headers import (CHIP, COUNTER_DEPTHS, FrameHeader, build_frame_header, decoded_shape,
                       layout_gap, parse_frame_header, peek_data_offset)
from ..wire import build_prefix
from .encode import encode_frame

SEQ_START = 4  # "MQ1," then the 6-digit sequence number
SEQ_LEN = 6


@dataclass
class FramePool:
    """Pre-encoded frames of one configuration (see module docstring)."""

    header: FrameHeader  # first entry's parsed header
    headers: list[bytes]  # per entry, exactly data_offset bytes
    payloads: list[memoryview]
    truth: Optional[np.ndarray] = None  # (K, H, W) assembled frames, if known

    def __post_init__(self) -> None:
        self.data_offset = self.header.data_offset
        self.payload_size = len(self.payloads[0])
        self.message_size = self.data_offset + self.payload_size
        self.prefix = build_prefix(self.message_size)
        self._heads = [self.prefix + h[:SEQ_START] for h in self.headers]
        self._tails = [h[SEQ_START + SEQ_LEN:] for h in self.headers]
        # All K messages back to back: a batch of consecutive frames is at most
        # two slices of this buffer after patching the sequence digits in place.
        self.wire_size = len(self.prefix) + self.message_size
        wire = bytearray(len(self.payloads) * self.wire_size)
        for k, (h, p) in enumerate(zip(self.headers, self.payloads)):
            pos = k * self.wire_size
            wire[pos:pos + self.wire_size] = self.prefix + h + bytes(p)
        self._wire = wire
        self._wire_mv = memoryview(wire)

    def __len__(self) -> int:
        return len(self.payloads)

    def head(self, index: int, sequence: Optional[int] = None) -> bytes:
        """MPX prefix + MQ1 header of acquisition frame ``index`` (0-based)."""
        k = index % len(self.payloads)
        seq = index + 1 if sequence is None else sequence
        digits = b"%06d" % seq
        tail = self._tails[k]
        if len(digits) > SEQ_LEN:  # > 999999 frames: eat into the header padding
            tail = tail[:len(tail) - (len(digits) - SEQ_LEN)]
        return self._heads[k] + digits + tail

    def batch(self, start: int, end: int) -> list[memoryview]:
        """Wire bytes of acquisition frames ``start..end-1`` (0-based), as slices
        of the pool buffer with sequence numbers patched in place.

        The slices stay valid until the next call, which is all ``sendmsg``
        needs (the kernel copies before returning). Falls back to per-frame
        heads beyond sequence number 999999 (the field then grows).
        """
        k_count = len(self.payloads)
        if end - start > k_count:
            raise ValueError(f"a batch holds at most the pool size ({k_count}) frames")
        if end > 999_999:
            out: list[memoryview] = []
            for j in range(start, end):
                out.append(memoryview(self.head(j)))
                out.append(self.payload(j))
            return out
        ws = self.wire_size
        wire = self._wire
        off = len(self.prefix) + SEQ_START
        for j in range(start, end):
            pos = (j % k_count) * ws + off
            wire[pos:pos + SEQ_LEN] = b"%06d" % (j + 1)
        views: list[memoryview] = []
        j = start
        while j < end:
            k = j % k_count
            n = min(end - j, k_count - k)
            views.append(self._wire_mv[k * ws:(k + n) * ws])
            j += n
        return views

    def payload(self, index: int) -> memoryview:
        return self.payloads[index % len(self.payloads)]

    def frame(self, index: int) -> np.ndarray:
        """Assembled ground truth of acquisition frame ``index``."""
        if self.truth is None:
            raise ValueError("this pool has no ground truth")
        return self.truth[index % len(self.truth)]

    def expected_sum(self, n_frames: int) -> np.ndarray:
        """float64 sum of the first ``n_frames`` assembled frames of an acquisition."""
        if self.truth is None:
            raise ValueError("this pool has no ground truth")
        k = len(self.truth)
        counts = np.bincount(np.arange(n_frames) % k, minlength=k).astype(np.float64)
        return np.tensordot(counts, self.truth.astype(np.float64), axes=(0, 0))


@dataclass(frozen=True)
class PoolKey:
    counter_depth: int
    raw: bool
    layout: str


class SyntheticSource:
    """Generates and caches pools of synthetic frames per configuration."""

    def __init__(self, pool_size: int = 32, seed: int = 0, lam_disk: float = 10.0,
                 lam_bg: float = 0.1):
        self.pool_size = pool_size
        self.seed = seed
        self.lam_disk = lam_disk
        self.lam_bg = lam_bg
        self._pools: dict[PoolKey, FramePool] = {}
        self._lock = threading.Lock()

    def pool(self, counter_depth: int, raw: bool, layout: str) -> FramePool:
        key = PoolKey(counter_depth, raw, layout)
        with self._lock:
            if key not in self._pools:
                self._pools[key] = self._build(key)
            return self._pools[key]

    def _build(self, key: PoolKey) -> FramePool:
        truth = make_frames(self.pool_size, decoded_shape(key.layout), key.counter_depth,
                            seed=self.seed, lam_disk=self.lam_disk, lam_bg=self.lam_bg,
                            layout=key.layout)
        headers: list[bytes] = []
        payloads: list[memoryview] = []
        for i, f in enumerate(truth):
            payload, fmt = encode_frame(f, key.counter_depth, key.layout, key.raw)
            headers.append(build_frame_header(
                i + 1, layout=key.layout, pixel_format=fmt,
                counter_depth=key.counter_depth))
            payloads.append(memoryview(payload))
        return FramePool(parse_frame_header(headers[0]), headers, payloads, truth)


class MibSource:
    """Serves the frames of a ``.mib`` file (memory-mapped, read-only).

    The pixel format, counter depth and layout come from the file's first
    header. Ground truth is computed on demand by decoding the file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                raise ValueError(f"{self.path} is empty")
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        buf = memoryview(self._mm)
        offset = peek_data_offset(buf[:32])
        first = parse_frame_header(buf[:offset])
        frame_size = offset + first.payload_size
        if size % frame_size:
            raise ValueError(
                f"{self.path}: {size} bytes is not a multiple of the frame size "
                f"{frame_size} ({offset}-byte header + {first.payload_size} payload)")
        n = size // frame_size
        headers = [bytes(buf[i * frame_size:i * frame_size + offset]) for i in range(n)]
        payloads = [buf[i * frame_size + offset:(i + 1) * frame_size] for i in range(n)]
        self._pool = FramePool(first, headers, payloads, None)
        self.header = first
        self.num_frames = n

    def pool(self, counter_depth: int | None = None, raw: bool | None = None,
             layout: str | None = None) -> FramePool:
        return self._pool

    def ensure_truth(self) -> np.ndarray:
        """Decode the whole file once (float32, exact up to 24 bit) as ground truth."""
        if self._pool.truth is None:
            dec = MerlinDecoder.from_frame_header(self.header)
            arr = np.frombuffer(self._mm, dtype=np.uint8)
            fs = self._pool.message_size
            offs = np.arange(self.num_frames, dtype=np.int64) * fs + self.header.data_offset
            out = np.empty((self.num_frames,) + dec.sig_shape, dtype=np.float32)
            dec.decode(arr, offs, np.full(self.num_frames, dec.payload_size, np.int64),
                       None, out)
            self._pool.truth = out
        return self._pool.truth


def write_mib(path: str | os.PathLike, frames: np.ndarray, counter_depth: int,
              layout: str = "1x1", raw: bool = False,
              pad: bytes = b"\x00") -> None:
    """Write assembled frames as a ``.mib`` file (NUL-padded headers, as on disk)."""
    with open(path, "wb") as f:
        for i, fr in enumerate(frames):
            payload, fmt = encode_frame(fr, counter_depth, layout, raw)
            f.write(build_frame_header(i + 1, layout=layout, pixel_format=fmt,
                                       counter_depth=counter_depth, pad=pad))
            f.write(payload)


def pool_from_frames(frames: Sequence[np.ndarray] | np.ndarray, counter_depth: int,
                     layout: str = "1x1", raw: bool = False) -> FramePool:
    """A pool from caller-supplied assembled frames (tests, custom data)."""
    frames = np.asarray(frames)
    headers, payloads = [], []
    for i, fr in enumerate(frames):
        payload, fmt = encode_frame(fr, counter_depth, layout, raw)
        headers.append(build_frame_header(i + 1, layout=layout, pixel_format=fmt,
                                          counter_depth=counter_depth))
        payloads.append(memoryview(payload))
    return FramePool(parse_frame_header(headers[0]), headers, payloads,
                     frames.astype(np.uint32))

def make_frames(count: int, shape: tuple[int, int], counter_depth: int, *,
                seed: int = 0, lam_disk: float = 10.0, lam_bg: float = 0.1,
                layout: str = "1x1", hot_pixels: bool = True) -> np.ndarray:
    """``count`` distinct frames, uint32 array of shape (count, H, W)."""
    if counter_depth not in COUNTER_DEPTHS:
        raise ValueError(f"counter depth must be one of {COUNTER_DEPTHS}")
    h, w = shape
    rng = np.random.default_rng(seed)
    maxval = (1 << counter_depth) - 1
    yy, xx = np.mgrid[0:h, 0:w]
    radius = max(2.0, min(h, w) / 8)
    frames = np.empty((count, h, w), dtype=np.uint32)
    for i in range(count):
        phase = 2 * np.pi * i / max(count, 1)
        cy = h / 2 + radius / 2 * np.sin(phase)
        cx = w / 2 + radius / 2 * np.cos(phase)
        disk = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        lam = np.where(disk, lam_disk, lam_bg)
        f = np.minimum(rng.poisson(lam), maxval).astype(np.uint32)
        if hot_pixels:
            for j, v in enumerate((maxval, maxval // 2 + 1, maxval // 3)):
                f[(7 * i + 31 * j) % h, (13 * i + 17 * j) % w] = v
        frames[i] = f
    g = layout_gap(layout)
    if g and h > CHIP and w > CHIP:
        frames[:, CHIP:CHIP + g, :] = 0
        frames[:, :, CHIP:CHIP + g] = 0
    return frames
