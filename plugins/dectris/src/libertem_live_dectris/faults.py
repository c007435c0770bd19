"""Fault injection for the simulator: what can go wrong on a DECTRIS stream.

Each fault names an image index ``frame`` of the series (0-based). They are
applied to every series the simulator sends until cleared, so a test gets the
same misbehaviour on every arm. Kinds (protocols.md 1.6 lists the signals):

``drop``          image ``frame`` is not sent (``count`` consecutive images)
``duplicate``     image ``frame`` is sent twice
``corrupt``       image ``frame``'s blob is truncated to half (decode fails;
                  ``size`` in dimage_d matches the truncated blob)
``wrong_shape``   image ``frame``'s dimage_d has width and height + 8
``wrong_dtype``   image ``frame``'s dimage_d type/encoding use the next
                  wider pixel type (uint8->16, 16->32, 32->16)
``wrong_series``  ``count`` images from ``frame`` on carry series id + 1000
``end_early``     dseries_end is sent after ``frame`` images, series over
``stall``         after ``frame`` images nothing more is sent (socket stays
                  open) until disarm/abort/cancel or stop
``close``         after ``frame`` images the PUSH socket is closed; it is
                  bound again (same port) at the next arm
``stale``         before the header: a dseries_end and one image of the
                  previous series id (``frame`` is ignored)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

FAULT_KINDS = (
    "drop", "duplicate", "corrupt", "wrong_shape", "wrong_dtype", "wrong_series",
    "end_early", "stall", "close", "stale",
)

#: faults that end the image loop when reached
TERMINAL = ("end_early", "stall", "close")


@dataclass(frozen=True)
class Fault:
    kind: str
    frame: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}, expected one of {FAULT_KINDS}")
        if self.frame < 0 or self.count < 1:
            raise ValueError(f"fault needs frame >= 0 and count >= 1, got {self.frame}, {self.count}")

    def covers(self, k: int) -> bool:
        return self.frame <= k < self.frame + self.count


def parse_fault(spec: str | Fault | tuple) -> Fault:
    """Accept ``Fault``, ``("drop", 3)``, ``("drop", 3, 2)`` or ``"drop:3"`` / ``"drop:3:2"``."""
    if isinstance(spec, Fault):
        return spec
    if isinstance(spec, str):
        fields = spec.split(":")
        return Fault(fields[0], *(int(x) for x in fields[1:]))
    return Fault(*spec)


def parse_faults(specs: Iterable[str | Fault | tuple] | None) -> list[Fault]:
    return [parse_fault(s) for s in (specs or ())]


class FaultPlan:
    """Fast per-image lookup of the active faults of one series."""

    def __init__(self, faults: Iterable[Fault]) -> None:
        self.faults = list(faults)
        self.stale = any(f.kind == "stale" for f in self.faults)
        # first terminal fault position
        terms = [f for f in self.faults if f.kind in TERMINAL]
        self.terminal: Fault | None = min(terms, key=lambda f: f.frame) if terms else None
        self._per_image = [f for f in self.faults if f.kind not in TERMINAL and f.kind != "stale"]
        self.first = min((f.frame for f in self._per_image), default=None)

    def at(self, k: int) -> list[Fault]:
        """Per-image faults that apply to image ``k``."""
        if self.first is None or k < self.first:
            return []
        return [f for f in self._per_image if f.covers(k)]
