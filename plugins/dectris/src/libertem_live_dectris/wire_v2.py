"""The DECTRIS stream V2 on the wire: CBOR messages, no I/O.

Stream V2 (``format`` = ``cbor`` in the SIMPLON stream configuration, its own
ZeroMQ port, 31001 by default) sends one single-part CBOR message per event:
a ``start`` map (image type and size, number of images, channel names, pixel
masks, thresholds, ``user_data``, ...), one ``image`` map per image (``image_id``,
``series_id``, ``data``: channel name -> image array) and an ``end`` map.

Arrays are RFC 8746 values: tag 40 (row-major) or 1040 (column-major)
multidimensional arrays ``[dims, typed array]``, the typed array a tag 64..87
around a byte string - or around DECTRIS' tag 56500, a compressed byte string
``[algorithm, elem_size, bytes]`` with algorithm ``bslz4`` (bitshuffle + LZ4 in
the HDF5 filter framing) or ``lz4`` (LZ4 in the HDF5 LZ4 filter framing).

Decoding uses cbor2 with a tag hook that only wraps tags in small objects: the
payload bytes of an image are never copied or decompressed here (the receiver
copies them once into the ring; the workers decompress).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Any

import cbor2
import numpy as np

from libertem_live.driver import FrameFormatError

from libertem_live_dectris.decode_v2 import (
    KIND_BSLZ4, KIND_BY_ALGORITHM, KIND_LZ4, KIND_NONE, decode_payload,
)

START, IMAGE, END = "start", "image", "end"
DEFAULT_PORT = 31001  # where a DCU pushes stream V2 (its own port, next to V1's)
DEFAULT_CHANNEL = "threshold_1"

TAG_MULTIDIM = 40
TAG_MULTIDIM_COLUMN = 1040
TAG_COMPRESSED = 56500
TYPED_ARRAY_TAGS: dict[int, np.dtype] = {
    64: np.dtype("u1"), 65: np.dtype(">u2"), 66: np.dtype(">u4"), 67: np.dtype(">u8"),
    68: np.dtype("u1"), 69: np.dtype("<u2"), 70: np.dtype("<u4"), 71: np.dtype("<u8"),
    72: np.dtype("i1"), 73: np.dtype(">i2"), 74: np.dtype(">i4"), 75: np.dtype(">i8"),
    77: np.dtype("<i2"), 78: np.dtype("<i4"), 79: np.dtype("<i8"),
    81: np.dtype(">f4"), 82: np.dtype(">f8"), 85: np.dtype("<f4"), 86: np.dtype("<f8"),
}
TAG_FOR_DTYPE = {"uint8": 64, "uint16": 69, "uint32": 70, "float32": 85}



class V2FormatError(FrameFormatError):
    """A stream V2 message is not what the protocol (or the series' ``start``)
    says; the message names the image id where it is known."""


_SEQ = (list, tuple)  # cbor2 decodes what is inside a tag as tuples / frozendicts


class Compressed:
    """Tag 56500 content: ``data`` compressed with ``algorithm``."""

    __slots__ = ("algorithm", "elem_size", "data")

    def __init__(self, algorithm: str, elem_size: int, data: bytes) -> None:
        self.algorithm, self.elem_size, self.data = algorithm, elem_size, data


class TypedArray:
    """An RFC 8746 typed array: ``value`` is bytes or :class:`Compressed`
    (anything else is an error found by whoever uses it)."""

    __slots__ = ("dtype", "value")

    def __init__(self, dtype: np.dtype, value: Any) -> None:
        self.dtype, self.value = dtype, value


class MultiDimArray:
    """Tag 40 (row-major) or 1040 (column-major): ``dims`` and the elements."""

    __slots__ = ("dims", "array", "column_major")

    def __init__(self, dims: tuple[int, ...], array: Any, column_major: bool = False) -> None:
        self.dims, self.array, self.column_major = dims, array, column_major


class UnknownTag:
    """A tag this module does not know, kept so the error can name it."""

    __slots__ = ("tag",)

    def __init__(self, tag: int) -> None:
        self.tag = tag


# plain classes with __slots__, not dataclasses: the hook builds three per
# image, and a frozen dataclass' __init__ costs about four times as much

def _tag_hook(a: Any, b: Any) -> Any:
    # cbor2 >= 6 calls hook(tag, immutable), older versions hook(decoder, tag)
    tag = a if isinstance(a, cbor2.CBORTag) else b
    t = tag.tag
    v = tag.value
    if t == TAG_COMPRESSED:
        if (isinstance(v, _SEQ) and len(v) == 3 and isinstance(v[0], str)
                and isinstance(v[1], int) and isinstance(v[2], bytes)):
            return Compressed(v[0], v[1], v[2])
        return UnknownTag(t)
    dt = TYPED_ARRAY_TAGS.get(t)
    if dt is not None:
        return TypedArray(dt, v)
    if t in (TAG_MULTIDIM, TAG_MULTIDIM_COLUMN):
        if isinstance(v, _SEQ) and len(v) == 2 and isinstance(v[0], _SEQ):
            return MultiDimArray(tuple(v[0]), v[1], t == TAG_MULTIDIM_COLUMN)
        return UnknownTag(t)
    return UnknownTag(t)


def loads(buf: bytes | memoryview) -> Any:
    """One CBOR message, tags wrapped (never raises anything but ValueError)."""
    try:
        return cbor2.loads(buf, tag_hook=_tag_hook)
    except (cbor2.CBORDecodeError, ValueError, TypeError, IndexError, EOFError) as e:
        raise ValueError(f"not a CBOR message ({len(buf)} bytes): {e}") from None


def message_type(msg: Any) -> str | None:
    if isinstance(msg, Mapping):
        t = msg.get("type")
        return t if isinstance(t, str) else None
    return None


# ---------------------------------------------------------------- arrays

def to_numpy(value: Any, what: str) -> np.ndarray:
    """A decoded array value (cold path: masks, flat fields) as numpy;
    ValueError saying what is wrong."""
    if isinstance(value, UnknownTag):
        raise ValueError(f"{what}: unknown CBOR tag {value.tag}")
    if not isinstance(value, MultiDimArray):
        raise ValueError(f"{what}: expected a tag 40 multidimensional array, got {type(value).__name__}")
    ta = value.array
    if not isinstance(ta, TypedArray):
        raise ValueError(f"{what}: expected a typed array inside the tag 40 array")
    raw = ta.value
    if isinstance(raw, Compressed):
        n = int(np.prod(value.dims)) * ta.dtype.itemsize
        raw = decompress(raw, n, what)
    if not isinstance(raw, bytes):
        raise ValueError(f"{what}: typed array content is {type(raw).__name__}, not bytes")
    n = int(np.prod(value.dims))
    if len(raw) != n * ta.dtype.itemsize:
        raise ValueError(f"{what}: {len(raw)} bytes do not hold {value.dims} {ta.dtype}")
    arr = np.frombuffer(raw, dtype=ta.dtype).reshape(value.dims, order="F" if value.column_major else "C")
    return arr.astype(ta.dtype.newbyteorder("="))


def decompress(c: Compressed, nbytes: int, what: str) -> bytes:
    """Cold-path decompression (masks, tests) via the workers' decoder."""
    if c.algorithm not in KIND_BY_ALGORITHM:
        raise ValueError(f"{what}: unknown compression {c.algorithm!r}")
    itemsize = c.elem_size if c.algorithm == "bslz4" else 1
    if itemsize not in (1, 2, 4) or nbytes % itemsize:
        raise ValueError(f"{what}: compression element size {c.elem_size} does not fit")
    out = np.empty(nbytes // itemsize, dtype=f"u{itemsize}")
    decode_payload(c.data, KIND_BY_ALGORITHM[c.algorithm], out)
    return out.tobytes()


# ---------------------------------------------------------------- start / end

@dataclass
class SeriesStartV2:
    """What a ``start`` message said, reduced to what the receiver needs
    (the rest of its fields, arrays left out, in ``metadata``)."""

    series: int
    n_images: int
    shape: tuple[int, int]
    dtype: np.dtype
    channels: tuple[str, ...]
    pixel_mask: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    discarded: int = 0


_ARRAY_FIELDS = ("pixel_mask", "flatfield", "countrate_correction_lookup_table")


def parse_start(msg: Mapping[str, Any]) -> SeriesStartV2:
    """A decoded ``start`` map; ValueError if a field the receiver needs is wrong."""
    try:
        series = int(msg["series_id"])
        n = int(msg["number_of_images"])
        w, h = int(msg["image_size_x"]), int(msg["image_size_y"])
        dtype = np.dtype(str(msg["image_dtype"]))
    except KeyError as e:
        raise ValueError(f"start message lacks {e}") from None
    except (TypeError, ValueError) as e:
        raise ValueError(f"start message has an invalid field: {e}") from None
    if dtype.name not in ("uint8", "uint16", "uint32"):
        raise ValueError(f"start message: image_dtype {dtype.name!r} is not uint8/16/32")
    channels = msg.get("channels", [DEFAULT_CHANNEL])
    if not isinstance(channels, _SEQ) or not all(isinstance(c, str) for c in channels):
        raise ValueError(f"start message: channels must be a list of names, got {channels!r}")
    masks: dict[str, np.ndarray] = {}
    pm = msg.get("pixel_mask")
    if isinstance(pm, Mapping) and msg.get("pixel_mask_enabled", True):
        for ch, arr in pm.items():
            masks[str(ch)] = to_numpy(arr, f"series {series}: pixel_mask[{ch!r}]")
    meta = {}
    for k, v in msg.items():
        if k not in _ARRAY_FIELDS:
            try:
                meta[str(k)] = _plain(v)
            except TypeError:
                pass  # arrays and other tagged values stay out of the metadata
    meta["flatfield_present"] = isinstance(msg.get("flatfield"), Mapping) and bool(msg["flatfield"])
    meta["countrate_table_present"] = msg.get("countrate_correction_lookup_table") is not None
    return SeriesStartV2(series, n, (h, w), dtype, tuple(channels), masks, meta)


def _plain(v: Any) -> Any:
    """``v`` as plain JSON-like Python (lists, dicts); TypeError for tagged values."""
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, _SEQ):
        return [_plain(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    raise TypeError(type(v).__name__)


# ---------------------------------------------------------------- images

def image_payload(msg: Mapping[str, Any], channel: str, shape: tuple[int, ...],
                  dtype: np.dtype, where: str) -> tuple[int, int, bytes, int]:
    """``(series_id, image_id, payload, kind)`` of a decoded ``image`` map;
    V2FormatError naming the image id if it does not hold ``channel`` as a
    ``shape`` array of ``dtype`` pixels (``shape`` a tuple, as in the tag)."""
    try:
        image_id = msg["image_id"]
        series = msg["series_id"]
        arr = msg["data"][channel]
        ta = arr.array
        v = ta.value
        if (arr.dims == shape and ta.dtype == dtype and not arr.column_major
                and type(image_id) is int and type(series) is int and image_id >= 0):
            if type(v) is Compressed:
                kind = KIND_BY_ALGORITHM.get(v.algorithm)
                if kind == KIND_LZ4 or (kind == KIND_BSLZ4 and v.elem_size == dtype.itemsize):
                    return series, image_id, v.data, kind
            elif type(v) is bytes and len(v) == shape[0] * shape[1] * dtype.itemsize:
                return series, image_id, v, KIND_NONE
    except (KeyError, TypeError, AttributeError):
        pass
    _image_error(msg, channel, shape, dtype, where)
    raise AssertionError("unreachable")


def _image_error(msg: Any, channel: str, shape: tuple[int, ...], dtype: np.dtype,
                 where: str) -> None:
    """The slow path of :func:`image_payload`: raise what is wrong."""
    if not isinstance(msg, Mapping):
        raise V2FormatError(f"a message from {where} is not a CBOR map")
    image_id = msg.get("image_id")
    series = msg.get("series_id")
    if not isinstance(image_id, int) or image_id < 0 or not isinstance(series, int):
        raise V2FormatError(f"an image message from {where} has no valid image_id/series_id "
                            f"({image_id!r}/{series!r})")
    data = msg.get("data")
    if not isinstance(data, Mapping) or channel not in data:
        have = sorted(data) if isinstance(data, Mapping) else []
        raise V2FormatError(
            f"image {image_id} of series {series} from {where} has no channel {channel!r} "
            f"(it has {have}); pass channel= one of those to open()")
    arr = data[channel]

    def bad(what: str) -> V2FormatError:
        return V2FormatError(f"image {image_id} of series {series} from {where}, channel "
                             f"{channel!r}: {what}")

    if isinstance(arr, UnknownTag):
        raise bad(f"unknown CBOR tag {arr.tag} where a tag 40 array belongs")
    if not isinstance(arr, MultiDimArray):
        raise bad(f"expected a tag 40 multidimensional array, got {type(arr).__name__}")
    if arr.dims != tuple(shape) or arr.column_major:
        order = " column-major" if arr.column_major else ""
        raise bad(f"array shape {list(arr.dims)}{order}, but the series' start message "
                  f"announced {list(shape)}")
    ta = arr.array
    if isinstance(ta, UnknownTag):
        raise bad(f"unknown CBOR tag {ta.tag} where a typed array belongs")
    if not isinstance(ta, TypedArray):
        raise bad("the array's content is not an RFC 8746 typed array")
    if ta.dtype != dtype:
        raise bad(f"pixel type {ta.dtype.str}, but the start message announced {dtype.name}")
    v = ta.value
    if isinstance(v, bytes):
        n = shape[0] * shape[1] * dtype.itemsize
        raise bad(f"{len(v)} bytes of uncompressed pixels, expected {n}")
    if isinstance(v, Compressed):
        kind = KIND_BY_ALGORITHM.get(v.algorithm)
        if kind is None:
            raise bad(f"unknown compression {v.algorithm!r} (known: bslz4, lz4)")
        raise bad(f"bslz4 element size {v.elem_size} for {dtype.name} pixels")
    if isinstance(v, UnknownTag):
        raise bad(f"unknown CBOR tag {v.tag} inside the typed array")
    raise bad(f"typed array content is {type(v).__name__}, not bytes")


# ---------------------------------------------------------------- builders (simulator)

def mdarray(payload: bytes | cbor2.CBORTag, shape: tuple[int, ...], dtype: str) -> cbor2.CBORTag:
    """A tag 40 array of ``dtype`` around raw bytes or a tag 56500 value."""
    return cbor2.CBORTag(TAG_MULTIDIM, [list(shape), cbor2.CBORTag(TAG_FOR_DTYPE[dtype], payload)])


def compressed(algorithm: str, elem_size: int, data: bytes) -> cbor2.CBORTag:
    return cbor2.CBORTag(TAG_COMPRESSED, [algorithm, int(elem_size), data])


def numpy_array(arr: np.ndarray) -> cbor2.CBORTag:
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return mdarray(arr.tobytes(), arr.shape, arr.dtype.name)


def build_start(series: int, n_images: int, shape: tuple[int, int], dtype: str,
                channels: tuple[str, ...], *, pixel_mask: np.ndarray | None = None,
                threshold_energy: dict[str, float] | None = None,
                user_data: Any = None, flatfield: bool = False,
                extra: dict[str, Any] | None = None) -> bytes:
    h, w = shape
    msg: dict[str, Any] = {
        "type": START, "series_id": int(series), "series_unique_id": f"sim-{series}",
        "number_of_images": int(n_images), "image_size_x": int(w), "image_size_y": int(h),
        "image_dtype": dtype, "channels": list(channels),
        "threshold_energy": threshold_energy or {c: 4020.0 + 1000 * i for i, c in enumerate(channels)},
        "pixel_mask_enabled": pixel_mask is not None,
        "flatfield_enabled": flatfield,
        "user_data": user_data,
    }
    if pixel_mask is not None:
        msg["pixel_mask"] = {c: numpy_array(np.asarray(pixel_mask, np.uint32)) for c in channels}
    if flatfield:
        msg["flatfield"] = {c: numpy_array(np.ones(shape, np.float32)) for c in channels}
    msg.update(extra or {})
    return cbor2.dumps(cbor2.CBORTag(55799, msg))


def build_image(series: int, image_id: int, data: dict[str, cbor2.CBORTag] | bytes,
                start_ns: int = 0, stop_ns: int = 0) -> bytes:
    """An image message; ``data`` may be given already encoded (the simulator
    encodes each pool frame's ``data`` map once: a CBOR map is its header and
    its key/value items one after the other, so the encoded map can be
    spliced in as the last item)."""
    head = cbor2.dumps({
        "type": IMAGE, "series_id": int(series), "series_unique_id": f"sim-{series}",
        "image_id": int(image_id), "start_time": [start_ns, 1_000_000_000],
        "stop_time": [stop_ns, 1_000_000_000], "real_time": [stop_ns - start_ns, 1_000_000_000],
    })
    encoded = data if isinstance(data, bytes) else cbor2.dumps(data)
    # 7 entries + "data": the map header stays one byte (0xa0 + count)
    return b"\xd9\xd9\xf7" + bytes([head[0] + 1]) + head[1:] + cbor2.dumps("data") + encoded


def build_end(series: int) -> bytes:
    return cbor2.dumps(cbor2.CBORTag(55799, {"type": END, "series_id": int(series),
                                             "series_unique_id": f"sim-{series}"}))
