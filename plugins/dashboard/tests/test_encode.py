"""Quantisation with robust limits, changed rectangles, the binary message."""
from __future__ import annotations

import numpy as np

from libertem_live_dashboard.encode import Plane, changed_rect, pack, quantise, unpack


def test_hot_pixels_do_not_wash_out_the_image() -> None:
    a = np.tile(np.linspace(0, 100, 64, dtype=np.float32), (64, 1))
    a[3, 3] = a[10, 50] = 1e9
    q, lo, hi = quantise(a, None)
    assert hi < 1000, "the limits come from percentiles, not the maximum"
    assert q[:, 32].min() > 100 and q[:, 32].max() < 160, "mid-range stays mid-range"
    assert q[3, 3] == 255


def test_unscanned_positions_are_zero_and_excluded_from_limits() -> None:
    a = np.full((8, 8), 50.0, dtype=np.float32)
    a[4:] = 0
    valid = np.zeros((8, 8), dtype=bool)
    valid[:4] = True
    q, lo, hi = quantise(a, valid)
    assert (q[4:] == 0).all() and (q[:4] > 0).all()
    assert lo == 50.0


def test_changed_rect() -> None:
    prev = np.zeros((32, 32), np.uint8)
    cur = prev.copy()
    assert changed_rect(prev, cur) is None
    cur[5:7, 3:9] = 9
    assert changed_rect(prev, cur) == (5, 3, 2, 6)
    assert changed_rect(None, cur) == (0, 0, 32, 32)
    cur[:] = 1
    assert changed_rect(prev, cur) == (0, 0, 32, 32), "a big change is sent whole"


def test_pack_unpack_roundtrip() -> None:
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    msg = pack({"type": "update", "version": 3},
               [(Plane("bf", pixels, 0.0, 1.0), (2, 1, 3, 4))],
               [({"name": "frame", "lo": 0, "hi": 1}, pixels[:2, :2])])
    header, images = unpack(msg)
    assert header["version"] == 3
    assert np.array_equal(images["bf"], pixels[2:5, 1:5])
    assert np.array_equal(images["frame"], pixels[:2, :2])
    assert header["images"][0]["shape"] == [8, 8]
