"""Errors of the ASI TPX3 driver, as subclasses of the core's classes.

Socket trouble (the server went away, a message stalled) is not an error
class of this driver: the reader raises the core's receive signals and the
core's receive loop turns them into :class:`DetectorConnectionError` or
:class:`StalledError` with the acquisition's ledger.  What is left here is
what only this wire format knows:

* :class:`Tpx3ProtocolError` - bytes that are not a valid TPX3 stream
  (unknown tag, impossible sizes, messages in an order the protocol does not
  allow).  It is a :class:`DecodeError`; the message says what, where
  (stream byte offset, chunk number) and what to do.
* :class:`Tpx3FormatError` - a valid encoding this driver cannot read (the
  bit-packed U1/U4 dtypes): a :class:`FrameFormatError`.
* :class:`Tpx3PassiveOnlyError` - active mode was asked for; the ASI
  software arms the detector.
"""
from __future__ import annotations

from typing import Any, Optional

from libertem_live.driver import DecodeError, FrameFormatError, PassiveOnlyError

__all__ = ["Tpx3ProtocolError", "Tpx3FormatError", "Tpx3PassiveOnlyError",
           "passive_only_error"]


def _where(offset: Optional[int], chunk: Optional[int]) -> str:
    parts = []
    if offset is not None:
        parts.append(f"stream byte offset {offset}")
    if chunk is not None:
        parts.append(f"chunk {chunk}")
    return ", ".join(parts)


class Tpx3ProtocolError(DecodeError, ValueError):
    """The stream content violates the ASI TPX3 protocol.

    ``offset``: byte offset of the offending header from the start of the
    connection; ``chunk``: number of the ArrayChunk within the current
    acquisition, from 0; ``hint``: what to do.  All three are attributes too,
    for structured logging.  A ValueError as well, because the pure parsing
    functions raise it for bad arguments.
    """

    def __init__(self, what: str, *, offset: Optional[int] = None,
                 chunk: Optional[int] = None,
                 hint: str = "the stream position is lost: close the connection and reconnect",
                 ) -> None:
        self.what = what
        self.offset = offset
        self.chunk = chunk
        self.hint = hint
        msg = what
        where = _where(offset, chunk)
        if where:
            msg += f" (at {where})"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)

    def __reduce__(self) -> Any:  # picklable across process boundaries (decoder workers)
        return (_rebuild, (type(self), self.what, self.offset, self.chunk, self.hint))


def _rebuild(cls: type, what: str, offset: Optional[int], chunk: Optional[int],
             hint: str) -> Tpx3ProtocolError:
    return cls(what, offset=offset, chunk=chunk, hint=hint)


class Tpx3FormatError(Tpx3ProtocolError, FrameFormatError):
    """A dtype code the protocol defines but no byte-addressable reader can
    use (bit-packed U1/U4): the frames have a pixel type this driver cannot
    decode."""


class Tpx3PassiveOnlyError(PassiveOnlyError):
    """Raised for active-mode calls on an ASI TPX3 connection."""


def passive_only_error(params: dict[str, Any]) -> Tpx3PassiveOnlyError:
    """The error for ``conn.get_active_controller(**params)``."""
    extra = f" (got parameters {sorted(params)})" if params else ""
    return Tpx3PassiveOnlyError(
        "ASI TPX3 supports passive mode only: the detector is armed and triggered from the "
        f"ASI software, LiberTEM cannot control it{extra}. Use "
        "`pending = conn.wait_for_acquisition(timeout)` and "
        "`ctx.make_acquisition(conn=conn, pending_aq=pending)` instead")
