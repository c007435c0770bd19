"""The Merlin wire format without I/O: MPX framing and what a stream's first
frame says about every frame after it.

MPX framing, used on both ports: ``MPX,`` + 10 ASCII digits + ``,`` + payload.
The 10-digit number counts the bytes after the digits, i.e. the comma plus
the payload: ``payload length + 1``.  Length fields are untrusted: a reader
checks the magic and the digits before believing the number, and reports the
stream byte offset and the bytes it saw when it does not, so that a
desynchronised stream can be diagnosed from the log.

The MPX stream has no end-of-series message: a series is over when the
frame count of its acquisition header was reached, and the next bytes on
the data socket are the next acquisition's header.  The headers themselves
(``HDR`` and ``MQ1``) are parsed in :mod:`.headers`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np

from libertem_live.driver import DecodeError, FrameFormat, FrameFormatError

from .decode import MerlinDecoder
from .errors import MerlinError, MerlinProtocolError
from .headers import AcquisitionHeader, FrameHeader

MAGIC = b"MPX,"
PREFIX_LEN = 15  # "MPX," + 10 digits + ","
MAX_PAYLOAD = 9_999_999_998  # the 10 digits hold payload + 1
MAX_HEADER_MESSAGE = 1 << 20  # an HDR larger than this is garbage, not a header


def build_prefix(payload_len: int) -> bytes:
    """The 15-byte ``MPX,NNNNNNNNNN,`` prefix for a payload of ``payload_len`` bytes."""
    if not 0 <= payload_len <= MAX_PAYLOAD:
        raise ValueError(f"MPX payload length {payload_len} out of range 0..{MAX_PAYLOAD}")
    return b"MPX,%010d," % (payload_len + 1)


def build_message(payload: bytes | bytearray | memoryview) -> bytes:
    """One complete MPX message (prefix + payload)."""
    return build_prefix(len(payload)) + bytes(payload)


def parse_prefix(prefix: bytes | bytearray | memoryview, stream_offset: int = 0) -> int:
    """Validate a 15-byte MPX prefix and return the payload length it announces.

    ``stream_offset`` is where the prefix started in the stream; it only goes
    into error messages.
    """
    p = bytes(prefix[:PREFIX_LEN])
    if len(p) != PREFIX_LEN:
        raise MerlinProtocolError(
            f"MPX prefix at stream offset {stream_offset} is {len(p)} bytes, "
            f"need {PREFIX_LEN}: {p!r}")
    if p[:4] != MAGIC:
        raise MerlinProtocolError(
            f"bad MPX magic at stream offset {stream_offset}: expected b'MPX,', "
            f"got {p[:4]!r} (first {PREFIX_LEN} bytes: {p!r}); the stream is not "
            f"MPX-framed or lost synchronisation")
    digits = p[4:14]
    if not digits.isdigit():
        raise MerlinProtocolError(
            f"MPX length field at stream offset {stream_offset + 4} is not 10 ASCII "
            f"digits: {digits!r} (prefix {p!r})")
    if p[14:15] != b",":
        raise MerlinProtocolError(
            f"MPX prefix at stream offset {stream_offset} lacks the ',' after the "
            f"length at offset {stream_offset + 14}: got {p[14:15]!r} (prefix {p!r})")
    n = int(digits)
    if n < 1:
        raise MerlinProtocolError(
            f"MPX length at stream offset {stream_offset + 4} is {n}; it counts the "
            f"comma, so it must be >= 1 (prefix {p!r})")
    return n - 1


# --- the frame format a stream announces -------------------------------------------

#: counter depth -> the dtype that holds its values
DEPTH_DTYPES = {1: np.uint8, 6: np.uint8, 12: np.uint16, 24: np.uint32}
_FORMAT_DTYPES = {"U01": np.uint8, "U08": np.uint8, "U16": np.uint16, "U32": np.uint32,
                  "U64": np.uint64}


def dtype_for(pixel_format: str, counter_depth: Optional[int]) -> np.dtype:
    """The natural dtype of decoded frames: by counter depth, else by pixel format."""
    if counter_depth in DEPTH_DTYPES:
        return np.dtype(DEPTH_DTYPES[counter_depth])
    if pixel_format in _FORMAT_DTYPES:
        return np.dtype(_FORMAT_DTYPES[pixel_format])
    raise FrameFormatError(
        f"cannot tell the pixel dtype of {pixel_format} frames without a counter depth "
        "(no MQ1A extension in the frame header and none in the acquisition header)")


def frame_format_for(first: FrameHeader, hdr: Optional[AcquisitionHeader],
                     extra: Optional[dict[str, Any]] = None) -> FrameFormat:
    """The FrameFormat that the first frame's MQ1 header defines (passive mode)."""
    depth = first.counter_depth
    if depth is None and hdr is not None:
        depth = hdr.counter_depth
    if first.is_raw and first.counter_depth is None and depth is not None:
        first = dataclasses.replace(first, counter_depth=depth)
    try:
        decoder = MerlinDecoder.from_frame_header(first)
    except (MerlinError, DecodeError) as e:
        raise FrameFormatError(f"the first frame's header describes frames this driver "
                               f"cannot decode: {e}") from None
    meta: dict[str, Any] = {
        "detector": "merlin", "pixel_format": first.pixel_format, "layout": first.layout,
        "counter_depth": depth, "frame_header": first,
    }
    if hdr is not None:
        meta["acquisition_header"] = dict(hdr.raw)
    if extra:
        meta.update(extra)
    return FrameFormat(sig_shape=decoder.sig_shape, dtype=dtype_for(first.pixel_format, depth),
                       decoder=decoder, metadata=meta)


def same_encoding(a: MerlinDecoder, b: MerlinDecoder) -> bool:
    """Whether two decoders read the same bytes the same way (layout only matters raw)."""
    def fmt(d: MerlinDecoder) -> str:
        return "U08" if d.pixel_format == "U01" else d.pixel_format  # both 1 byte/pixel
    if (fmt(a), a.sig_shape, a.payload_size) != (fmt(b), b.sig_shape, b.payload_size):
        return False
    if a.pixel_format == "R64":
        return (a.counter_depth, a.layout) == (b.counter_depth, b.layout)
    return True


def mq1_tail(head: bytes | bytearray) -> bytes:
    """Fields 2..7 of the MQ1 header in ``head`` (MPX prefix + header): data
    offset, chips, width, height, format, layout, with their commas; constant
    over an acquisition."""
    parts = bytes(head[PREFIX_LEN:]).split(b",", 8)
    return b",".join(parts[2:8]) + b","
