"""Every place where libertem-live reaches into LiberTEM's private API.

LiberTEM has no public way to wrap a UDF run (arm before, always stop after)
or to choose the executor a bare ``Context()`` makes, and its pipelined
executor's task loop leaves workers and queues in a bad state when a run
ends by Ctrl-C, a closed result iterator or a killed worker.  So these
private methods are overridden, here and nowhere else:

* ``Context._run_sync``: every ``run_udf`` / ``run_udf_iter`` goes through it;
  :class:`ContextOverrides` hands it to ``LiveContext._live_run``.
* ``Context._create_local_executor``: what ``Context(executor=None)`` makes;
  handed to ``LiveContext._default_executor``.
* ``PipelinedExecutor._run_function``: a copy of LiberTEM's that first
  collects the answers an ended run still owes (see
  :class:`LivePipelinedExecutor`); it uses ``_pool.get_worker_queues``.
* ``PipelinedExecutor._validate_worker_state``: restarts a pool with a dead
  worker instead of refusing every later run.
* ``PipelinedExecutor._start_pool`` / ``_restart_pool`` and ``__init__``'s
  ``early_setup``: worker set-up that survives a restart of the pool.
* ``PipelinedExecutor.run_tasks`` (public, but its loop is replaced):
  :mod:`libertem_live.tasks` drives the workers with LiberTEM's worker
  protocol (``worker_run_task``: ``RUN_TASK`` ... ``END_TASK``, answers with
  the run's ``uuid`` on the pool's ``response_queue``).

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
import time
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
    "libertem.executor.pipelined:PipelinedExecutor._start_pool": "(self)",
    "libertem.executor.pipelined:PipelinedExecutor._restart_pool": "(self)",
    "libertem.executor.pipelined:PipelinedExecutor.__init__":
        "(self, spec=None, pin_workers=True, startup_timeout=30.0, cleanup_timeout=10.0, "
        "early_setup=None, main_process_gpu=None)",
    "libertem.executor.pipelined:WorkerPool.get_worker_queues": "(self, worker_idx)",
    "libertem.executor.pipelined:worker_run_task":
        "(header, work_mem, queues, worker_idx, env)",
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
    """LiberTEM's ``PipelinedExecutor`` with the task loop of
    :mod:`libertem_live.tasks`, which survives runs that end at any moment
    (errors, Ctrl-C, a closed result iterator, a killed worker): answers
    still owed are collected before anything new is sent to the workers,
    also before ``close()`` shuts them down, and a dead pool is restarted.

    Workers ignore SIGINT (:func:`libertem_live.interrupts.ignore_in_worker`)
    and keep freed heap memory (:mod:`libertem_live.heap`), set up as they
    start, so a restarted pool is the same as the first.
    ``pool_generation`` counts the pools started; per-worker state the main
    process keeps (compiled decoders) is valid for one generation.
    """

    def __init__(self, *args: Any, early_setup: Callable[[], None] | None = None,
                 **kwargs: Any) -> None:
        from libertem_live.tasks import TaskLoop
        self.pool_generation = 0
        self._loop = TaskLoop(
            pool=lambda: self._pool, restart=self._restart_pool,
            available=self.get_available_workers,
            answer_timeout=kwargs.get("cleanup_timeout", 10.0))
        super().__init__(*args, early_setup=functools.partial(_setup_worker, early_setup),
                         **kwargs)

    def _start_pool(self) -> Any:
        pool = super()._start_pool()
        self.pool_generation += 1
        return pool

    def run_tasks(self, tasks: Any, params_handle: Any, cancel_id: Any,
                  task_comm_handler: Any) -> Any:
        from libertem_live.tasks import in_order
        with task_comm_handler.monitor(self._pool.message_queue):
            yield from in_order(self._loop.run(
                tasks, params_handle, task_comm_handler, selector=self._worker_selector))

    def _restart_pool(self) -> None:
        _kill_pool(self._pool)
        self._pool = self._start_pool()

    def close(self) -> None:
        if not self._closed:
            try:
                self._loop.settle(restart=False)
            except Exception:
                pass  # a pool that cannot even be restarted is still shut down below
            if self._loop.broken() is not None:
                _kill_pool(self._pool)
                self._closed = True
                return
        super().close()

    def _validate_worker_state(self) -> None:
        """LiberTEM's refuses to go on with a dead worker; ours restarts the
        pool (the run that lost the worker already reported it)."""
        self._loop.settle()

    def _run_function(self, fn: Callable[..., T], worker_idx: int, *args: Any,
                      **kwargs: Any) -> T:
        self._loop.settle()
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


def _kill_pool(pool: Any) -> None:
    """Kill every worker of ``pool`` and close its queues (LiberTEM's
    ``WorkerPool.kill`` leaves the progress-message queue open) without
    leaving a thread behind.  Messages for a worker that died can fill its request
    pipe; the queue's feeder thread then blocks writing forever (the main
    process holds the pipe's other end).  Reading the pipe empty lets it
    finish."""
    try:
        requests = [info.queues.request for info in pool.workers]
    except Exception:  # killed already (a restart that failed to start new workers)
        return
    pool.kill()
    for request in requests:
        _drain_pipe(getattr(request, "q", None))
    pool.close_mesg_queue()


def _drain_pipe(mp_queue: Any, timeout: float = 5.0) -> None:
    feeder = getattr(mp_queue, "_thread", None)
    reader = getattr(mp_queue, "_reader", None)
    if feeder is None or reader is None:
        return
    deadline = time.monotonic() + timeout
    while feeder.is_alive() and time.monotonic() < deadline:
        try:
            while reader.poll(0.02):
                reader.recv_bytes()
        except (OSError, EOFError):
            return


def _setup_worker(user_setup: Callable[[], None] | None) -> None:
    """Runs first in every worker process, also after a restart."""
    from libertem_live.heap import keep_freed_memory
    from libertem_live.interrupts import ignore_in_worker
    from libertem_live.lifeline import exit_with_parent
    ignore_in_worker()
    exit_with_parent()
    keep_freed_memory()
    if user_setup is not None:
        user_setup()
