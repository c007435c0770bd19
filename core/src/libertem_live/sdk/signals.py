"""What a wire reader tells the receive loop, instead of a user-facing error.

A reader knows *what* happened on the socket (nothing came, the peer hung
up, a message stopped half-way); only the receive loop knows *where* the
acquisition stands (which frame, how many expected), so it turns these
signals into the :class:`~libertem_live.errors.AcquisitionError` the user
sees, with the ledger.  Drivers raise them from their framing code and
never have to write those messages themselves.
"""
from __future__ import annotations


class ReceiveSignal(Exception):
    """Base of the signals; ``detail`` says what the reader was reading."""

    def __init__(self, detail: str = ""):
        self.detail = detail
        super().__init__(detail)


class Stopped(ReceiveSignal):
    """The stop flag was raised while the reader waited.  Not an error: the
    acquisition is being cancelled or closed."""


class IdleTimeout(ReceiveSignal):
    """Nothing arrived at a message boundary within the allowed time.
    Nothing was consumed; the position in the stream is intact."""


class PeerClosed(ReceiveSignal):
    """The detector closed the connection at a message boundary."""


class Truncated(ReceiveSignal):
    """The connection ended in the middle of a message."""


class Stalled(ReceiveSignal):
    """A message started but its remaining bytes did not come in time."""


class EndOfSeries(ReceiveSignal):
    """The framing read the detector's end-of-series marker (an alternative to
    returning False from ``receive``, for code deep inside a parser)."""
