"""Fault injection for the simulator: what goes wrong, and at which frame.

A :class:`Fault` is armed with ``MerlinSim.inject_fault()`` and applies to the
next acquisition only. ``frame`` is 1-based and counts frames of that
acquisition. "…_AFTER" faults let frames ``1..frame`` through intact and act
afterwards; the others damage frame number ``frame`` itself.

What a receiver sees (with the reader in ``mpx.py`` / ``headers.py``):

=================  =========================================================
``ABORT_AFTER``     acquisition ends early; connection stays open, nothing
                    more is sent → read timeout (or the next acquisition's
                    ``HDR`` where a frame was expected)
``DISCONNECT_AFTER`` data connection closed on a frame boundary →
                    :class:`MerlinConnectionClosed`
``STALL_AFTER``     connection open, acquisition still "busy", no bytes until
                    ABORT/STOPACQUISITION → read timeout (:class:`MerlinTimeout`)
``TRUNCATE_FRAME``  half of frame ``frame``'s message, then close →
                    :class:`MerlinTruncatedError`
``SHORT_FRAME``     frame ``frame`` is a well-framed MPX message with half the
                    payload (frame size changes mid-acquisition); the stream
                    continues
``WRONG_SEQUENCE``  frame ``frame`` carries sequence number ``value``
                    (default ``frame + 1000``); the stream continues
``GARBAGE_HEADER``  frame ``frame``'s MQ1 header replaced by non-MQ1 bytes of
                    the same length → :class:`MerlinProtocolError` from
                    ``parse_frame_header``
``GARBAGE_PREFIX``  frame ``frame``'s 15-byte ``MPX,`` prefix replaced by
                    garbage → :class:`MerlinProtocolError` (bad magic)
=================  =========================================================
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Optional


class FaultKind(str, enum.Enum):
    ABORT_AFTER = "abort_after"
    DISCONNECT_AFTER = "disconnect_after"
    STALL_AFTER = "stall_after"
    TRUNCATE_FRAME = "truncate_frame"
    SHORT_FRAME = "short_frame"
    WRONG_SEQUENCE = "wrong_sequence"
    GARBAGE_HEADER = "garbage_header"
    GARBAGE_PREFIX = "garbage_prefix"


AFTER_KINDS = frozenset({FaultKind.ABORT_AFTER, FaultKind.DISCONNECT_AFTER,
                         FaultKind.STALL_AFTER})


@dataclass(frozen=True)
class Fault:
    """One fault for the next acquisition (see module docstring)."""

    kind: FaultKind
    frame: int
    value: Optional[int] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", FaultKind(self.kind))
        lo = 0 if self.kind in AFTER_KINDS else 1
        if self.frame < lo:
            raise ValueError(f"{self.kind.value}: frame must be >= {lo}, got {self.frame}")

    @property
    def acts_after(self) -> bool:
        """True for faults that act once ``frame`` frames were sent."""
        return self.kind in AFTER_KINDS


GARBAGE = b"GARBAGE-NOT-AN-MQ1-HEADER-"
