"""What a driver declares it supports; the suite skips the rest, saying why."""
from __future__ import annotations

from dataclasses import dataclass


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
    #: the harness can make a stream that ends before all frames are sent
    short_stream: bool = True
    #: the harness can give the frames it sent (for RecordUDF round trips)
    frames: bool = True
    #: the smallest and typical signal shape the simulator can produce
    sig_shape: tuple[int, int] = (16, 16)

    def missing(self, feature: str) -> str | None:
        if getattr(self, feature):
            return None
        return f"the driver declares no support for {feature!r}"
