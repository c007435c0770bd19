"""What each stream fault must end in: the table the suite checks drivers against.

One row per :class:`~libertem_live.driver.FaultKind`.  A driver passes a
fault when the first acquisition ends the way its row says (the exception
class, a message that names the frame, the ledger attached and balanced,
within the harness's ``fault_time_bound``) and the next acquisition on the
same connection gives the exact ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass

from libertem_live.driver import (
    AcquisitionError, DecodeError, DetectorConnectionError, FaultKind, FrameFormatError,
    FrameGapError, FrameOrderError, MissingEndWarning, StalledError, StreamTruncatedError,
)


@dataclass(frozen=True)
class Outcome:
    kind: FaultKind
    #: the class the run must raise (any subclass); None: the run must succeed
    error: type[AcquisitionError] | None
    #: what the user should see, for failure messages
    says: str
    #: a subclass the driver should prefer (informational)
    preferred: type[AcquisitionError] | None = None
    #: the run must warn this (and still give the exact result)
    warning: type[Warning] | None = None
    #: the error message must name the frame where the fault happened
    names_frame: bool = True
    #: the ledger must book at least this many frames missing
    min_missing: int = 0
    #: frames the ledger may count beyond the series: a duplicate is received
    #: twice; a frame that came late was already booked missing when its
    #: successor arrived first
    surplus: int = 0
    #: the ledger's first missing frame must be the fault's frame
    first_missing_at_fault: bool = False


def _row(kind: FaultKind, error: type[AcquisitionError] | None, says: str,
         **kw: object) -> tuple[FaultKind, Outcome]:
    return kind, Outcome(kind, error, says, **kw)  # type: ignore[arg-type]


OUTCOMES: dict[FaultKind, Outcome] = dict([
    _row(FaultKind.FRAME_GAP, FrameGapError,
         "a FrameGapError whose ledger books the missing frame",
         min_missing=1, first_missing_at_fault=True),
    _row(FaultKind.DUPLICATE_FRAME, FrameOrderError,
         "a FrameOrderError (a frame came twice)", surplus=1),
    _row(FaultKind.OUT_OF_ORDER, FrameOrderError,
         "a FrameOrderError (two frames came swapped)", surplus=1),
    _row(FaultKind.TRUNCATED_PAYLOAD, DecodeError,
         "a DecodeError (a payload shorter than its header says)"),
    _row(FaultKind.CORRUPT_PAYLOAD, DecodeError,
         "a DecodeError (a payload that cannot be decoded)"),
    _row(FaultKind.WRONG_FORMAT, DecodeError,
         "a DecodeError, preferably FrameFormatError (shape or pixel type differ from "
         "the announced ones)", preferred=FrameFormatError),
    _row(FaultKind.ENDS_SHORT, StreamTruncatedError,
         "a StreamTruncatedError as soon as the end marker came (not a time-out)"),
    _row(FaultKind.NEVER_ENDS, None,
         "success with the exact result and a MissingEndWarning (every frame came, the "
         "end marker did not)", warning=MissingEndWarning, names_frame=False),
    _row(FaultKind.STALL_MID_FRAME, StalledError,
         "a StalledError within the connection's timeout and a few seconds"),
    _row(FaultKind.DISCONNECT_MID_STREAM, DetectorConnectionError,
         "a DetectorConnectionError (the detector closed the connection)"),
    _row(FaultKind.RESTART_BETWEEN, None,
         "no error: a clean first acquisition, then the next one on the same connection "
         "object works although the detector software restarted in between",
         names_frame=False),
])

assert set(OUTCOMES) == set(FaultKind), "every FaultKind needs a row in OUTCOMES"


def outcome(kind: FaultKind | str) -> Outcome:
    return OUTCOMES[FaultKind(kind)]


def fault_frame(nimages: int) -> int:
    """Where the suite asks simulators to put a fault: mid-series, so that
    frames before and after it exist."""
    return nimages // 2 + 1
