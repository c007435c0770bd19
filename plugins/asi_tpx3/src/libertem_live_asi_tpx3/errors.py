"""Exception types shared by the TPX3 wire layer.

Kept in their own module so that the reader, the decoder (which runs in
worker processes) and the receiver can catch the same classes without
importing each other. The split follows what the caller has to do next:

* :class:`Tpx3ProtocolError` - the bytes are not a valid stream (unknown tag,
  wrong order, impossible sizes). The position in the stream cannot be
  trusted any more: drop the connection and reconnect.
* :class:`Tpx3StreamError` - the transport broke in the middle of a message
  (EOF or a stall mid-payload). Same remedy: reconnect.
* :class:`Tpx3Closed` - the peer closed the connection cleanly *between*
  messages. Not corrupt; reconnect if more data is expected.
* :class:`Tpx3IdleTimeout` - nothing arrived at a message boundary within the
  requested time. Nothing was consumed; the caller may simply call again.
* :class:`Tpx3Stopped` - the caller's stop flag was raised while waiting.
"""
from __future__ import annotations

from typing import Optional

__all__ = [
    "Tpx3Error",
    "Tpx3ProtocolError",
    "Tpx3StreamError",
    "Tpx3Closed",
    "Tpx3IdleTimeout",
    "Tpx3Stopped",
    "Tpx3OrderError",
    "Tpx3Stall",
]


class Tpx3Error(Exception):
    """Base class for every error raised by this package's wire layer."""


def _where(offset: Optional[int], chunk: Optional[int]) -> str:
    parts = []
    if offset is not None:
        parts.append(f"stream byte offset {offset}")
    if chunk is not None:
        parts.append(f"chunk {chunk}")
    return ", ".join(parts)


class Tpx3ProtocolError(Tpx3Error, ValueError):
    """The stream content violates the ASI TPX3 protocol.

    The message says what was wrong, where (``offset``: byte offset of the
    offending header counted from the start of the connection; ``chunk``:
    number of the ArrayChunk within the current acquisition, counted from 0)
    and what to do (``hint``). All three are also available as attributes so
    that a receiver can log them in a structured way.
    """

    def __init__(
        self,
        what: str,
        *,
        offset: Optional[int] = None,
        chunk: Optional[int] = None,
        hint: str = "the stream position is lost: close the connection and reconnect",
    ) -> None:
        self.what = what
        self.offset = offset
        self.chunk = chunk
        self.hint = hint
        where = _where(offset, chunk)
        msg = what
        if where:
            msg += f" (at {where})"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)

    def __reduce__(self):  # keep picklable across process boundaries
        return (_rebuild_protocol_error,
                (type(self), self.what, self.offset, self.chunk, self.hint))


def _rebuild_protocol_error(cls, what, offset, chunk, hint) -> "Tpx3ProtocolError":
    return cls(what, offset=offset, chunk=chunk, hint=hint)


class Tpx3OrderError(Tpx3ProtocolError):
    """Valid headers in an order protocols.md 3.4 does not allow.

    Separate from malformed bytes because the receiver reports it as a frame
    order problem (the scan's frames cannot be placed), not as corrupt data.
    """


class Tpx3StreamError(Tpx3Error, ConnectionError):
    """The connection broke or stalled in the middle of a message.

    Since the remaining length of the message is unknown to the peer's next
    bytes, the stream cannot be resynchronised: reconnect.
    """


class Tpx3Stall(Tpx3StreamError, TimeoutError):
    """The peer stopped sending in the middle of a message for too long."""


class Tpx3Closed(Tpx3Error, EOFError):
    """The peer closed the connection cleanly at a message boundary."""


class Tpx3IdleTimeout(Tpx3Error, TimeoutError):
    """No byte of the next message arrived in time; nothing was consumed."""


class Tpx3Stopped(Tpx3Error, InterruptedError):
    """The caller's stop condition became true while waiting for data."""
