"""Small helpers shared by the suite's tests."""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

PASSIVE_TIMEOUT = 20.0


def open_conn(ctx: Any, harness: Any, scenario: Any) -> Any:
    return ctx.make_connection(harness.name).open(**scenario.connection_params())


def wait_pending(conn: Any, scenario: Any, timeout: float = PASSIVE_TIMEOUT) -> Any:
    scenario.arm_passive(conn)
    pending = conn.wait_for_acquisition(timeout=timeout)
    assert pending is not None, (
        f"wait_for_acquisition returned None within {timeout} s although the simulator "
        "was armed for an acquisition")
    return pending


def make_acquisition(ctx: Any, sc: Any, conn: Any, mode: str, **kw: Any) -> Any:
    """An acquisition of the scenario in ``mode`` ("passive": armed by the
    simulator's own software, "active": by LiberTEM at the start of the run)."""
    if mode == "active":
        return ctx.make_acquisition(conn=conn, nav_shape=sc.nav_shape,
                                    controller=sc.active_controller(conn), **kw)
    if mode != "passive":
        raise ValueError(f"unknown mode {mode!r}")
    return ctx.make_acquisition(conn=conn, nav_shape=sc.nav_shape,
                                pending_aq=wait_pending(conn, sc), **kw)


def default_mode(harness: Any) -> str:
    """The mode of tests that are about something else (active if declared)."""
    return "active" if harness.capabilities.active else "passive"


def conn_timeout(conn: Any, sc: Any, default: float) -> float:
    """The connection's idle time-out (``timeout=`` of BaseConnection)."""
    value = getattr(conn, "timeout", None) or sc.connection_params().get("timeout")
    return float(value) if value else default


@dataclass
class Run:
    """What one acquisition came to: its results or its error, how long it
    took from the start of the UDF run (arming, in active mode) to its end,
    and the warnings it gave."""

    results: Any = None
    error: BaseException | None = None
    seconds: float = 0.0
    warnings: list[warnings.WarningMessage] = field(default_factory=list)

    def warned(self, category: type[Warning]) -> bool:
        return any(issubclass(w.category, category) for w in self.warnings)


def run_once(ctx: Any, sc: Any, conn: Any, mode: str, udfs: list[Any], **kw: Any) -> Run:
    """Arm (in ``mode``) and run ``udfs``; an acquisition error is caught and
    returned, not raised (the suite checks its class)."""
    run = Run()
    start = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            aq = make_acquisition(ctx, sc, conn, mode, **kw)
            start = time.monotonic()  # compiling the decoder is not the stream's time
            run.results = ctx.run_udf(dataset=aq, udf=udfs)
        except Exception as e:  # noqa: BLE001 - the suite checks the class
            run.error = e
    run.seconds = time.monotonic() - start
    run.warnings = list(caught)
    return run


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
