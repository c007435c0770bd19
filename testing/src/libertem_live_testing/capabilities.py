"""What a driver declares it supports; the suite skips the rest, saying why."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Mapping

from libertem_live.driver import FaultKind

#: the boolean capabilities the certification summary reports, in order
FEATURES = ("passive", "active", "nav_shape_from_detector", "nav_shape_can_be_unknown",
            "short_stream", "frames")

#: acquisition modes a mode-neutral test runs in (each one the driver declares)
MODES = ("passive", "active")


@dataclass(frozen=True)
class Capabilities:
    #: ``conn.wait_for_acquisition`` announces acquisitions started elsewhere
    passive: bool = True
    #: ``conn.get_active_controller`` arms the detector from LiberTEM
    active: bool = True
    #: the detector tells the scan shape (pending_aq.nav_shape is set)
    nav_shape_from_detector: bool = False
    #: the detector can announce an acquisition without its scan shape
    #: (scenario(announce_nav_shape=False)); False skips the square-fallback tests
    nav_shape_can_be_unknown: bool = True
    #: the harness can make a stream that ends (with its end marker) before all
    #: frames are sent: ``scenario(short_by=n)``
    short_stream: bool = True
    #: the harness can give the frames it sent (RecordUDF round trips, frame order)
    frames: bool = True
    #: the smallest and typical signal shape the simulator can produce
    sig_shape: tuple[int, int] = (16, 16)
    #: the stream faults the driver's simulator can inject: ``scenario(fault=...)``.
    #: Kinds or their names (``"frame_gap"``); every kind left out is reported
    #: "not declared" and keeps the driver from being certified.
    faults: frozenset[FaultKind] = frozenset()
    #: fault kinds the detector's wire format cannot carry at all, each with the
    #: reason (``{"corrupt_payload": "raw pixels have no checksum"}``); shown in
    #: the summary and not held against the verdict
    inexpressible: Mapping[Any, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        kinds = frozenset(FaultKind(k) for k in self.faults)
        object.__setattr__(self, "faults", kinds)
        reasons = {FaultKind(k): str(why) for k, why in dict(self.inexpressible).items()}
        both = kinds & set(reasons)
        if both:
            raise ValueError(f"fault kinds both declared and inexpressible: "
                             f"{sorted(k.value for k in both)}")
        if not all(reasons.values()):
            raise ValueError("every inexpressible fault kind needs its reason")
        object.__setattr__(self, "inexpressible", MappingProxyType(reasons))

    def missing(self, feature: str) -> str | None:
        """Why a test needing ``feature`` (a capability, or ``fault:KIND``) is skipped."""
        if feature.startswith("fault:"):
            return self.missing_fault(feature.partition(":")[2])
        if feature not in {f.name for f in fields(self)}:
            raise ValueError(f"unknown capability {feature!r}; known: {', '.join(FEATURES)}")
        if getattr(self, feature):
            return None
        return f"the driver declares no support for {feature!r}"

    def missing_fault(self, kind: Any) -> str | None:
        kind = FaultKind(kind)
        if kind in self.faults:
            return None
        if kind in self.inexpressible:
            return f"the wire format cannot carry {kind.value!r}: {self.inexpressible[kind]}"
        return (f"the driver's simulator declares no fault {kind.value!r} "
                "(Capabilities.faults)")
