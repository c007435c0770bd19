"""Exceptions of the Merlin wire layer.

They live in one module so that the socket code, the parsers, the decoder and
the control client can raise the same types without importing each other, and
so that callers (the core receiver, tests) can catch one family per failure
kind: framing/parsing (:class:`MerlinProtocolError`), control status codes
(:class:`MerlinControlError`), payload decoding (:class:`DecodeError`).
"""
from __future__ import annotations


class MerlinError(Exception):
    """Base class of every error this package raises on purpose."""


class MerlinProtocolError(MerlinError):
    """Bytes on a Merlin socket do not follow the MPX/HDR/MQ1 protocol.

    Raised for a bad ``MPX,`` magic, a non-digit length field, EOF in the
    middle of a message, and unparsable acquisition or frame headers. The
    message quotes what was seen, so that a desynchronised stream can be
    diagnosed from the log alone.
    """


class MerlinTruncatedError(MerlinProtocolError):
    """The peer closed the connection in the middle of a message."""


class MerlinConnectionClosed(MerlinError, ConnectionError):
    """The peer closed the connection cleanly, on a message boundary.

    Not a protocol violation by itself (the Merlin protocol has no end
    message), but a reader waiting for more frames must treat it as the end
    of the stream.
    """


class MerlinTimeout(MerlinError, TimeoutError):
    """No (or not enough) data arrived within the allowed time."""


class MerlinStopped(MerlinError):
    """A blocking read was abandoned because the caller asked to stop."""


class DecodeError(MerlinError, ValueError):
    """A frame payload cannot be decoded (wrong size, unsupported format)."""


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
