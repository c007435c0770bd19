"""Every place where libertem-live reaches into LiberTEM's private API.

LiberTEM has no public way to wrap a UDF run (arm before, always stop after)
or to choose the executor a bare ``Context()`` makes, and its pipelined
executor mishandles late answers of a cancelled run.  So three private
methods are overridden, here and nowhere else:

* ``Context._run_sync``: every ``run_udf`` / ``run_udf_iter`` goes through it;
  :class:`ContextOverrides` hands it to ``LiveContext._live_run``.
* ``Context._create_local_executor``: what ``Context(executor=None)`` makes;
  handed to ``LiveContext._default_executor``.
* ``PipelinedExecutor._run_function``: a copy of LiberTEM's that skips stale
  task answers (see :class:`LivePipelinedExecutor`); it uses the executor's
  private ``_validate_worker_state`` and ``_pool.get_worker_queues``.

``core/pyproject.toml`` pins LiberTEM to the minor series these were checked
against; :func:`mismatches` compares the live LiberTEM with what this module
expects (signatures, and the source of the method we copied), and the core's
test suite fails naming the symbol when LiberTEM moves.  When it does: read
LiberTEM's new code, adapt the override here, update :data:`EXPECTED`, and
widen the pin.
"""
from __future__ import annotations

import functools
import hashlib
import importlib
import inspect
import re
from typing import Any, Callable, TypeVar

import cloudpickle
from libertem.api import Context
from libertem.executor.pipelined import PipelinedExecutor
from opentelemetry import trace

T = TypeVar("T")

#: LiberTEM versions this module was checked against (``major.minor``).
CHECKED_SERIES = "0.16"

#: Private LiberTEM symbols we override or call, with the parameter list we
#: rely on (``inspect.signature`` with annotations dropped).
EXPECTED: dict[str, str] = {
    "libertem.api:Context._run_sync":
        "(self, dataset, udf, roi, corrections, progress, backends, plots, iterate, "
        "copy_needed=False)",
    "libertem.api:Context._create_local_executor": "(self)",
    "libertem.executor.pipelined:PipelinedExecutor._run_function":
        "(self, fn, worker_idx, *args, **kwargs)",
    "libertem.executor.pipelined:PipelinedExecutor._validate_worker_state": "(self)",
    "libertem.executor.pipelined:WorkerPool.get_worker_queues": "(self, worker_idx)",
}

#: Digest of LiberTEM's ``PipelinedExecutor._run_function`` source (comments and
#: blank lines dropped) that our copy in :class:`LivePipelinedExecutor` follows.
COPIED_SOURCE = {
    "libertem.executor.pipelined:PipelinedExecutor._run_function": "1edbbcb2b2230229",
}


def _resolve(path: str) -> Any:
    module, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _plain_signature(fn: Any) -> str:
    sig = inspect.signature(fn)
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def source_digest(fn: Any) -> str:
    """A digest of ``fn``'s code that ignores comments, blank lines and indentation."""
    lines = []
    for line in inspect.getsource(fn).splitlines():
        line = re.sub(r"#.*$", "", line).strip()
        if line:
            lines.append(line)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def mismatches() -> list[str]:
    """What differs between the installed LiberTEM and what this module expects;
    empty when the overrides are still sound."""
    import libertem
    problems = []
    version = getattr(libertem, "__version__", "?")
    if not version.startswith(CHECKED_SERIES + "."):
        problems.append(
            f"LiberTEM {version} is installed, but libertem_live._libertem_compat was "
            f"checked against {CHECKED_SERIES}.x")
    for path, expected in EXPECTED.items():
        try:
            found = _plain_signature(_resolve(path))
        except (ImportError, AttributeError) as e:
            problems.append(f"{path} is gone from LiberTEM {version} ({e})")
            continue
        if found != expected:
            problems.append(f"{path} has the signature {found}, expected {expected}")
    for path, digest in COPIED_SOURCE.items():
        try:
            found = source_digest(_resolve(path))
        except (ImportError, AttributeError, OSError) as e:
            problems.append(f"{path}: cannot read its source ({e})")
            continue
        if found != digest:
            problems.append(
                f"{path} changed in LiberTEM {version} (source digest {found}, expected "
                f"{digest}): libertem_live._libertem_compat.LivePipelinedExecutor._run_function "
                "is a copy of it; port the change")
    return problems


class ContextOverrides(Context):
    """The two ``Context`` privates, handed on to methods of our own names
    (``LiveContext`` implements them)."""

    def _create_local_executor(self) -> Any:
        return self._default_executor()

    def _run_sync(self, dataset: Any, udf: Any, roi: Any, corrections: Any, progress: Any,
                  backends: Any, plots: Any, iterate: bool, copy_needed: bool = False) -> Any:
        def libertem_run(iterate: bool = iterate) -> Any:
            return super(ContextOverrides, self)._run_sync(
                dataset, udf, roi, corrections, progress, backends, plots, iterate,
                copy_needed)
        return self._live_run(dataset, udf, roi, iterate, libertem_run)

    def _default_executor(self) -> Any:
        raise NotImplementedError

    def _live_run(self, dataset: Any, udf: Any, roi: Any, iterate: bool,
                  libertem_run: Callable[..., Any]) -> Any:
        """``libertem_run()`` runs as asked; ``libertem_run(iterate=True)``
        returns LiberTEM's result generator even for ``run_udf``."""
        return libertem_run()


class LivePipelinedExecutor(PipelinedExecutor):
    """LiberTEM's ``PipelinedExecutor`` that tolerates stale task answers.

    It does not wait for in-flight tasks when a run is cancelled (a live stream
    that failed); their late answers are ignored by the next ``run_tasks`` but
    confuse ``run_function`` (used by ``ctx.load``), which expects the next
    answer on the worker's queue to be its own.  This copy of
    ``_run_function`` skips them.
    """

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
