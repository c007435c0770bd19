"""The task loop of the live executor: LiberTEM's worker processes, driven so
that a run can end at any moment and the next one still works.

A live run ends early often: the detector fails, a frame is missing, a UDF
raises, the user presses Ctrl-C or closes ``run_udf_iter``, a worker process
is killed.  Whatever the cause, the loop keeps three promises:

* every task a worker was sent is closed (its ``END_TASK`` goes out, with
  SIGINT held for that step), so no worker is left waiting for the rest of
  a partition;
* the answers still owed by workers are counted under the run's id and
  collected before the workers get anything new (:meth:`TaskLoop.settle`),
  so no late answer is mistaken for a new one and no worker is shut down in
  the middle of sending one;
* a worker that died, or owes an answer for longer than ``answer_timeout``,
  is named in the error, and the pool is restarted so the next run works.

The loop talks to LiberTEM's ``WorkerPool`` (its ``workers`` with their
``process`` and ``queues``, and the shared ``response_queue``) and speaks
its worker protocol (``RUN_TASK`` ... ``END_TASK``).
"""
from __future__ import annotations

import heapq
import logging
import signal
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import cloudpickle
from libertem.common.executor import WorkerQueueEmpty
from libertem.common.scheduler import Scheduler
from opentelemetry import trace

from libertem_live.errors import WorkerDiedError
from libertem_live.interrupts import held

log = logging.getLogger(__name__)

#: How often a run waiting on the detector or on answers checks its workers.
LIVENESS_POLL_S = 0.25


def _exit_words(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with status {code}"


def _frames_of(task: Any) -> str:
    try:
        part = task.get_partition()
        start = part.slice.origin[0]
        return f"frames {start}..{start + part.slice.shape[0] - 1}"
    except Exception:
        return "a partition"


def in_order(results: Iterator[tuple[Any, Any, int]]) -> Iterator[tuple[Any, Any]]:
    """Yield ``(result, task)`` in task order from answers that arrive in any
    order (UDF results are merged in partition order)."""
    waiting: list[tuple[int, int, Any, Any]] = []
    next_id = 0
    tie = 0
    for result, task, task_id in results:
        heapq.heappush(waiting, (task_id, tie, result, task))
        tie += 1
        while waiting and waiting[0][0] == next_id:
            _, _, res, tsk = heapq.heappop(waiting)
            yield res, tsk
            next_id += 1
    if waiting:
        raise RuntimeError(f"answers for tasks {[w[0] for w in waiting]} came, "
                           f"but none for task {next_id}")


class TaskLoop:
    """Runs tasks on a LiberTEM ``WorkerPool``; one per executor.

    ``pool`` returns the executor's current pool, ``restart`` replaces it
    (kill every worker, start new ones) and ``available`` describes its
    workers for LiberTEM's scheduler; all three are the executor's, since a
    restart changes the pool under it.
    """

    def __init__(self, pool: Callable[[], Any], restart: Callable[[], None],
                 available: Callable[[], Any], answer_timeout: float):
        self._pool = pool
        self._restart = restart
        self._available = available
        self.answer_timeout = answer_timeout
        self._owed: dict[str, int] = {}
        self.restarts = 0

    # --- between runs ---------------------------------------------------------
    def dead_workers(self) -> list[tuple[int, Any]]:
        return [(i, w) for i, w in enumerate(self._pool().workers) if not w.process.is_alive()]

    def broken(self) -> str | None:
        """Why the pool must be restarted before it can run anything, or None."""
        try:
            dead = self.dead_workers()
        except Exception:  # LiberTEM's pool has no workers: a restart failed before
            return "the worker processes are not running (starting them failed before)"
        if dead:
            return f"worker process {dead[0][0]} {_exit_words(dead[0][1].process.exitcode)}"
        return None

    def restart(self, why: str) -> None:
        log.warning("restarting the worker processes: %s", why)
        self._owed.clear()
        self._restart()
        self.restarts += 1

    def settle(self, restart: bool = True) -> None:
        """Collect every answer still owed by an earlier run, so the workers
        are idle and the response queue is empty; restart the pool when a
        worker died or does not answer within ``answer_timeout`` (with
        ``restart=False``, before shutting down, only stop waiting)."""
        why = self.broken()
        if why is not None:
            self._owed.clear()
            if restart:
                self.restart(why)
            return
        if not self._owed:
            return
        deadline = time.monotonic() + self.answer_timeout
        queue = self._pool().response_queue
        while self._owed:
            try:
                with held(), queue.get(timeout=LIVENESS_POLL_S) as (msg, _):
                    self._forget(msg)
            except WorkerQueueEmpty:
                dead = self.dead_workers()
                if dead or time.monotonic() > deadline:
                    owed = sum(self._owed.values())
                    self._owed.clear()
                    if restart:
                        self.restart(f"{owed} answer(s) of an ended run did not come within "
                                     f"{self.answer_timeout:g} s")
                    return

    def _forget(self, msg: dict[str, Any]) -> None:
        run = msg.get("uuid")
        if run in self._owed:
            self._owed[run] -= 1
            if self._owed[run] <= 0:
                del self._owed[run]
        else:
            log.debug("dropped an answer nobody waits for: %s", msg.get("type"))

    # --- one run ----------------------------------------------------------------
    def run(self, tasks: Iterable[Any], params_handle: Any, comm: Any,
            selector: Callable[..., Any] | None = None) -> Iterator[tuple[Any, Any, int]]:
        """Schedule ``tasks`` and yield ``(result, task, task_id)`` as answers come."""
        self.settle()
        pool = self._pool()
        run_id = uuid.uuid4().hex
        in_flight: dict[int, tuple[Any, int]] = {}
        workers = self._available()
        scheduler = Scheduler(all_workers=workers)
        info_for = dict(zip(workers, pool.workers))
        choose = selector or _least_busy
        span_context = trace.get_current_span().get_span_context()
        broken: list[WorkerDiedError] = []

        def check_workers() -> None:
            dead = [(i, w) for i, w in enumerate(pool.workers) if not w.process.is_alive()]
            if not dead:
                return
            idx, info = dead[0]
            held_tasks = [t for t, w in in_flight.values() if w == idx]
            doing = (f" while processing {_frames_of(held_tasks[0])}" if held_tasks else "")
            err = WorkerDiedError(
                f"worker process {idx} (pid {info.process.pid}) "
                f"{_exit_words(info.process.exitcode)}{doing}; the run is lost. The worker "
                "processes are restarted when the next run starts (a few seconds). Run the "
                "acquisition again; if this "
                "repeats, look for a UDF that uses too much memory (the kernel's OOM killer) "
                "or crashes")
            err.worker = idx
            broken.append(err)
            raise err

        watch = getattr(comm, "watch_workers", None)
        if watch is not None:
            watch(check_workers, LIVENESS_POLL_S)
        wake = getattr(comm, "interrupt", None)
        comm.start()
        try:
            for task_id, task in enumerate(tasks):
                idx, queues = _schedule(task, task_id, pool, scheduler, info_for, choose)
                with held(wake):
                    queues.request.put({
                        "type": "RUN_TASK", "uuid": run_id, "task": cloudpickle.dumps(task),
                        "task_id": task_id, "params_handle": params_handle,
                        "span_context": span_context,
                    })
                    in_flight[task_id] = (task, idx)
                    try:
                        comm.handle_task(task, queues.request)
                    finally:
                        if not broken:
                            queues.request.put({
                                "type": "END_TASK", "task_id": task_id,
                                "params_handle": params_handle, "span_context": span_context,
                            })
                yield from self._answers(run_id, in_flight, pool, check_workers, block=False)
            while in_flight:
                yield from self._answers(run_id, in_flight, pool, check_workers, block=True)
        finally:
            comm.done()
            if watch is not None:
                watch(None, LIVENESS_POLL_S)
            if broken:
                self._owed.clear()  # the next settle() restarts the pool
            elif in_flight:
                self._owed[run_id] = self._owed.get(run_id, 0) + len(in_flight)

    def _answers(self, run_id: str, in_flight: dict[int, tuple[Any, int]], pool: Any,
                 check_workers: Callable[[], None], block: bool
                 ) -> Iterator[tuple[Any, Any, int]]:
        queue = pool.response_queue
        while in_flight:
            try:
                with held(), queue.get(block=block, timeout=LIVENESS_POLL_S if block else None
                                       ) as (msg, _):
                    answer = self._take(msg, run_id, in_flight)
            except WorkerQueueEmpty:
                check_workers()
                if not block:
                    return
                continue
            if answer is not None:
                yield answer

    def _take(self, msg: dict[str, Any], run_id: str,
              in_flight: dict[int, tuple[Any, int]]) -> tuple[Any, Any, int] | None:
        if msg.get("uuid") != run_id:
            self._forget(msg)
            return None
        if msg["type"] == "ERROR":
            worker = msg.get("worker_id")
            mine = [t for t, (_, w) in in_flight.items() if w == worker] or list(in_flight)
            in_flight.pop(mine[0], None)
            if "exception" in msg:
                raise msg["exception"]
            raise RuntimeError(f"a worker failed to run a task: {msg['error']}")
        task_id = msg["task_id"]
        task, _ = in_flight.pop(task_id)
        return msg["result"], task, task_id


def _least_busy(eligible: list[Any], pool: Any, task: Any, task_id: int) -> Any:
    """The worker with the fewest messages waiting (round robin where the
    platform cannot tell a queue's length)."""
    try:
        return min(eligible, key=lambda w: w.queues.request.size())
    except NotImplementedError:
        return eligible[task_id % len(eligible)]


def _schedule(task: Any, task_id: int, pool: Any, scheduler: Scheduler,
              info_for: dict[Any, Any], choose: Callable[..., Any]) -> tuple[int, Any]:
    eligible = [info_for[w] for w in scheduler.workers_for_task(task)]
    if not eligible:
        from libertem.executor.base import ResourceError
        raise ResourceError(f"no worker has the resources {task.get_resources()}")
    worker = choose(eligible, pool, task, task_id)
    return pool.workers.index(worker), worker.queues
