"""Optional run hooks a UDF can implement to act on the *main* process
before arming and after the acquisition ended (the LiveContext calls them)."""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class LiveRunAware(Protocol):
    def before_live_run(self, dataset: Any) -> None:
        """Called before the detector is armed; raise to refuse the run."""

    def after_live_run(self, dataset: Any, error: BaseException | None) -> None:
        """Called once the run is over; ``error`` is None when it completed."""
