"""Live acquisitions on the workers of a dask.distributed cluster.

``LiveContext(executor=DaskJobExecutor.connect("tcp://host:8786"))`` swaps
in :class:`LiveDaskExecutor` (same client, same state): offline datasets
run exactly as with LiberTEM's executor, and for a live acquisition its
``run_tasks`` does what LiberTEM's cannot for a stream:

* the receiver and its ring stay in this process.  Workers that can map
  the ring (on this machine) get tasks with the partition's ring slot
  references only, pinned to them, and read the frames where they are
  (:mod:`~libertem_live.cluster.local`); the slots stay held until the
  answer came, so a task whose worker died runs again on another local
  worker from the same slots.  For the other workers, a partition's
  frames are packed out of the ring as the detector sent them
  (:mod:`~libertem_live.cluster.packing`) and travel inside the task, an
  opaque buffer to the scheduler (:mod:`~libertem_live.cluster.remote`),
  to be decoded on the worker by the same decoder as on one machine
  (:mod:`~libertem_live.cluster.partition`); dask keeps a task's
  arguments until it is done, so when a worker dies, its task runs again
  on another worker from the same frames;
* at most :data:`IN_FLIGHT_PER_THREAD` tasks per worker thread are
  submitted and not yet answered, and none more than
  :data:`WINDOW_PER_IN_FLIGHT` times that many partitions past the oldest
  unanswered one: this, and not the network, sets the pace, and memory
  stays bounded on every machine however long the scan
  (the ring slots of a packed partition are freed as soon as it is
  packed, so the receiver never waits for remote workers);
* results are handed to LiberTEM in partition order, as on one machine,
  so each UDF's ``merge`` sees the same sequence and float sums come out
  bit for bit the same (and ``run_udf_iter`` shows a growing prefix);
* a scheduler that does not answer, or a cluster left without workers,
  ends the run with an error naming the address (and the lost worker and
  frames) instead of a hang (:mod:`~libertem_live.cluster.watch`).
"""
from __future__ import annotations

import copy
import functools
import logging
import time
import uuid
from collections import Counter
from typing import Any, Iterable, Iterator

import dask
from dask import distributed as dd
from libertem.common.executor import JobCancelledError
from libertem.executor.base import ResourceError
from libertem.executor.dask import DaskJobExecutor

from libertem_live.cluster.local import RingRefPartition, sees_segment, segment_identity
from libertem_live.cluster.packing import FramePacker, PackedFrames, Piece
from libertem_live.cluster.partition import PackedLivePartition
from libertem_live.cluster.remote import blob_of, call_blob, run_live_task
from libertem_live.cluster.watch import (POLL_S, ClusterWatch, first_frame, frames_of,
                                         lost_words)
from libertem_live.errors import WorkerDiedError
from libertem_live.tasks import in_order
from libertem_live.transport.feed import FeedCommHandler
from libertem_live.transport.stream import FrameStream

log = logging.getLogger(__name__)

#: Tasks per worker thread submitted ahead: one running, one waiting on
#: the worker (or at the scheduler), so a worker never idles while the
#: next partition crosses the network, and no more than two partitions
#: per thread are held anywhere.
IN_FLIGHT_PER_THREAD = 2
#: Partitions submitted past the oldest one not yet answered, as a multiple
#: of the tasks in flight.  Results are merged in partition order, so the
#: answers that come back past a slow partition (one re-run after its
#: worker died, say) wait here; this bounds how many, and with them the
#: memory their results hold, however long the slow one takes.
WINDOW_PER_IN_FLIGHT = 2


class LiveDaskExecutor(DaskJobExecutor):
    """LiberTEM's ``DaskJobExecutor``, able to run live acquisitions too."""

    frames_by_worker: Counter[str]
    """Frames each worker decoded in the last live run (by worker address)."""
    bytes_sent: int
    """Bytes of the tasks (frames included) submitted in the last live run."""
    frames_by_reference: int
    """Frames of the last live run that workers on this machine read
    straight from the ring (their tasks carried slot references only)."""
    locality: bool = True
    """Send workers that can map the ring (those on this machine) slot
    references instead of the frames; set False to send every partition's
    frames (for comparison)."""
    send_s: float
    """Seconds this process spent packing, pickling and submitting partitions
    in the last live run (waits for frames excluded): what bounds the frame
    rate one receiving machine can hand to a cluster."""

    @classmethod
    def adopt(cls, executor: DaskJobExecutor) -> LiveDaskExecutor:
        """The same executor (client, cluster, state) with live support:
        the object passed to ``LiveContext`` is used through this one."""
        if isinstance(executor, cls):
            return executor
        live = cls.__new__(cls)
        live.__dict__.update(executor.__dict__)
        live.frames_by_worker = Counter()
        live.bytes_sent = 0
        live.send_s = 0.0
        live.frames_by_reference = 0
        return live

    def run_each_worker(self, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """LiberTEM's, with the function sent as an opaque buffer like the live
        tasks (a decoder's warm-up would make the scheduler import the driver)."""
        return super().run_each_worker(call_blob, blob_of(functools.partial(fn, *args, **kwargs)))

    def check_ready(self) -> None:
        """Before a live run arms the detector: the scheduler answers and has
        a worker (LiberTEM's first step, scattering the UDF parameters, would
        otherwise wait for one and then fail with dask's words)."""
        ClusterWatch(self.client).require_workers()

    def run_tasks(self, tasks: Iterable[Any], params_handle: Any, cancel_id: Any,
                  task_comm_handler: Any) -> Iterator[tuple[Any, Any]]:
        if not isinstance(task_comm_handler, FeedCommHandler):
            yield from super().run_tasks(tasks, params_handle, cancel_id, task_comm_handler)
            return
        yield from in_order(self._run_live(list(tasks), params_handle, cancel_id,
                                           task_comm_handler.stream))

    def _resources(self, task: Any) -> dict[str, Any]:
        wanted = task.get_resources()
        if self.lt_resources:
            return wanted
        if "CUDA" in wanted:
            raise ResourceError("a UDF asks for a CUDA device, but the dask cluster's "
                                "workers declare no resources (start them with "
                                "libertem-worker)")
        return {}

    def _local_workers(self, stream: FrameStream) -> set[str]:
        """Addresses of the workers that can map this run's ring (see
        :mod:`~libertem_live.cluster.local`); none when ``locality`` is off."""
        if not self.locality:
            return set()
        name = stream.spec.name
        identity = segment_identity(name)
        if identity is None:
            return set()
        answers = self.client.run(call_blob, blob_of(functools.partial(
            sees_segment, name, identity)), on_error="return")
        return {w for w, yes in answers.items() if yes is True}

    def _run_live(self, tasks: list[Any], params_handle: Any, cancel_id: Any,
                  stream: FrameStream) -> Iterator[tuple[Any, Any, int]]:
        watch = ClusterWatch(self.client)
        watch.require_workers()
        workers = self.get_available_workers()
        threaded = workers.has_threaded_workers()
        limit = max(1, IN_FLIGHT_PER_THREAD * sum(max(1, w.nthreads) for w in workers))
        window = WINDOW_PER_IN_FLIGHT * limit
        local = self._local_workers(stream)
        threads = self.client.nthreads()
        local_limit = IN_FLIGHT_PER_THREAD * sum(max(1, threads.get(w, 1)) for w in local)
        # one partition by reference may hold at most half the ring, so that
        # the next one always finds room while the workers read
        max_slots = stream.spec.num_slots // 2
        params = self._scatter_map[params_handle]
        packer = FramePacker(stream)
        in_flight: dict[Any, tuple[int, Any]] = {}
        held: dict[Any, list[Piece]] = {}
        """Futures of tasks that read their frames from the ring -> their pieces."""
        names: dict[str, str] = {}
        decoded = [0]
        self.frames_by_worker = Counter()
        self.bytes_sent = 0
        self.send_s = 0.0
        self.frames_by_reference = 0
        stream.ledger.count_decoded = lambda: decoded[0]
        futures = self._futures.setdefault(cancel_id, [])  # for LiberTEM's cancel()
        run = uuid.uuid4().hex[:8]
        # tracked on the client's event loop (Future.add_done_callback would
        # start a callback thread of its own)
        finished = dd.as_completed(loop=self.client.loop)

        def give_back(fut: Any) -> None:
            pieces = held.pop(fut, None)
            if pieces:
                packer.release(pieces)

        def reap() -> None:
            """Give back the slots of tasks done reading (answered, failed)."""
            for fut in [f for f in held if f.done()]:
                give_back(fut)

        def check() -> None:
            reap()
            watch.check(names)
            if held and not local & watch.workers:
                lost = ", ".join(sorted((names.get(f.key, "?") for f in held),
                                        key=first_frame))
                raise WorkerDiedError(
                    f"no dask worker on this machine is left to read {lost} from the "
                    f"ring (workers that left: {lost_words(watch.left)}); workers on "
                    f"other machines cannot. Start workers here (`dask worker "
                    f"{watch.address}`) and run the acquisition again")

        def collect(block: bool) -> Iterator[tuple[Any, Any, int]]:
            """Answers that came (with ``block``, at least one)."""
            while in_flight:
                if not finished.has_ready():
                    if not block:
                        return
                    with finished.thread_condition:  # its notify comes under this lock
                        if not finished.has_ready():
                            finished.thread_condition.wait(POLL_S)
                    if not finished.has_ready():
                        check()
                        continue
                fut = next(finished)
                if fut not in in_flight:
                    continue
                task_id, task = in_flight.pop(fut)
                give_back(fut)
                names.pop(fut.key, None)
                futures.remove(fut)  # a held future keeps its result on the cluster
                yield self._answer(fut, task, task_id, decoded, watch, names)
                block = False

        try:
            for task_id, task in enumerate(tasks):
                while in_flight and (len(in_flight) >= limit or task_id - min(
                        tid for tid, _ in in_flight.values()) >= window):
                    yield from collect(block=True)
                part = task.get_partition()
                start = int(part.slice.origin[0])
                stop = start + int(part.slice.shape[0])
                remote = copy.copy(task)
                pin: dict[str, Any] = {}
                if local and len(held) < local_limit:
                    frames = packer.take(start, stop, check=check, check_every=0.01,
                                         max_slots=max_slots)
                else:
                    frames = packer.pack(start, stop, check=check,
                                         check_every=0.01 if held else 0.25)
                t0 = time.perf_counter()
                if isinstance(frames, PackedFrames):
                    remote.partition = PackedLivePartition(part, frames)
                else:
                    remote.partition = RingRefPartition(part, stream.spec, frames)
                    pin = {"workers": sorted(local), "allow_other_workers": False}
                key = f"live-{run}-frames-{start}-{stop - 1}"
                blob = blob_of(remote)
                self.bytes_sent += blob.nbytes
                with dask.config.set({"distributed.admin.large-graph-warning-threshold":
                                      "1TiB"}):
                    fut = self.client.submit(
                        run_live_task, blob, params, task_id, threaded, key=key,
                        pure=False, resources=self._resources(task), **pin)
                if pin:
                    held[fut] = frames  # type: ignore[assignment]
                    self.frames_by_reference += stop - start
                del remote, frames, blob
                self.send_s += time.perf_counter() - t0
                in_flight[fut] = (task_id, task)
                finished.add(fut)
                names[key] = frames_of(task)
                futures.append(fut)
                yield from collect(block=False)
            while in_flight:
                yield from collect(block=True)
        finally:
            if in_flight:
                self.client.cancel(list(in_flight))
            for fut in list(held):
                give_back(fut)  # a task still running only reads: it cannot harm the ring
            packer.release_rest()
            self.send_s += packer.busy_s
            self._futures.pop(cancel_id, None)
            if watch.left:
                stream.ledger.note("dask workers left during the run: "
                                   + lost_words(watch.left))
            if self.frames_by_worker:
                stream.ledger.note("frames decoded per dask worker: " + ", ".join(
                    f"{w}: {n}" for w, n in sorted(self.frames_by_worker.items())))
            if self.frames_by_reference:
                stream.ledger.note(f"frames read from the ring by dask workers on this "
                                   f"machine: {self.frames_by_reference}")

    def _answer(self, fut: Any, task: Any, task_id: int, decoded: list[int],
                watch: ClusterWatch, names: dict[str, str]) -> tuple[Any, Any, int]:
        if fut.cancelled():
            try:
                watch.check(names, force=True)
            except Exception:
                pass  # the error below says what is known
            if watch.left:
                # the scheduler cancels a task whose inputs died with their
                # workers (the UDF parameters live on the workers only)
                raise WorkerDiedError(
                    f"the dask scheduler at {watch.address} gave up {frames_of(task)}: "
                    f"the workers holding its inputs died. Workers that left during the "
                    f"run: {lost_words(watch.left)}. Start workers (`dask worker "
                    f"{watch.address}`) and run the acquisition again")
            raise JobCancelledError(f"the dask task of {frames_of(task)} was cancelled")
        if fut.status == "error":
            exc = fut.exception()
            if isinstance(exc, dd.KilledWorker):
                raise WorkerDiedError(
                    f"{frames_of(task)} could not be processed: every dask worker that "
                    f"ran them died ({exc}). Look for a UDF that uses too much memory or "
                    "crashes, then run the acquisition again") from exc
            fut.result()  # raises the worker's exception with its traceback
        answer = fut.result()
        decoded[0] += answer["decoded"]
        self.frames_by_worker[answer["worker"]] += answer["decoded"]
        return answer["task_result"], task, task_id
