"""The executors a LiveContext can run on, chosen by name or made by default.

Live acquisitions need an executor that hands each task its worker queue:
LiberTEM's ``PipelinedExecutor`` (streams frames to worker processes; our
subclass :class:`LivePipelinedExecutor` also survives cancelled runs) or the
``InlineJobExecutor`` (everything in this process, for debugging).
"""
from __future__ import annotations

import os
from typing import Any

from libertem_live._libertem_compat import LivePipelinedExecutor

#: Seconds the worker processes may take to start (LiberTEM's default is 30):
#: on a machine busy with the detector's own software, importing LiberTEM and
#: numba in every worker at once can take longer, and failing then helps nobody.
STARTUP_TIMEOUT_S = 120.0

#: Names ``LiveContext(executor=...)`` accepts instead of an executor object.
EXECUTOR_NAMES = ("pipelined", "inline")


def make_default_executor() -> LivePipelinedExecutor:
    """One worker process per CPU core this process may run on (and per CUDA
    device), unpinned: other programs (the detector's own software) share them."""
    from libertem.utils.devices import detect

    devices = detect()
    cpus = devices["cpus"]
    if hasattr(os, "sched_getaffinity"):
        cpus = list(range(min(len(cpus), len(os.sched_getaffinity(0)))))
    return LivePipelinedExecutor(
        spec=LivePipelinedExecutor.make_spec(
            cpus=cpus or [0], cudas=devices["cudas"], has_cupy=devices["has_cupy"],
        ),
        pin_workers=False,
        startup_timeout=STARTUP_TIMEOUT_S,
    )


def executor_named(name: str) -> Any:
    """The executor for one of :data:`EXECUTOR_NAMES`."""
    if name == "pipelined":
        return make_default_executor()
    if name == "inline":
        from libertem.executor.inline import InlineJobExecutor
        return InlineJobExecutor()
    raise ValueError(
        f"unknown executor {name!r}: LiveContext(executor=...) takes one of "
        f"{', '.join(repr(n) for n in EXECUTOR_NAMES)}, None (the default, 'pipelined') "
        "or a LiberTEM executor object"
    )


__all__ = ["EXECUTOR_NAMES", "LivePipelinedExecutor", "executor_named",
           "make_default_executor"]
