"""Small helpers shared by the suite's tests."""
from __future__ import annotations

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
