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


def test_the_sum_frame_is_binned_to_what_a_panel_shows() -> None:
    """A 512 x 512 sum frame goes to the page as 256 x 256 (2 x 2 sums, said
    in the image's ``bin``), so regions in detector pixels still map onto it;
    a small frame goes as it is."""
    from libertem_live_dashboard.encode import SUM_MAX_SIDE, bin_sum, planes_of
    rng = np.random.default_rng(1)
    big = rng.random((515, 512)).astype(np.float32)
    expected = big[:514].reshape(257, 2, 256, 2).sum(axis=(1, 3))
    assert np.allclose(bin_sum(big, 2), expected, rtol=1e-6)
    nav = np.ones((4, 4), np.float32)
    plane = planes_of({"sum": big[:512], "bf": nav}, None)[0]
    assert plane.name == "sum" and plane.bin == 2 and plane.pixels.shape == (SUM_MAX_SIDE,) * 2
    header, images = unpack(pack({"type": "update"}, [(plane, (0, 0, 256, 256))]))
    assert header["images"][0]["bin"] == 2 and images["sum"].shape == (256, 256)
    small = planes_of({"sum": big[:64, :64]}, None)[0]
    assert small.bin == 1 and small.pixels.shape == (64, 64)
