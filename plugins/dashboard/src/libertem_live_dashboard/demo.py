"""Synthetic 4D-STEM data for the ``memory`` demo: something to see without a
detector.  A bright disc (the direct beam) shifts with the scan position (the
centre of mass has a pattern), its intensity follows a "sample" (bright
field), the scattered intensity outside it the complement (dark field), and
a few hot pixels test the robust colour limits."""
from __future__ import annotations

import numpy as np


def demo_data(nav_shape: tuple[int, int] = (64, 64), sig_shape: tuple[int, int] = (128, 128),
              seed: int = 0) -> np.ndarray:
    ny, nx = nav_shape
    sy, sx = sig_shape
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:ny, 0:nx] / max(ny, nx)
    sample = 0.5 + 0.5 * np.sin(9 * xx) * np.cos(7 * yy)
    shift_y = 3 * np.sin(6 * xx)
    shift_x = 3 * np.cos(5 * yy)
    r = min(sy, sx) / 8
    py, px = np.mgrid[0:sy, 0:sx].astype(np.float32)
    out = np.empty((ny, nx, sy, sx), dtype=np.uint16)
    for iy in range(ny):
        dy = py[None] - ((sy - 1) / 2 + shift_y[iy][:, None, None])
        dx = px[None] - ((sx - 1) / 2 + shift_x[iy][:, None, None])
        rr = np.hypot(dy, dx)
        disc = (rr <= r) * (200 * sample[iy][:, None, None] + 20)
        ring = np.exp(-((rr - 2.5 * r) / (0.6 * r)) ** 2) * (60 * (1 - sample[iy]))[:, None, None]
        frame = disc + ring + 2
        out[iy] = rng.poisson(frame).astype(np.uint16)
    out[..., 5, 7] = 60000
    out[..., sy - 9, sx - 4] = 60000
    return out
