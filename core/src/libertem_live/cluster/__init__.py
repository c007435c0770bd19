"""Live processing on a dask.distributed cluster (see docs/cluster.rst).

The receiving process keeps the detector connection and its ring; each
partition's frames travel, as the detector sent them, inside its task to a
dask worker, which decodes and processes them.  Loaded only when a
``LiveContext`` gets a dask executor.
"""
from __future__ import annotations

from typing import Any

__all__ = ["LiveDaskExecutor", "SchedulerUnreachableError"]


def __getattr__(name: str) -> Any:
    # lazy: the scheduler imports libertem_live.cluster.remote, which must
    # not pull in LiberTEM through this package
    if name == "LiveDaskExecutor":
        from libertem_live.cluster.executor import LiveDaskExecutor
        return LiveDaskExecutor
    if name == "SchedulerUnreachableError":
        from libertem_live.cluster.watch import SchedulerUnreachableError
        return SchedulerUnreachableError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
