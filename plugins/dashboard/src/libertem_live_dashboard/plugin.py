"""The dashboard's result hooks and its ``libertem-live dashboard`` command: a
frontend registers like a driver but provides no detector.  Cheap to import
(listing drivers and building the command line load this module)."""
from __future__ import annotations

from typing import Any

from libertem_live.driver import CommandInfo, hookimpl

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


@hookimpl
def libertem_live_commands() -> list[CommandInfo]:
    return [CommandInfo(name="dashboard", main="libertem_live_dashboard.cli:main",
                        help="serve the live dashboard in the browser and run acquisitions "
                             "for it")]
