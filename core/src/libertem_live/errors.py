"""Exceptions raised by the live stack.

Every error about a stream carries the acquisition's :class:`~libertem_live.ledger.Ledger`,
because "how many frames did we get, and where did it break?" is the first
question at the microscope when a scan goes wrong.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from libertem_live.ledger import Ledger


class LiveError(Exception):
    """Base class of every error the live stack raises on purpose."""


class DriverError(LiveError):
    """A detector driver could not be found, loaded or used."""


class UnknownDetectorError(DriverError, KeyError):
    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class NavShapeError(LiveError, ValueError):
    """The scan (navigation) shape could not be determined or does not fit."""


class NavShapeUnknownError(NavShapeError, RuntimeError):
    """Active mode, and nobody (argument, hook, controller) knows the scan
    shape, so the detector cannot be armed for a number of frames.  Also a
    ``RuntimeError``: scripts written for upstream LiberTEM-live catch that."""


class AcquisitionError(LiveError):
    """A live acquisition failed; ``ledger`` says how far it got."""

    def __init__(self, message: str, ledger: Ledger | None = None):
        self.message = message
        self.ledger = ledger
        super().__init__(message)

    def __str__(self) -> str:
        if self.ledger is None:
            return self.message
        return f"{self.message}\n  {self.ledger.describe()}"


class StreamTruncatedError(AcquisitionError):
    """The detector stopped sending before all expected frames arrived."""


class FrameOrderError(AcquisitionError):
    """Frames arrived out of sequence (gap, duplicate or foreign series)."""


class FrameGapError(FrameOrderError):
    """Frames are missing in the middle of the stream: the detector skipped
    them or the network lost them.  The ledger books them as missing."""


class DuplicateFrameError(FrameOrderError):
    """A frame arrived twice, or a frame older than the last one arrived
    (out of order)."""


class DecodeError(AcquisitionError):
    """A frame's payload could not be decoded (corrupt or truncated)."""


class FrameFormatError(DecodeError):
    """A frame's shape, pixel type or encoding differs from what the
    acquisition announced."""


class AcquisitionTimeoutError(AcquisitionError, TimeoutError):
    """No data arrived within the configured timeout."""


class StalledError(AcquisitionTimeoutError):
    """The detector stopped sending in the middle of a message."""


class DetectorConnectionError(AcquisitionError, ConnectionError):
    """The detector (or its simulator) could not be reached or went away."""


class MissingEndWarning(UserWarning):
    """Every expected frame arrived, but the detector's end-of-series marker
    did not follow in time.  The result is complete; the warning says the
    detector may still think it is acquiring."""


class AcquisitionStateError(LiveError, RuntimeError):
    """An acquisition or connection was used in a state that does not allow it."""


class PassiveOnlyError(AcquisitionStateError, NotImplementedError):
    """Active mode was asked of a detector that LiberTEM cannot arm (its own
    software starts every acquisition)."""


class WorkerDiedError(AcquisitionError, RuntimeError):
    """A worker process died during a run (killed, out of memory, crashed).

    The worker processes are restarted before this reaches the caller, so
    the next run in the same context works; ``worker`` is the index of the
    one that died."""

    worker: int | None = None
