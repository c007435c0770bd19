"""Images to bytes for the page: 8-bit with robust colour limits, sent whole
or as the changed rectangle, in one binary message per update.

A message is ``[u32 little-endian n][n bytes of JSON header][pixels...]``;
the header lists each image with its full shape, the rectangle the pixels
cover, their offset in the payload, and the colour-bar limits.  Pixel value
0 means "no data yet" (not scanned); data maps to 1..255 between the limits.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from libertem_live_dashboard.udf import com_polar

#: Percentiles of the colour limits: a few hot pixels must not wash out an image.
LO_PCT, HI_PCT = 0.5, 99.5
#: Percentiles are taken from at most this many samples (a regular subset).
MAX_SAMPLES = 1 << 16
#: A rectangle is sent instead of the whole image when it is at most this fraction.
RECT_FRACTION = 0.6
#: The sum frame is binned to at most this many pixels a side before it is
#: quantised: a panel shows it in about 300 CSS pixels, so a 512 x 512 frame
#: sent whole costs the server (log, limits, 8 bit) and the page (colour
#: lookup, canvas upload) four times what the screen can show.
SUM_MAX_SIDE = 256


@dataclass
class Plane:
    """One image of the page, quantised."""

    name: str
    pixels: np.ndarray  # uint8, 2D
    lo: float
    hi: float
    log: bool = False
    unit: str = "counts"
    #: Detector pixels per image pixel along each axis (the sum frame's binning).
    bin: int = 1


def bin_factor(shape: tuple[int, ...], max_side: int = SUM_MAX_SIDE) -> int:
    """The smallest integer binning that brings ``shape`` to ``max_side`` or less."""
    return max(1, -(-max(shape) // max_side))


def bin_sum(a: np.ndarray, b: int) -> np.ndarray:
    """``a`` summed over ``b`` x ``b`` blocks (float32); the last rows and
    columns that do not fill a block are left out, so an image pixel ``(i, j)``
    is always detector pixels ``b*i .. b*i+b-1``, ``b*j .. b*j+b-1``."""
    a = np.asarray(a, dtype=np.float32)
    if b == 1:
        return a
    h, w = a.shape[0] // b, a.shape[1] // b
    rows = a[0:h * b:b, :w * b].copy()  # strided adds: several times faster than .sum(axis=)
    for i in range(1, b):
        rows += a[i:h * b:b, :w * b]
    out = rows[:, 0::b].copy()
    for j in range(1, b):
        out += rows[:, j::b]
    return out


def robust_limits(values: np.ndarray) -> tuple[float, float]:
    """The LO_PCT and HI_PCT percentiles (nearest rank: colour limits need no
    interpolation) of the finite values, from a regular subset of at most
    MAX_SAMPLES; one partition instead of ``np.percentile``, which costs
    several times more for the small images a dashboard mostly has."""
    v = np.asarray(values).reshape(-1)
    if v.size > MAX_SAMPLES:
        v = v[:: v.size // MAX_SAMPLES]
    v = v[np.isfinite(v)]
    if v.size == 0:
        return 0.0, 1.0
    last = v.size - 1
    k_lo, k_hi = int(round(LO_PCT / 100 * last)), int(round(HI_PCT / 100 * last))
    part = np.partition(v, (k_lo, k_hi))
    lo, hi = float(part[k_lo]), float(part[k_hi])
    if not hi > lo:
        hi = lo + 1.0
    return lo, hi


def quantise(a: np.ndarray, valid: np.ndarray | None, *, log: bool = False,
             limits: tuple[float, float] | None = None) -> tuple[np.ndarray, float, float]:
    """uint8 pixels (0 where not valid) and the limits used, in display units
    (log1p of the value for ``log``).  One float32 work array, changed in
    place: a 512 x 512 sum frame at the update rate is the biggest image."""
    a = np.asarray(a)
    if a.ndim != 2:
        a = a.reshape(a.shape[0], -1) if a.ndim > 2 else a.reshape(1, -1)
        valid = None if valid is None else np.asarray(valid).reshape(a.shape)
    work = np.array(a, dtype=np.float32)
    if log:
        np.maximum(work, 0, out=work)
        np.log1p(work, out=work)
    if limits is None:
        limits = robust_limits(work if valid is None else work[valid])
    lo, hi = limits
    work -= lo
    work *= 254.0 / (hi - lo)
    np.clip(work, 0, 254, out=work)
    work += 1.5
    q = work.astype(np.uint8)
    if valid is not None:
        q[~valid] = 0
    return q, lo, hi


def planes_of(images: dict[str, np.ndarray], damage: np.ndarray | None,
              skip: frozenset[str] = frozenset()) -> list[Plane]:
    """The page's panels from a snapshot's raw images (not those in ``skip``)."""
    out: list[Plane] = []
    if "sum" in images and "sum" not in skip:
        raw = images["sum"]
        b = bin_factor(raw.shape) if raw.ndim == 2 else 1
        q, lo, hi = quantise(bin_sum(raw, b) if b > 1 else raw, None, log=True)
        out.append(Plane("sum", q, lo, hi, log=True, bin=b))
    nav_valid = None
    if damage is not None:
        nav_valid = np.asarray(damage, dtype=bool)
    for name in ("bf", "adf"):
        if name in images:
            valid = nav_valid if nav_valid is not None and nav_valid.shape == images[name].shape \
                else None
            q, lo, hi = quantise(images[name], valid)
            out.append(Plane(name, q, lo, hi))
    if "com_y" in images and "com_x" in images:
        mag, angle = com_polar(images["com_y"], images["com_x"])
        valid = nav_valid if nav_valid is not None and nav_valid.shape == mag.shape else None
        q, lo, hi = quantise(mag, valid)
        out.append(Plane("com_mag", q, lo, hi, unit="px"))
        qa, _, _ = quantise(angle, valid, limits=(-np.pi, np.pi))
        out.append(Plane("com_angle", qa, -np.pi, np.pi, unit="rad"))
    return out


def bounding_rect(prev: np.ndarray | None, cur: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y, x, h, w) of the smallest rectangle holding every changed pixel;
    the whole image when there is no previous one or the shapes differ, None
    when nothing changed."""
    h, w = cur.shape
    if prev is None or prev.shape != cur.shape:
        return (0, 0, h, w)
    diff = prev != cur
    rows = np.flatnonzero(diff.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(diff[rows[0]:rows[-1] + 1].any(axis=0))
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    return (y0, x0, y1 - y0, x1 - x0)


def worth_whole(rect: tuple[int, int, int, int],
                shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """The whole image instead of ``rect`` when the rectangle is most of it
    (a second copy of the same pixels costs the page more than a few bytes)."""
    h, w = shape
    if rect[2] * rect[3] > RECT_FRACTION * h * w:
        return (0, 0, h, w)
    return rect


def union_rect(a: tuple[int, int, int, int] | None, b: tuple[int, int, int, int] | None,
               shape: tuple[int, ...]) -> tuple[int, int, int, int] | None:
    """The smallest rectangle holding both (either may be None: nothing),
    clipped to ``shape``."""
    if a is None or b is None:
        r = a if b is None else b
        if r is None:
            return None
    else:
        y0, x0 = min(a[0], b[0]), min(a[1], b[1])
        r = (y0, x0, max(a[0] + a[2], b[0] + b[2]) - y0, max(a[1] + a[3], b[1] + b[3]) - x0)
    h, w = shape
    y0, x0 = min(r[0], h), min(r[1], w)
    return (y0, x0, min(r[2], h - y0), min(r[3], w - x0))


def changed_rect(prev: np.ndarray | None, cur: np.ndarray) -> tuple[int, int, int, int] | None:
    """What to send of ``cur`` to a page that has ``prev``: the changed
    rectangle, the whole image when that is most of it, None when nothing
    changed."""
    rect = bounding_rect(prev, cur)
    return None if rect is None else worth_whole(rect, cur.shape)


def pack_images(planes: list[tuple[Plane, tuple[int, int, int, int]]]
                ) -> tuple[list[dict[str, Any]], bytes]:
    """The image list of a header and the pixels of each plane's rectangle."""
    chunks: list[bytes] = []
    offset = 0
    listed = []
    for plane, (y, x, h, w) in planes:
        data = np.ascontiguousarray(plane.pixels[y:y + h, x:x + w]).tobytes()
        listed.append({"name": plane.name, "shape": list(plane.pixels.shape),
                       "rect": [y, x, h, w], "offset": offset, "lo": plane.lo, "hi": plane.hi,
                       "log": plane.log, "unit": plane.unit, "bin": plane.bin})
        chunks.append(data)
        offset += len(data)
    return listed, b"".join(chunks)


def pack_message(header: dict[str, Any], listed: list[dict[str, Any]], body: bytes,
                 extra: list[tuple[dict[str, Any], np.ndarray]] = ()) -> bytes:
    """One binary message from packed images (:func:`pack_images`, shared by
    every page that needs the same rectangles) and ``extra`` raw uint8 images."""
    listed = list(listed)
    chunks = [body]
    offset = len(body)
    for meta, pixels in extra:
        data = np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
        h, w = pixels.shape
        listed.append(dict(meta, shape=[h, w], rect=[0, 0, h, w], offset=offset))
        chunks.append(data)
        offset += len(data)
    head = json.dumps(dict(header, images=listed), separators=(",", ":")).encode()
    return struct.pack("<I", len(head)) + head + b"".join(chunks)


def pack(header: dict[str, Any], planes: list[tuple[Plane, tuple[int, int, int, int]]],
         extra: list[tuple[dict[str, Any], np.ndarray]] = ()) -> bytes:
    """One binary message: the header (with an ``images`` list added) and the
    pixels of each plane's rectangle, then ``extra`` raw uint8 images."""
    listed, body = pack_images(planes)
    return pack_message(header, listed, body, extra)


def unpack(message: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The inverse of :func:`pack` (for tests and benchmarks): header and
    each image's rectangle of pixels."""
    (n,) = struct.unpack_from("<I", message, 0)
    header = json.loads(message[4:4 + n])
    body = memoryview(message)[4 + n:]
    images = {}
    for im in header["images"]:
        y, x, h, w = im["rect"]
        images[im["name"]] = np.frombuffer(body[im["offset"]:im["offset"] + h * w],
                                           dtype=np.uint8).reshape(h, w)
    return header, images
