"""Deterministic synthetic diffraction-like frames with a known ground truth.

Low-dose 4D-STEM look: a bright disk (Poisson, mean ``lam_disk``) whose
centre wanders from frame to frame on a background (Poisson, ``lam_bg``),
plus a few "hot" pixels at the top of the counter range so that the high
bits of every counter depth are exercised by round trips. Values are clipped
to the counter depth; gap pixels of ``G`` layouts are zero (they are never
transmitted in raw mode).
"""
from __future__ import annotations

import numpy as np

from .headers import CHIP, COUNTER_DEPTHS, layout_gap


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
