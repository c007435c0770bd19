"""MPX framing: ``MPX,`` + 10 ASCII digits + ``,`` + payload (protocols.md 2.2).

Both Merlin ports use it. The 10-digit number counts the bytes after the
digits, i.e. the comma plus the payload: ``payload length + 1``. Reading is
"exactly N bytes" everywhere, because TCP delivers a byte stream and one
``recv`` may return any part of a message.

Length fields are untrusted: a reader checks the magic and the digits before
believing the number, and reports the stream byte offset and the bytes it saw
when it does not, so a desynchronised stream can be diagnosed from the log.
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Callable, Optional, Union

from .errors import (MerlinConnectionClosed, MerlinProtocolError, MerlinStopped,
                     MerlinTimeout, MerlinTruncatedError)

MAGIC = b"MPX,"
PREFIX_LEN = 15  # "MPX," + 10 digits + ","
MAX_PAYLOAD = 9_999_999_998  # the 10 digits hold payload + 1

StopFlag = Union[threading.Event, Callable[[], bool], None]


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


def _is_stopped(stop: StopFlag) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


def recv_into_exactly(
    sock: socket.socket,
    view: memoryview | bytearray,
    *,
    timeout: Optional[float] = None,
    stop: StopFlag = None,
    poll: float = 0.1,
    what: str = "data",
    stream_offset: int = 0,
    at_boundary: bool = False,
) -> None:
    """Fill ``view`` completely from ``sock``.

    ``timeout`` is an inactivity limit (seconds without receiving a byte),
    so a slow but moving stream never times out while a stalled one does.
    With a ``stop`` flag (Event or callable) the wait is cut into ``poll``
    slices so that a stop request is noticed promptly.

    EOF before the first byte with ``at_boundary=True`` raises
    :class:`MerlinConnectionClosed` (clean end of stream); any other EOF
    raises :class:`MerlinTruncatedError` saying how far the read got.
    """
    mv = view if isinstance(view, memoryview) else memoryview(view)
    if mv.format != "B" or mv.ndim != 1:
        mv = mv.cast("B")
    total = len(mv)
    got = 0
    slice_t = timeout if stop is None else (poll if timeout is None else min(poll, timeout))
    sock.settimeout(slice_t)
    last_progress = time.monotonic()
    while got < total:
        try:
            n = sock.recv_into(mv[got:], total - got)
        except (socket.timeout, BlockingIOError):
            if _is_stopped(stop):
                raise MerlinStopped(
                    f"stopped while reading {what} at stream offset "
                    f"{stream_offset + got} ({got} of {total} bytes)") from None
            if timeout is not None and time.monotonic() - last_progress >= timeout:
                raise MerlinTimeout(
                    f"no data for {timeout:g} s while reading {what} at stream offset "
                    f"{stream_offset + got} ({got} of {total} bytes received)") from None
            continue
        if n == 0:
            if got == 0 and at_boundary:
                raise MerlinConnectionClosed(
                    f"connection closed by peer at stream offset {stream_offset} "
                    f"(between messages)")
            raise MerlinTruncatedError(
                f"connection closed by peer in the middle of {what}: got {got} of "
                f"{total} bytes, stream offset {stream_offset + got}")
        got += n
        if stop is not None or timeout is not None:
            last_progress = time.monotonic()


def recv_exactly(
    sock: socket.socket,
    n: int,
    *,
    timeout: Optional[float] = None,
    stop: StopFlag = None,
    what: str = "data",
    stream_offset: int = 0,
    at_boundary: bool = False,
) -> bytearray:
    """Receive exactly ``n`` bytes into a new bytearray (see :func:`recv_into_exactly`)."""
    buf = bytearray(n)
    recv_into_exactly(sock, buf, timeout=timeout, stop=stop, what=what,
                      stream_offset=stream_offset, at_boundary=at_boundary)
    return buf


class MpxReader:
    """Reads MPX messages from one socket and tracks the stream byte offset.

    The offset makes error messages point at the exact place where a stream
    went wrong ("bad magic at stream offset 1310822"). One reader per
    connection; not thread-safe.
    """

    def __init__(self, sock: socket.socket, *, timeout: Optional[float] = None,
                 stop: StopFlag = None, max_payload: int = 1 << 30):
        self.sock = sock
        self.timeout = timeout
        self.stop = stop
        self.max_payload = max_payload
        self.offset = 0  # bytes consumed from the stream so far
        self._prefix = bytearray(PREFIX_LEN)

    def recv_into(self, view: memoryview | bytearray, what: str = "data",
                  at_boundary: bool = False) -> None:
        """Fill ``view`` exactly, advancing :attr:`offset`."""
        recv_into_exactly(self.sock, view, timeout=self.timeout, stop=self.stop,
                          what=what, stream_offset=self.offset, at_boundary=at_boundary)
        self.offset += len(view) if not isinstance(view, memoryview) else view.nbytes

    def recv_exactly(self, n: int, what: str = "data") -> bytearray:
        buf = bytearray(n)
        self.recv_into(buf, what=what)
        return buf

    def read_prefix(self) -> int:
        """Read and validate one 15-byte prefix; return the payload length.

        EOF before the prefix's first byte raises :class:`MerlinConnectionClosed`.
        """
        start = self.offset
        self.recv_into(self._prefix, what="MPX prefix", at_boundary=True)
        n = parse_prefix(self._prefix, start)
        if n > self.max_payload:
            raise MerlinProtocolError(
                f"MPX message at stream offset {start} announces {n} payload bytes, "
                f"more than the limit of {self.max_payload} "
                f"(prefix {bytes(self._prefix)!r})")
        return n

    def read_message(self) -> bytearray:
        """Read one whole message and return its payload."""
        n = self.read_prefix()
        return self.recv_exactly(n, what=f"MPX payload ({n} bytes)")
