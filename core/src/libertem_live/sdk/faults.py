"""The one list of stream faults every simulator can inject.

A simulator maps each kind onto its own wire format and takes the same
spelling, as a constructor argument and as ``--fault`` on its command line:
``KIND`` or ``KIND@FRAME`` (0-based frame index where the fault happens;
default: the middle of the series).  The conformance kit knows which
exception each kind must end in (see ``libertem_live_testing.faults``).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class FaultKind(str, enum.Enum):
    FRAME_GAP = "frame_gap"
    """One frame is never sent; the next ones keep their own numbers."""
    DUPLICATE_FRAME = "duplicate_frame"
    """One frame is sent twice."""
    OUT_OF_ORDER = "out_of_order"
    """Two neighbouring frames are sent swapped."""
    TRUNCATED_PAYLOAD = "truncated_payload"
    """A frame's payload is shorter than its header says (where the wire
    format can carry that without losing the framing)."""
    CORRUPT_PAYLOAD = "corrupt_payload"
    """A frame's payload is garbage of the right length."""
    WRONG_FORMAT = "wrong_format"
    """A frame's shape or pixel type differs from the announced one."""
    ENDS_SHORT = "ends_short"
    """The series ends (with its end marker) before every frame was sent."""
    NEVER_ENDS = "never_ends"
    """Every frame is sent, but no end marker; the connection stays open."""
    STALL_MID_FRAME = "stall_mid_frame"
    """A frame stops half-way; the connection stays open and silent."""
    DISCONNECT_MID_STREAM = "disconnect_mid_stream"
    """The connection is closed in the middle of the series."""
    RESTART_BETWEEN = "restart_between"
    """The detector software restarts between two acquisitions (the
    connection drops and comes back)."""


@dataclass(frozen=True)
class Fault:
    """A fault to inject: its kind and the frame where it happens (None:
    the simulator picks the middle of the series)."""

    kind: FaultKind
    frame: int | None = None

    def at(self, nimages: int) -> int:
        """The 0-based frame index of the fault in a series of ``nimages``."""
        return nimages // 2 if self.frame is None else self.frame

    def __str__(self) -> str:
        return self.kind.value if self.frame is None else f"{self.kind.value}@{self.frame}"


def parse_fault(text: str | Fault | FaultKind) -> Fault:
    """``"frame_gap"``, ``"frame_gap@5"`` (or a Fault / FaultKind) -> Fault."""
    if isinstance(text, Fault):
        return text
    if isinstance(text, FaultKind):
        return Fault(text)
    name, _, where = str(text).partition("@")
    try:
        kind = FaultKind(name.strip().lower().replace("-", "_"))
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise ValueError(f"unknown fault {name!r}; known faults: {known}") from None
    if not where:
        return Fault(kind)
    try:
        frame = int(where)
    except ValueError:
        raise ValueError(f"fault {text!r}: the part after '@' must be a frame number") from None
    if frame < 0:
        raise ValueError(f"fault {text!r}: the frame number must not be negative")
    return Fault(kind, frame)
