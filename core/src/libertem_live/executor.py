"""The default executor of a LiveContext.

LiberTEM's ``PipelinedExecutor`` does not wait for in-flight tasks when a
run is cancelled (a live stream that failed); their late responses are
ignored by the next ``run_tasks`` but confuse ``run_function`` (used by
``ctx.load``), which expects the next response to be its own.  This
subclass skips such stale task responses there.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import cloudpickle
from opentelemetry import trace
from libertem.executor.pipelined import PipelinedExecutor

T = TypeVar("T")


class LivePipelinedExecutor(PipelinedExecutor):
    def _run_function(self, fn: Callable[..., T], worker_idx: int, *args: Any,
                      **kwargs: Any) -> T:
        self._validate_worker_state()
        qs = self._pool.get_worker_queues(worker_idx)
        f = functools.partial(fn, *args, **kwargs)
        qs.request.put({"type": "RUN_FUNCTION", "fn": cloudpickle.dumps(f),
                        "span_context": trace.get_current_span().get_span_context()})
        while True:
            with qs.response.get() as (response, _):
                kind = response["type"]
                if "uuid" in response and kind in ("RESULT", "ERROR"):
                    continue  # a late answer of a cancelled run
                if kind == "ERROR":
                    if "exception" in response:
                        raise response["exception"]
                    raise RuntimeError(f"failed to run function: {response['error']}")
                if kind != "RUN_FUNCTION_RESULT":
                    raise RuntimeError(f"invalid response type: {kind}")
                return response["result"]
