"""The compiled walk over stream V2 image messages finds exactly what the
cbor2 path finds, and hands everything it does not fully understand back
to the cbor2 path (None), which words the errors.  Messages are built here
with cbor2 and the documented tags, in several key orders."""
from __future__ import annotations

import cbor2
import numpy as np
import pytest

from libertem_live_dectris.cbor_scan import ImageScanner
from libertem_live_dectris.wire_v2 import TYPED_ARRAY_TAGS, V2FormatError, image_payload, loads

SHAPE = (12, 10)
TAGS = {"uint8": 64, "uint16": 69, "uint32": 70}


def _array(dtype: str, comp: str, blob: bytes, dims=SHAPE, multidim_tag: int = 40) -> cbor2.CBORTag:
    item = np.dtype(dtype).itemsize
    value: object = blob if comp == "none" else cbor2.CBORTag(
        56500, [comp, item if comp == "bslz4" else 0, blob])
    return cbor2.CBORTag(multidim_tag, [list(dims), cbor2.CBORTag(TAGS[dtype], value)])


def _message(data: dict, *, reverse: bool = False, image_id: int = 7, series: int = 3,
             self_described: bool = True) -> bytes:
    items = [("type", "image"), ("series_id", series), ("series_unique_id", "u-3"),
             ("image_id", image_id), ("start_time", [10, 1_000_000_000]),
             ("real_time", [5, 1_000_000_000]), ("data", data), ("user_data", {"a": [1, 2]})]
    if reverse:
        items.reverse()
    msg = dict(items)
    return cbor2.dumps(cbor2.CBORTag(55799, msg) if self_described else msg)


def _both(buf: bytes, dtype: str, channel: str = "threshold_1"):
    scanner = ImageScanner(channel, SHAPE, np.dtype(dtype), TYPED_ARRAY_TAGS)
    return scanner.payload(buf), image_payload(loads(buf), channel, SHAPE, np.dtype(dtype), "here")


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("comp", ["bslz4", "lz4", "none"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
def test_finds_what_cbor2_finds(dtype: str, comp: str, reverse: bool) -> None:
    raw = np.arange(SHAPE[0] * SHAPE[1], dtype=dtype).tobytes()
    blob = raw if comp == "none" else bytes(range(256)) * 3
    other = _array(dtype, comp, b"\x00" * len(blob))
    buf = _message({"threshold_2": other, "threshold_1": _array(dtype, comp, blob)},
                   reverse=reverse, self_described=not reverse)
    fast, ref = _both(buf, dtype)
    assert fast is not None
    assert fast[:2] == ref[:2] == (3, 7)
    assert fast[3] == ref[3]
    assert bytes(fast[2]) == bytes(ref[2]) == blob


def test_second_channel_is_found() -> None:
    a, b = b"a" * 40, b"b" * 50
    buf = _message({"threshold_1": _array("uint16", "bslz4", a),
                    "threshold_2": _array("uint16", "bslz4", b)})
    fast, ref = _both(buf, "uint16", channel="threshold_2")
    assert bytes(fast[2]) == bytes(ref[2]) == b


@pytest.mark.parametrize("what, data, dtype", [
    ("column-major array", {"threshold_1": _array("uint16", "bslz4", b"x" * 9, multidim_tag=1040)},
     "uint16"),
    ("other dims", {"threshold_1": _array("uint16", "bslz4", b"x" * 9, dims=(12, 11))}, "uint16"),
    ("other pixel type", {"threshold_1": _array("uint32", "bslz4", b"x" * 9)}, "uint16"),
    ("short raw image", {"threshold_1": _array("uint16", "none", b"x" * 9)}, "uint16"),
    ("unknown compression", {"threshold_1": cbor2.CBORTag(40, [[12, 10], cbor2.CBORTag(
        69, cbor2.CBORTag(56500, ["zstd", 2, b"x"]))])}, "uint16"),
    ("bslz4 of another element size", {"threshold_1": cbor2.CBORTag(40, [[12, 10], cbor2.CBORTag(
        69, cbor2.CBORTag(56500, ["bslz4", 4, b"x"]))])}, "uint16"),
    ("missing channel", {"threshold_2": _array("uint16", "bslz4", b"x" * 9)}, "uint16"),
])
def test_what_it_does_not_accept_goes_to_cbor2(what: str, data: dict, dtype: str) -> None:
    scanner = ImageScanner("threshold_1", SHAPE, np.dtype(dtype), TYPED_ARRAY_TAGS)
    buf = _message(data)
    assert scanner.payload(buf) is None, what
    with pytest.raises(V2FormatError):
        image_payload(loads(buf), "threshold_1", SHAPE, np.dtype(dtype), "here")


def test_other_messages_and_junk_go_to_cbor2() -> None:
    scanner = ImageScanner("threshold_1", SHAPE, np.dtype("uint16"), TYPED_ARRAY_TAGS)
    good = _message({"threshold_1": _array("uint16", "bslz4", b"x" * 30)})
    assert scanner.payload(good) is not None
    for buf in (cbor2.dumps({"type": "end", "series_id": 3}),
                cbor2.dumps({"type": "start", "series_id": 3}),
                good[:-5],                      # truncated
                good + b"\x00",                 # trailing bytes
                b"\xbf\x64type\x65image\xff",   # indefinite-length map
                b"not cbor at all",
                b""):
        assert scanner.payload(buf) is None, buf[:20]
