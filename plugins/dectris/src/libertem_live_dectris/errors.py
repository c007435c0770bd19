"""Errors of the DECTRIS driver.

Everything about the stream (nothing came, the detector went away, a gap in
the frame numbers, a series that ended early) is raised as the core's classes
by the core's receive loop, or by :mod:`.receiver` as the core's
:class:`FrameOrderError` / :class:`FrameFormatError`.  What is left here is
what only this detector has:

* :class:`DetectorAPIError` - a SIMPLON REST request failed (no answer,
  refused, or an error reply); it keeps the URL, the HTTP status and the
  reply so that scripts can tell "unreachable" from "setting refused".
* :class:`PayloadError` - an image's pixels do not decode as their
  descriptor says.  Raised in the LiberTEM workers by the decoder, which only
  knows the frame's place in its batch: it is a ``ValueError`` with
  ``index`` (the place in the batch), and the core turns it into its
  :class:`DecodeError` naming the acquisition's frame number.
"""
from __future__ import annotations

from libertem_live.driver import LiveError

__all__ = ["DetectorAPIError", "PayloadError"]


class DetectorAPIError(LiveError, RuntimeError):
    """A SIMPLON request failed: no answer, refused, or a non-2xx reply."""

    def __init__(self, message: str, url: str, status: int | None = None,
                 body: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status
        self.body = body


class PayloadError(ValueError):
    """A payload could not be decoded (corrupt, truncated, wrong size or type).

    ``index`` is the failing frame's position in the decoded batch, when
    known (the caller knows which frame of the acquisition that is)."""

    index: int | None = None
