"""Finding one channel's image in a stream V2 ``image`` message without
decoding the message into Python objects.

``cbor2.loads`` with our tag hook builds a dict, tuples and three wrapper
objects per image (about 10-25 us); at ARINA's 120,000 images/s that alone
would take more than one core.  :func:`scan_image` walks the CBOR bytes in
compiled code and returns where the channel's pixel bytes are, with the
ids, dims, typed-array tag and compression it met on the way.  It
understands exactly the layout stream V2 images have (an optional tag
55799, definite lengths, text keys, tag 40, one typed-array tag,
optionally tag 56500); anything
else gives ``NOT_FOUND`` and the caller takes the cbor2 path, which also
words every error.  So the fast path never decides that a message is bad.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numba import njit

from libertem_live_dectris.decode_v2 import KIND_BSLZ4, KIND_LZ4, KIND_NONE

#: Fields of the result array.
STATUS, SERIES, IMAGE_ID, DIM0, DIM1, TYPED_TAG, ALGORITHM, ELEM_SIZE, OFFSET, LENGTH = range(10)
FOUND, NOT_FOUND = 1, 0
#: ``ALGORITHM`` values: no tag 56500, ``bslz4``, ``lz4`` (the decoder's kinds).
ALG_NONE, ALG_BSLZ4, ALG_LZ4 = KIND_NONE, KIND_BSLZ4, KIND_LZ4

_KEY_TYPE = np.frombuffer(b"type", np.uint8)
_KEY_SERIES = np.frombuffer(b"series_id", np.uint8)
_KEY_IMAGE = np.frombuffer(b"image_id", np.uint8)
_KEY_DATA = np.frombuffer(b"data", np.uint8)
_IMAGE = np.frombuffer(b"image", np.uint8)
_BSLZ4 = np.frombuffer(b"bslz4", np.uint8)
_LZ4 = np.frombuffer(b"lz4", np.uint8)


@njit(cache=True, nogil=True, inline="always")
def _head(buf, pos, end, out2):
    """Read an item head at ``pos``: out2 = (major, argument); returns the
    position after the head, or -1 (truncated, indefinite length, reserved)."""
    if pos >= end:
        return -1
    b = buf[pos]
    major = b >> 5
    info = b & 0x1F
    pos += 1
    if info < 24:
        val = np.uint64(info)
    elif info == 24:
        if pos + 1 > end:
            return -1
        val = np.uint64(buf[pos])
        pos += 1
    elif info == 25:
        if pos + 2 > end:
            return -1
        val = (np.uint64(buf[pos]) << np.uint64(8)) | np.uint64(buf[pos + 1])
        pos += 2
    elif info == 26:
        if pos + 4 > end:
            return -1
        val = np.uint64(0)
        for i in range(4):
            val = (val << np.uint64(8)) | np.uint64(buf[pos + i])
        pos += 4
    elif info == 27:
        if pos + 8 > end:
            return -1
        val = np.uint64(0)
        for i in range(8):
            val = (val << np.uint64(8)) | np.uint64(buf[pos + i])
        pos += 8
    else:
        return -1
    out2[0] = major
    out2[1] = np.int64(val) if val < np.uint64(1 << 62) else -1
    return pos


@njit(cache=True, nogil=True)
def _skip(buf, pos, end, h):
    """Position after one whole item (-1 if it cannot be skipped)."""
    todo = 1
    while todo > 0:
        pos = _head(buf, pos, end, h)
        if pos < 0 or h[1] < 0:
            return -1
        todo -= 1
        major = h[0]
        if major == 2 or major == 3:
            pos += h[1]
            if pos > end:
                return -1
        elif major == 4:
            todo += h[1]
        elif major == 5:
            todo += 2 * h[1]
        elif major == 6:
            todo += 1
    return pos


@njit(cache=True, nogil=True, inline="always")
def _text_is(buf, pos, n, word):
    if n != word.shape[0]:
        return False
    for i in range(n):
        if buf[pos + i] != word[i]:
            return False
    return True


@njit(cache=True, nogil=True)
def _scan(buf, channel, out, h):
    key_type, key_series, key_image, key_data = _KEY_TYPE, _KEY_SERIES, _KEY_IMAGE, _KEY_DATA
    image, bslz4, lz4 = _IMAGE, _BSLZ4, _LZ4  # module arrays: constants in compiled code
    end = buf.shape[0]
    out[STATUS] = NOT_FOUND
    pos = _head(buf, 0, end, h)
    if pos >= 0 and h[0] == 6 and h[1] == 55799:  # "self-described CBOR" prefix
        pos = _head(buf, pos, end, h)
    if pos < 0 or h[0] != 5:
        return
    pairs = h[1]
    seen = 0
    for _ in range(pairs):
        pos = _head(buf, pos, end, h)
        if pos < 0 or h[0] != 3 or pos + h[1] > end:
            return
        kpos, klen = pos, h[1]
        pos += klen
        if _text_is(buf, kpos, klen, key_type):
            pos = _head(buf, pos, end, h)
            if pos < 0 or h[0] != 3 or pos + h[1] > end or not _text_is(buf, pos, h[1], image):
                return
            pos += h[1]
            seen |= 1
        elif _text_is(buf, kpos, klen, key_series) or _text_is(buf, kpos, klen, key_image):
            pos = _head(buf, pos, end, h)
            if pos < 0 or h[0] != 0 or h[1] < 0:
                return
            if klen == key_series.shape[0]:
                out[SERIES] = h[1]
                seen |= 2
            else:
                out[IMAGE_ID] = h[1]
                seen |= 4
        elif _text_is(buf, kpos, klen, key_data):
            pos = _head(buf, pos, end, h)
            if pos < 0 or h[0] != 5:
                return
            for _ in range(h[1]):
                pos = _head(buf, pos, end, h)
                if pos < 0 or h[0] != 3 or pos + h[1] > end:
                    return
                is_channel = _text_is(buf, pos, h[1], channel)
                pos += h[1]
                if not is_channel:
                    pos = _skip(buf, pos, end, h)
                    if pos < 0:
                        return
                    continue
                pos = _head(buf, pos, end, h)  # tag 40, row-major multidim array
                if pos < 0 or h[0] != 6 or h[1] != 40:
                    return
                pos = _head(buf, pos, end, h)
                if pos < 0 or h[0] != 4 or h[1] != 2:
                    return
                pos = _head(buf, pos, end, h)
                if pos < 0 or h[0] != 4 or h[1] != 2:
                    return
                for d in range(2):
                    pos = _head(buf, pos, end, h)
                    if pos < 0 or h[0] != 0 or h[1] < 0:
                        return
                    out[DIM0 + d] = h[1]
                pos = _head(buf, pos, end, h)  # typed-array tag
                if pos < 0 or h[0] != 6:
                    return
                out[TYPED_TAG] = h[1]
                pos = _head(buf, pos, end, h)
                if pos < 0:
                    return
                if h[0] == 2:
                    out[ALGORITHM] = ALG_NONE
                    out[ELEM_SIZE] = 0
                elif h[0] == 6 and h[1] == 56500:
                    pos = _head(buf, pos, end, h)
                    if pos < 0 or h[0] != 4 or h[1] != 3:
                        return
                    pos = _head(buf, pos, end, h)
                    if pos < 0 or h[0] != 3 or pos + h[1] > end:
                        return
                    if _text_is(buf, pos, h[1], bslz4):
                        out[ALGORITHM] = ALG_BSLZ4
                    elif _text_is(buf, pos, h[1], lz4):
                        out[ALGORITHM] = ALG_LZ4
                    else:
                        return
                    pos += h[1]
                    pos = _head(buf, pos, end, h)
                    if pos < 0 or h[0] != 0 or h[1] < 0:
                        return
                    out[ELEM_SIZE] = h[1]
                    pos = _head(buf, pos, end, h)
                    if pos < 0 or h[0] != 2:
                        return
                else:
                    return
                if pos + h[1] > end:
                    return
                out[OFFSET] = pos
                out[LENGTH] = h[1]
                pos += h[1]
                seen |= 8
        else:
            pos = _skip(buf, pos, end, h)
            if pos < 0:
                return
    if seen == 15 and pos == end:
        out[STATUS] = FOUND


def scan_image(buf: np.ndarray, channel: np.ndarray, out: np.ndarray) -> None:
    """Fill ``out`` (int64, 10 fields) for the message ``buf`` (uint8) and
    the channel name ``channel`` (its UTF-8 bytes as uint8)."""
    _scan(buf, channel, out, np.zeros(2, np.int64))


class ImageScanner:
    """One channel of a series' images: :meth:`payload` gives what
    :func:`~libertem_live_dectris.wire_v2.image_payload` gives for a message
    that is an image of the expected shape, type and compression, or None
    for anything else (then decode the message with cbor2)."""

    def __init__(self, channel: str, shape: tuple[int, ...], dtype: np.dtype,
                 typed_array_tags: Mapping[int, np.dtype]):
        self.channel = np.frombuffer(channel.encode(), np.uint8)
        self.shape = tuple(int(d) for d in shape)
        self.itemsize = int(dtype.itemsize)
        self.raw_bytes = int(np.prod(self.shape)) * self.itemsize
        self.tags = frozenset(t for t, dt in typed_array_tags.items() if dt == dtype)
        self.out = np.zeros(10, np.int64)
        self._head = np.zeros(2, np.int64)  # scratch of the walk, reused per image

    def payload(self, buf: bytes) -> tuple[int, int, np.ndarray, int] | None:
        arr = np.frombuffer(buf, np.uint8)
        out = self.out
        _scan(arr, self.channel, out, self._head)
        (status, series, image_id, d0, d1, tag, alg, elem, offset, length) = out.tolist()
        if (status != FOUND or (d0, d1) != self.shape or tag not in self.tags
                or (alg == ALG_BSLZ4 and elem != self.itemsize)
                or (alg == ALG_NONE and length != self.raw_bytes)):
            return None
        return series, image_id, arr[offset:offset + length], alg


__all__ = ["ALG_BSLZ4", "ALG_LZ4", "ALG_NONE", "FOUND", "ImageScanner", "NOT_FOUND",
           "scan_image"]
