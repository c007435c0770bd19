"""The one UDF the dashboard needs: every view from one pass over each frame.

Sum frame, virtual bright field (a disc), annular dark field (a ring),
centre of mass relative to the bright-field centre, and a binned thumbnail
of every frame (the frame under the pointer, available for any scanned
position at once).  The detector regions are parameters, so a browser can
move them mid-run (``update_parameters_experimental``); they apply from the
next partition on.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from libertem.common.buffers import BufferWrapper
from libertem.udf.base import UDF

#: Thumbnails of all frames together stay under this many values (float32),
#: so that a big scan's "frame under the pointer" costs at most 64 MiB.
THUMB_BUDGET = 16 << 20
THUMB_MAX_SIDE = 64


def thumb_bin(sig_shape: tuple[int, int], nimages: int) -> int:
    """The power-of-two binning of frames for thumbnails within the budget."""
    b = 1
    while True:
        ty, tx = sig_shape[0] // b, sig_shape[1] // b
        if (ty <= THUMB_MAX_SIDE and tx <= THUMB_MAX_SIDE
                and ty * tx * max(nimages, 1) <= THUMB_BUDGET) or ty <= 1 or tx <= 1:
            return b
        b *= 2


def default_regions(sig_shape: tuple[int, int]) -> dict[str, list[float]]:
    """Bright field: a disc of an eighth of the frame at its centre; dark field:
    the ring from there to nearly the edge."""
    sy, sx = sig_shape
    cy, cx = (sy - 1) / 2, (sx - 1) / 2
    r = min(sy, sx) / 8
    return {"bf": [cy, cx, r], "adf": [cy, cx, 1.5 * r, min(sy, sx) / 2 - 1]}


@lru_cache(maxsize=8)
def _weights(sig_shape: tuple[int, int], bf: tuple[float, ...],
             adf: tuple[float, ...]) -> np.ndarray:
    """(pixels, 5) matrix: bright field, dark field, ones, y and x coordinates;
    one matrix product per tile then gives all nav values."""
    sy, sx = sig_shape
    y, x = np.mgrid[0:sy, 0:sx].astype(np.float32)
    cy, cx, r = bf
    acy, acx, ri, ro = adf
    rb = np.hypot(y - cy, x - cx)
    ra = np.hypot(y - acy, x - acx)
    w = np.stack([
        (rb <= r), (ra >= ri) & (ra <= ro), np.ones_like(y, dtype=bool),
        np.zeros_like(y, dtype=bool), np.zeros_like(y, dtype=bool),
    ], axis=-1).astype(np.float32)
    w[..., 3] = y
    w[..., 4] = x
    return w.reshape(sy * sx, 5)


class DashboardUDF(UDF):
    """Views for the dashboard; ``bf=(cy, cx, r)``, ``adf=(cy, cx, r_inner, r_outer)``
    in pixels of the frame, ``thumb`` the binning of the stored thumbnails."""

    def __init__(self, bf: tuple[float, float, float], adf: tuple[float, float, float, float],
                 thumb: int = 1):
        super().__init__(bf=tuple(float(v) for v in bf), adf=tuple(float(v) for v in adf),
                         thumb=int(thumb))

    @classmethod
    def for_shape(cls, sig_shape: tuple[int, ...], nimages: int,
                  regions: dict[str, Any] | None = None) -> DashboardUDF:
        sig = (int(sig_shape[-2]), int(sig_shape[-1]))
        reg = default_regions(sig) if regions is None else regions
        return cls(bf=reg["bf"], adf=reg["adf"], thumb=thumb_bin(sig, nimages))

    def get_result_buffers(self) -> dict[str, BufferWrapper]:
        sy, sx = self.meta.dataset_shape.sig[-2:]
        b = self.params.thumb
        return {
            "sum": self.buffer(kind="sig", dtype="float32"),
            "bf": self.buffer(kind="nav", dtype="float32"),
            "adf": self.buffer(kind="nav", dtype="float32"),
            "com_y": self.buffer(kind="nav", dtype="float32"),
            "com_x": self.buffer(kind="nav", dtype="float32"),
            "thumb": self.buffer(kind="nav", dtype="float32",
                                 extra_shape=(max(sy // b, 1), max(sx // b, 1))),
        }

    def process_tile(self, tile: np.ndarray) -> None:
        n = tile.shape[0]
        sig = tuple(tile.shape[-2:])
        self.results.sum[:] += tile.sum(axis=0)
        w = _weights(sig, tuple(self.params.bf), tuple(self.params.adf))
        r = tile.reshape(n, -1) @ w
        total = r[:, 2]
        safe = np.where(total > 0, total, 1)
        self.results.bf[:] = r[:, 0]
        self.results.adf[:] = r[:, 1]
        cy, cx = self.params.bf[0], self.params.bf[1]
        self.results.com_y[:] = np.where(total > 0, r[:, 3] / safe - cy, 0)
        self.results.com_x[:] = np.where(total > 0, r[:, 4] / safe - cx, 0)
        b = self.params.thumb
        ty, tx = self.results.thumb.shape[-2:]
        crop = tile[:, :ty * b, :tx * b]
        self.results.thumb[:] = crop.reshape(n, ty, b, tx, b).sum(axis=(2, 4))

    def merge(self, dest: Any, src: Any) -> None:
        dest.sum[:] += src.sum
        for name in ("bf", "adf", "com_y", "com_x", "thumb"):
            getattr(dest, name)[:] = getattr(src, name)


def com_polar(com_y: np.ndarray, com_x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude and direction (radians, -pi..pi) of the centre-of-mass shift."""
    return np.hypot(com_y, com_x), np.arctan2(com_y, com_x)


__all__ = ["DashboardUDF", "com_polar", "default_regions", "thumb_bin"]
