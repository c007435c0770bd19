"""Errors of the Merlin driver, on the core's classes.

The data path raises the core's classes (and signals) unchanged: a frame
that does not decode is a :class:`DecodeError`, a lost connection a
:class:`DetectorConnectionError`, and so on.  What is Merlin's own is the
control port's answers (status codes that say what to do) and bytes that
do not follow the MPX/HDR/MQ1 formats, which the parsers raise and the
receiver turns into the core's errors with the frame named.
"""
from __future__ import annotations

from libertem_live.driver import (
    AcquisitionStateError, AcquisitionTimeoutError, DecodeError, DetectorConnectionError,
    FrameFormatError, LiveError,
)

__all__ = [
    "MerlinError", "MerlinProtocolError", "MerlinControlError", "MerlinBusyError",
    "MerlinUnknownCommandError", "MerlinOutOfRangeError", "MerlinControlTimeout",
    "MerlinStillSendingError",
    "control_error", "DecodeError", "FrameFormatError", "DetectorConnectionError",
]


class MerlinError(LiveError):
    """Base of the errors only a Merlin raises (catch it to catch all of them)."""


class MerlinProtocolError(MerlinError, ValueError):
    """Bytes on a Merlin socket do not follow the MPX/HDR/MQ1 formats.

    Raised for a bad ``MPX,`` magic, a non-digit length field and unparsable
    acquisition or frame headers.  The message quotes what was seen, so that
    a desynchronised stream can be diagnosed from the log alone.
    """


class MerlinStillSendingError(MerlinError, AcquisitionStateError):
    """Before arming, the data port kept delivering frames while the stale
    ones were discarded: the detector is acquiring for somebody else (a
    continuous acquisition, another program), and arming now would mix its
    frames into ours."""


class MerlinControlTimeout(MerlinError, AcquisitionTimeoutError):
    """The control port did not answer a request in time."""


class MerlinControlError(MerlinError):
    """The detector answered a control request with a non-zero status.

    ``status`` is the numeric code, ``request`` the request text we sent
    (``"SET,COUNTERDEPTH,7"``), ``name``/``value`` what it was about.
    """

    status: int = -1
    meaning: str = "unknown status"
    advice: str = "check the Merlin software log"

    def __init__(self, verb: str, name: str, value: str | None, status: int,
                 request: str):
        self.verb = verb
        self.name = name
        self.value = value
        self.status = status
        self.request = request
        what = f"{verb} {name}" + (f"={value}" if value is not None else "")
        super().__init__(
            f"Merlin rejected {what} with status {status} ({self.meaning}); "
            f"{self.advice} [request {request!r}]"
        )

    def __reduce__(self):  # noqa: ANN204 - pickles with its five arguments
        return (type(self), (self.verb, self.name, self.value, self.status, self.request))


class MerlinBusyError(MerlinControlError):
    """Status 1: the detector is busy (usually: an acquisition is running)."""

    meaning = "busy"
    advice = ("the detector is acquiring; wait until DETECTORSTATUS is 0 or send "
              "CMD STOPACQUISITION / ABORT, then retry")


class MerlinUnknownCommandError(MerlinControlError):
    """Status 2: the parameter or command name is not known to the detector."""

    meaning = "unrecognised command or parameter"
    advice = ("check the spelling (names are upper case, e.g. COUNTERDEPTH) and "
              "that this Merlin software version supports it")


class MerlinOutOfRangeError(MerlinControlError):
    """Status 3: the value is outside the parameter's allowed range."""

    meaning = "parameter out of range"
    advice = ("use a value the detector accepts (e.g. COUNTERDEPTH 1, 6, 12 or 24; "
              "TRIGGERSTART 0 internal or 5 soft)")


STATUS_ERRORS: dict[int, type[MerlinControlError]] = {
    1: MerlinBusyError,
    2: MerlinUnknownCommandError,
    3: MerlinOutOfRangeError,
}


def control_error(verb: str, name: str, value: str | None, status: int,
                  request: str) -> MerlinControlError:
    """Build the exception for a non-zero control status (unknown codes included)."""
    cls = STATUS_ERRORS.get(status, MerlinControlError)
    return cls(verb, name, value, status, request)
