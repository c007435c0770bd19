"""The DECTRIS stream v1 on the wire: its JSON message parts, no I/O.

A series is a global header (``dheader-1.0``, then the detector
configuration, plus flat field, pixel mask and count-rate table with
``header_detail`` "all"), one 4-part message per image (``dimage-1.0``,
``dimage_d-1.0``, the encoded pixels, ``dconfig-1.0``) and a
``dseries_end-1.0``.  Builders are used by the simulator; the parsers run in
the receiver, so the per-image ones avoid ``json.loads`` (about 2 us per part)
and pull out just the fields needed with ``bytes.find`` (well under 1 us),
falling back to ``json.loads`` whenever the fast path is not sure. Measured
numbers are in DECODE_NOTES.md.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_PORT = 9999  # where a DCU pushes stream V1
DHEADER = "dheader-1.0"
DIMAGE = "dimage-1.0"
DIMAGE_D = "dimage_d-1.0"
DCONFIG = "dconfig-1.0"
DSERIES_END = "dseries_end-1.0"
DFLATFIELD = "dflatfield-1.0"
DPIXELMASK = "dpixelmask-1.0"
DCOUNTRATE = "dcountrate_table-1.0"

HEADER_DETAILS = ("none", "basic", "all")
TRIGGER_MODES = ("exte", "exts", "inte", "ints")
REQUIRED_CONFIG_KEYS = (
    "ntrigger", "nimages", "trigger_mode",
    "x_pixels_in_detector", "y_pixels_in_detector", "bit_depth_image",
)


class MessageError(ValueError):
    """A message part is not what the protocol says should come next."""


# ---------------------------------------------------------------- builders

def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


def build_dheader(series: int, header_detail: str = "basic") -> bytes:
    return _dumps({"htype": DHEADER, "series": int(series), "header_detail": header_detail})


def build_config(config: dict[str, Any]) -> bytes:
    """The flat configuration part (part 2 of the global header)."""
    missing = [k for k in REQUIRED_CONFIG_KEYS if k not in config]
    if missing:
        raise ValueError(f"configuration part lacks required keys {missing}")
    return _dumps(config)


def build_header_parts(
    series: int, header_detail: str, config: dict[str, Any],
    flatfield: np.ndarray | None = None, pixel_mask: np.ndarray | None = None,
    countrate_table: np.ndarray | None = None,
) -> list[bytes]:
    """All parts of the global header for ``header_detail`` none/basic/all.

    For ``all``, missing arrays are replaced by neutral ones (flatfield of
    ones, empty mask, a trivial countrate table) of the frame shape.
    """
    if header_detail not in HEADER_DETAILS:
        raise ValueError(f"header_detail must be one of {HEADER_DETAILS}, got {header_detail!r}")
    parts = [build_dheader(series, header_detail)]
    if header_detail == "none":
        return parts
    parts.append(build_config(config))
    if header_detail == "basic":
        return parts
    h, w = int(config["y_pixels_in_detector"]), int(config["x_pixels_in_detector"])
    ff = np.ones((h, w), np.float32) if flatfield is None else np.asarray(flatfield, np.float32)
    pm = np.zeros((h, w), np.uint32) if pixel_mask is None else np.asarray(pixel_mask, np.uint32)
    ct = np.array([[0, 1], [0, 1]], np.float32) if countrate_table is None else np.asarray(countrate_table, np.float32)
    for htype, arr, typ in ((DFLATFIELD, ff, "float32"), (DPIXELMASK, pm, "uint32"), (DCOUNTRATE, ct, "float32")):
        shape = [int(arr.shape[1]), int(arr.shape[0])] if arr.ndim == 2 else [int(arr.size)]
        parts.append(_dumps({"htype": htype, "shape": shape, "type": typ}))
        parts.append(np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes())
    return parts


def build_dimage(series: int, frame: int, hash_: str) -> bytes:
    # formatted by hand: this runs per frame in the simulator
    return b'{"htype": "dimage-1.0", "series": %d, "frame": %d, "hash": "%s"}' % (series, frame, hash_.encode())


def build_dimage_d(shape_hw: tuple[int, int], dtype: str, encoding: str, size: int) -> bytes:
    """``shape`` goes on the wire as [width, height], numpy's is (height, width)."""
    h, w = shape_hw
    return b'{"htype": "dimage_d-1.0", "shape": [%d, %d], "type": "%s", "encoding": "%s", "size": %d}' % (
        w, h, dtype.encode(), encoding.encode(), size)


def build_dconfig(start_time: int, stop_time: int, real_time: int) -> bytes:
    return b'{"htype": "dconfig-1.0", "start_time": %d, "stop_time": %d, "real_time": %d}' % (
        start_time, stop_time, real_time)


def build_dseries_end(series: int) -> bytes:
    return b'{"htype": "dseries_end-1.0", "series": %d}' % series


# ---------------------------------------------------------------- semantics

def images_per_series(trigger_mode: str, nimages: int, ntrigger: int) -> int:
    """Number of images in a series: ``exte``/``inte`` take one image per
    trigger, ``exts``/``ints`` take ``nimages`` images per trigger."""
    if trigger_mode in ("exte", "inte"):
        return int(ntrigger)
    if trigger_mode in ("exts", "ints"):
        return int(nimages) * int(ntrigger)
    raise ValueError(f"unknown trigger_mode {trigger_mode!r}, expected one of {TRIGGER_MODES}")


def dtype_for_bit_depth(bits: int) -> np.dtype:
    if int(bits) not in (8, 16, 32):
        raise ValueError(f"bit_depth_image must be 8, 16 or 32, got {bits!r}")
    return np.dtype(f"uint{int(bits)}")


# ---------------------------------------------------------------- parsers

def _loads(part: bytes | memoryview) -> dict[str, Any]:
    try:
        obj = json.loads(bytes(part))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MessageError(f"not a JSON message part ({len(part)} bytes): {e}") from None
    if not isinstance(obj, dict):
        raise MessageError(f"JSON message part is not an object: {str(obj)[:80]}")
    return obj


def _expect(obj: dict[str, Any], htype: str) -> None:
    if obj.get("htype") != htype:
        raise MessageError(f"expected {htype}, got htype {obj.get('htype')!r}")


_HTYPE_KEY = b'"htype"'


def peek_htype(part: bytes | memoryview) -> str | None:
    """The ``htype`` of a JSON part, or None for binary / non-JSON parts.

    Cheap enough to call on every part (no full parse); used to find the
    global header and the end of series among unrelated messages.
    """
    b = bytes(part[:256]) if isinstance(part, memoryview) else part[:256]
    if not b.startswith(b"{"):
        return None
    i = b.find(_HTYPE_KEY)
    if i < 0:
        return None
    q1 = b.find(b'"', b.find(b":", i + 7) + 1)
    q2 = b.find(b'"', q1 + 1)
    if q1 < 0 or q2 < 0:
        return None
    try:
        return b[q1 + 1:q2].decode()
    except UnicodeDecodeError:
        return None


def _int_field(b: bytes, key: bytes) -> int | None:
    """Value of integer field ``key`` (given with quotes) or None if not sure."""
    i = b.find(key)
    if i <= 0 or b[i - 1] not in b"{, \t\n\r":
        return None
    c = b.find(b":", i + len(key))
    if c < 0:
        return None
    e = b.find(b",", c)
    if e < 0:
        e = b.find(b"}", c)
        if e < 0:
            return None
    try:
        return int(b[c + 1:e])  # int() tolerates surrounding whitespace
    except ValueError:  # e.g. a "}" inside the value: let json decide
        return None


# the field order DCUs and our simulator use; one regex call is the cheapest
# way to get both numbers out (others fall through to the generic paths)
_DIMAGE_RE = re.compile(rb'^\{\s*"htype"\s*:\s*"dimage-1\.0"\s*,\s*"series"\s*:\s*(\d+)\s*,\s*"frame"\s*:\s*(\d+)\s*[,}]')


def parse_dimage(part: bytes | memoryview) -> tuple[int, int]:
    """``(series, frame)`` of a ``dimage-1.0`` part; MessageError if it is not one."""
    b = bytes(part) if isinstance(part, memoryview) else part
    m = _DIMAGE_RE.match(b)
    if m is not None:
        return int(m[1]), int(m[2])
    if b'"dimage-1.0"' in b:
        series = _int_field(b, b'"series"')
        frame = _int_field(b, b'"frame"')
        if series is not None and frame is not None and series >= 0 and frame >= 0:
            return series, frame
    obj = _loads(b)
    _expect(obj, DIMAGE)
    try:
        series, frame = obj["series"], obj["frame"]
    except KeyError as e:
        raise MessageError(f"dimage-1.0 part lacks {e}") from None
    if not (isinstance(series, int) and isinstance(frame, int)) or series < 0 or frame < 0:
        raise MessageError(f"dimage-1.0 with invalid series/frame: {series!r}/{frame!r}")
    return series, frame


@dataclass(frozen=True)
class ImageDescriptor:
    """Parsed ``dimage_d-1.0``: numpy ``shape`` is (height, width)."""

    shape: tuple[int, int]
    dtype: str
    encoding: str
    size: int | None


_DESC_CACHE: dict[bytes, ImageDescriptor] = {}
_DESC_CACHE_MAX = 64


def parse_dimage_d(part: bytes | memoryview) -> ImageDescriptor:
    """Parse a ``dimage_d-1.0`` part. Cached: only ``size`` differs between frames.

    The cache key is the part with its ``size`` field cut out, so repeated
    descriptors cost one ``find`` plus a dict lookup instead of a JSON parse.
    """
    b = bytes(part) if isinstance(part, memoryview) else part
    i = b.find(b'"size"')
    size: int | None = None
    key = b
    if i > 0:
        size = _int_field(b, b'"size"')
        e = b.find(b",", i)
        if e < 0:
            e = b.find(b"}", i)
        if size is not None and e > 0:
            key = b[:i] + b[e:]
    desc = _DESC_CACHE.get(key)
    if desc is not None:
        return desc if desc.size == size else ImageDescriptor(desc.shape, desc.dtype, desc.encoding, size)
    obj = _loads(b)
    _expect(obj, DIMAGE_D)
    try:
        shape = obj["shape"]
        dtype = obj["type"]
        encoding = obj["encoding"]
    except KeyError as e:
        raise MessageError(f"dimage_d-1.0 part lacks {e}") from None
    if (not isinstance(shape, list) or len(shape) != 2
            or not all(isinstance(x, int) and x > 0 for x in shape)):
        raise MessageError(f"dimage_d-1.0 shape must be [width, height], got {shape!r}")
    if not isinstance(dtype, str) or not isinstance(encoding, str):
        raise MessageError(f"dimage_d-1.0 type/encoding must be strings: {dtype!r}, {encoding!r}")
    size_v = obj.get("size")
    desc = ImageDescriptor((shape[1], shape[0]), dtype, encoding, size_v if isinstance(size_v, int) else None)
    if len(_DESC_CACHE) >= _DESC_CACHE_MAX:
        _DESC_CACHE.clear()
    _DESC_CACHE[key] = desc
    return desc


@dataclass(frozen=True)
class SeriesHeader:
    """Parsed ``dheader-1.0``."""

    series: int
    header_detail: str


def parse_dheader(part: bytes | memoryview) -> SeriesHeader:
    obj = _loads(part)
    _expect(obj, DHEADER)
    series = obj.get("series")
    detail = obj.get("header_detail")
    if not isinstance(series, int) or series < 0:
        raise MessageError(f"dheader-1.0 with invalid series {series!r}")
    if detail not in HEADER_DETAILS:
        raise MessageError(f"dheader-1.0 with invalid header_detail {detail!r}")
    return SeriesHeader(series, detail)


def header_part_count(header_detail: str) -> int:
    """Parts of the global header including the dheader (no appendix)."""
    return {"none": 1, "basic": 2, "all": 8}[header_detail]


@dataclass(frozen=True)
class SeriesConfig:
    """The detector configuration part, reduced to what a receiver needs."""

    trigger_mode: str
    nimages: int
    ntrigger: int
    width: int
    height: int
    bit_depth: int
    compression: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_images(self) -> int:
        return images_per_series(self.trigger_mode, self.nimages, self.ntrigger)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def dtype(self) -> np.dtype:
        return dtype_for_bit_depth(self.bit_depth)


def parse_config(part: bytes | memoryview | dict[str, Any]) -> SeriesConfig:
    """Parse the configuration part (or an already decoded dict)."""
    obj = part if isinstance(part, dict) else _loads(part)
    missing = [k for k in REQUIRED_CONFIG_KEYS if k not in obj]
    if missing:
        raise MessageError(f"configuration part lacks required keys {missing}")
    try:
        cfg = SeriesConfig(
            trigger_mode=str(obj["trigger_mode"]), nimages=int(obj["nimages"]),
            ntrigger=int(obj["ntrigger"]), width=int(obj["x_pixels_in_detector"]),
            height=int(obj["y_pixels_in_detector"]), bit_depth=int(obj["bit_depth_image"]),
            compression=obj.get("compression"), raw=dict(obj),
        )
        cfg.n_images  # noqa: B018 - validates trigger_mode
        cfg.dtype  # noqa: B018 - validates bit depth
    except (TypeError, ValueError) as e:
        raise MessageError(f"invalid configuration part: {e}") from None
    return cfg


def parse_dseries_end(part: bytes | memoryview) -> int:
    """Series id of a ``dseries_end-1.0`` part."""
    b = bytes(part) if isinstance(part, memoryview) else part
    if b'"dseries_end-1.0"' in b:
        series = _int_field(b, b'"series"')
        if series is not None and series >= 0:
            return series
    obj = _loads(b)
    _expect(obj, DSERIES_END)
    series = obj.get("series")
    if not isinstance(series, int) or series < 0:
        raise MessageError(f"dseries_end-1.0 with invalid series {series!r}")
    return series


def parse_dconfig(part: bytes | memoryview) -> tuple[int, int, int]:
    """``(start_time, stop_time, real_time)`` in ns of a ``dconfig-1.0`` part."""
    obj = _loads(part)
    _expect(obj, DCONFIG)
    try:
        return int(obj["start_time"]), int(obj["stop_time"]), int(obj["real_time"])
    except (KeyError, TypeError, ValueError) as e:
        raise MessageError(f"invalid dconfig-1.0 part: {e}") from None


@dataclass
class SeriesStart:
    """What a series' global header said: its id, its configuration, the
    pixel mask (``header_detail`` "all" only) and how many stale message
    parts (of earlier series) came before it."""

    series: int
    config: SeriesConfig
    pixel_mask: np.ndarray | None = None
    discarded: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def encoding_for(config: SeriesConfig) -> str:
    """The ``encoding`` of the images a series' configuration implies
    (the ``compression`` setting and the pixel width)."""
    comp = (config.compression or "bslz4").lower()
    bits = 8 * np.dtype(config.dtype).itemsize
    if comp == "bslz4":
        return f"bs{bits}-lz4<"
    if comp == "lz4":
        return "lz4<"
    if comp == "none":
        return "<"
    raise MessageError(f"unknown DECTRIS compression {config.compression!r}")
