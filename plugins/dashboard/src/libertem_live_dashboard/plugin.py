"""The dashboard's result hooks: a frontend registers like a driver but
provides no detector.  Cheap to import (listing drivers loads this module)."""
from __future__ import annotations

from typing import Any

from libertem_live.driver import hookimpl

from libertem_live_dashboard import hub


@hookimpl
def on_acquisition_started(env: Any) -> None:
    for state in hub.active():
        state.started(env)


@hookimpl
def on_partial_results(env: Any) -> None:
    for state in hub.active():
        state.partial(env)


@hookimpl
def on_acquisition_ended(env: Any) -> None:
    for state in hub.active():
        state.ended(env)
