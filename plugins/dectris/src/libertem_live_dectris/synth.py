"""Deterministic low-dose 4D-STEM frames with a known ground truth.

Why: simulator tests and benchmarks need data that looks like a real
electron-counting detector (mostly zeros, small Poisson counts inside a
bright-field disk that moves with the scan position) so compression ratios
and decode speeds are realistic, and whose sum over a series is known
exactly, so a receiver can prove that every frame arrived intact.

A series cycles a pool of ``k`` distinct frames: frame ``i`` is pool frame
``i % k``. Generating and encoding a small pool once keeps the simulator
cheap enough to stream 100k small frames per second.
"""
from __future__ import annotations

import numpy as np


def make_frames(
    k: int,
    shape: tuple[int, int],
    dtype: np.dtype | str = np.uint16,
    seed: int = 0,
    disk_frac: float = 0.12,
    lam_disk: float = 4.0,
    lam_bg: float = 0.02,
) -> np.ndarray:
    """``k`` frames of ``shape``: a disk circling the centre plus sparse background.

    Background counts are drawn as a Poisson number of single hits at random
    positions (cheaper than a Poisson draw per pixel at lam_bg=0.02).
    """
    h, w = shape
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    r2 = (disk_frac * min(h, w)) ** 2
    out = np.zeros((k, h, w), dtype=dtype)
    maxval = np.iinfo(dtype).max
    for i in range(k):
        phase = 2 * np.pi * i / max(k, 1)
        cy = h / 2 + 0.05 * h * np.sin(phase)
        cx = w / 2 + 0.05 * w * np.cos(phase)
        disk = ((yy - cy) ** 2 + (xx - cx) ** 2) <= r2
        frame = np.zeros((h, w), dtype=np.int64)
        frame[disk] = rng.poisson(lam_disk, size=int(disk.sum()))
        nbg = rng.poisson(lam_bg * h * w)
        idx = rng.integers(0, h * w, size=nbg)
        np.add.at(frame.reshape(-1), idx, 1)
        out[i] = np.minimum(frame, maxval)
    return out


def default_pool_size(shape: tuple[int, int], nframes: int) -> int:
    """Pool size: up to 256 distinct frames, capped at ~16 Mpixel in total."""
    h, w = shape
    cap = max(8, (16 * 1024 * 1024) // max(1, h * w))
    return max(1, min(256, cap, nframes))


def expected_sum(pool: np.ndarray, nframes: int) -> np.ndarray:
    """float64 sum of frames ``0..nframes-1`` of a series cycling ``pool``."""
    k = pool.shape[0]
    counts = np.bincount(np.arange(nframes) % k, minlength=k).astype(np.float64)
    return np.tensordot(counts, pool.astype(np.float64), axes=(0, 0))
