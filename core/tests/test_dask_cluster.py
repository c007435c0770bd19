"""Live acquisitions on a real dask.distributed cluster: a scheduler and three
workers started as processes (``python -m distributed.cli.dask_scheduler`` /
``dask_worker``) over loopback TCP, and a ``LiveContext`` connected with
LiberTEM's ``DaskJobExecutor.connect``.  Results must equal the
single-machine ones exactly (same tiles, merged in partition order)."""
from __future__ import annotations

import os
import time
from typing import Any, Iterator

import numpy as np
import pytest
from libertem.executor.dask import DaskJobExecutor
from libertem.udf.base import UDF
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

from libertem_live.api import Hooks, LiveContext
from libertem_live.cluster import LiveDaskExecutor, SchedulerUnreachableError
from libertem_live.cluster.processes import ProcessCluster
from libertem_live.driver import RingConfig
from libertem_live.errors import DecodeError, FrameGapError, WorkerDiedError

HERE = os.path.dirname(os.path.abspath(__file__))


class SlowSumUDF(UDF):
    """SumUDF that takes ``delay`` seconds per frame: keeps a task running
    long enough to kill its worker in the middle of it."""

    def __init__(self, delay: float = 0.02):
        super().__init__(delay=delay)

    def get_result_buffers(self) -> dict[str, Any]:
        return {"intensity": self.buffer(kind="sig", dtype="float64")}

    def process_frame(self, frame: np.ndarray) -> None:
        time.sleep(self.params.delay)
        self.results.intensity[:] += frame

    def merge(self, dest: Any, src: Any) -> None:
        dest.intensity[:] += src.intensity


@pytest.fixture(scope="module")
def cluster() -> Iterator[ProcessCluster]:
    # the workers import this module to unpickle SlowSumUDF
    # three: the two worker-kill runs below leave one for the last test
    with ProcessCluster(workers=3, env={"PYTHONPATH": HERE}) as c:
        yield c
    assert all(p.poll() is not None for p in [c.scheduler, *c.workers]), "processes left"


@pytest.fixture(scope="module")
def ctx(cluster: ProcessCluster) -> Iterator[LiveContext]:
    c = LiveContext(executor=DaskJobExecutor.connect(cluster.address))
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def local() -> Iterator[LiveContext]:
    c = LiveContext(executor="inline")
    yield c
    c.close()


@pytest.fixture
def data() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 4000, size=(12, 20, 24, 20), dtype=np.uint16)


#: Six slots of 16 frames: every scan here (240 frames) is longer than the
#: ring, so a run completes only if the slots are given back as it goes
#: (packed: once copied; by reference: once the task's answer came, while
#: up to four tasks of two slots each are in flight).
SMALL_RING = RingConfig(num_slots=6, slot_bytes=16 * 24 * 20 * 2, max_frames=16)


def _run(ctx: LiveContext, data: np.ndarray, udfs: list[Any], **kw: Any) -> Any:
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16,
                                            ring=SMALL_RING) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        res = ctx.run_udf(dataset=aq, udf=udfs, **kw)
        snap = aq.ledger.snapshot()
    return res, snap


@pytest.fixture(params=["ring", "packed"])
def path(request, ctx) -> Iterator[str]:
    """Run a test with the frames read from the ring by reference (the
    workers here are on this machine) and again packed into the tasks, as
    for workers on other machines."""
    ctx.executor.locality = request.param == "ring"
    try:
        yield request.param
    finally:
        ctx.executor.locality = True


def test_sum_and_sumsig_equal_single_machine(ctx, local, data, path) -> None:
    assert isinstance(ctx.executor, LiveDaskExecutor)
    res, snap = _run(ctx, data, [SumUDF(), SumSigUDF()])
    want, _ = _run(local, data, [SumUDF(), SumSigUDF()])
    n = data.shape[0] * data.shape[1]
    for got, ref in zip(res, want):
        assert np.array_equal(got["intensity"].data, ref["intensity"].data)
    assert np.array_equal(res[1]["intensity"].data, data.sum(axis=(2, 3), dtype=np.float64))
    assert (snap.expected, snap.received, snap.dispatched, snap.decoded, snap.processed,
            snap.missing) == (n, n, n, n, n, 0), snap
    per_worker = [note for note in snap.notes if note.startswith("frames decoded per dask")]
    assert per_worker and sum(int(x.rsplit(": ", 1)[1]) for x in
                              per_worker[0].split(": ", 1)[1].split(", ")) == n
    frame_bytes = data[0, 0].nbytes
    if path == "ring":
        assert ctx.executor.frames_by_reference == n
        assert ctx.executor.bytes_sent < n * frame_bytes / 4, "only slot references travel"
    else:
        assert ctx.executor.frames_by_reference == 0
        assert ctx.executor.bytes_sent > n * frame_bytes


def test_roi(ctx, local, data, path) -> None:
    roi = np.random.default_rng(4).random(data.shape[:2]) > 0.6
    roi[:, :4] = False  # whole partitions left out too
    res, snap = _run(ctx, data, [SumUDF()], roi=roi)
    want, _ = _run(local, data, [SumUDF()], roi=roi)
    assert np.array_equal(res[0]["intensity"].data, want[0]["intensity"].data)
    assert np.array_equal(res[0]["intensity"].data, data[roi].sum(axis=0, dtype=np.float64))
    assert snap.decoded == snap.processed == int(roi.sum())


def test_run_udf_iter_partial_results_in_order(ctx, data) -> None:
    flat = data.reshape(-1, *data.shape[2:])
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        seen = []
        for part in ctx.run_udf_iter(dataset=aq, udf=SumUDF()):
            done = int(part.damage.data.sum())
            # partitions are merged in order: the damage is a prefix of the scan
            assert part.damage.data.reshape(-1)[:done].all()
            assert np.array_equal(part.buffers[0]["intensity"].data,
                                  flat[:done].sum(axis=0, dtype=np.float64))
            seen.append(done)
    assert seen == sorted(seen) and seen[-1] == len(flat) and len(seen) > 2


def test_offline_dataset_in_the_same_context(ctx, data) -> None:
    ds = ctx.load("memory", data=data, num_partitions=3)
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1), dtype=np.float64))


def test_passive_mode(ctx, data) -> None:
    """The detector armed by someone else: ``wait_for_acquisition`` then
    ``make_acquisition(pending_aq=...)``; no ``on_ready_for_data`` call."""
    hooks = ReadyHooks()
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16,
                                            ring=SMALL_RING) as conn:
        pending = conn.wait_for_acquisition(timeout=5.0)
        assert pending is not None
        aq = ctx.make_acquisition(conn=conn, pending_aq=pending, frames_per_partition=32,
                                  hooks=hooks)
        assert tuple(aq.shape.nav) == data.shape[:2]
        res = ctx.run_udf(dataset=aq, udf=[SumUDF(), SumSigUDF()])
    assert np.array_equal(res[0]["intensity"].data, data.sum(axis=(0, 1), dtype=np.float64))
    assert np.array_equal(res[1]["intensity"].data, data.sum(axis=(2, 3), dtype=np.float64))
    assert hooks.ready == [], "on_ready_for_data is for active mode only"


class ReadyHooks(Hooks):
    """Records, for each call, what the cluster had been sent by then, and
    every partial result's damage count."""

    def __init__(self) -> None:
        self.ready: list[tuple[int, int]] = []
        self.partial: list[int] = []
        self.ended: list[str] = []

    def on_ready_for_data(self, env: Any) -> None:
        snap = env.aq.ledger.snapshot()
        self.ready.append((snap.dispatched, snap.processed))

    def on_partial_results(self, env: Any) -> None:
        self.partial.append(int(env.damage.sum()))

    def on_acquisition_ended(self, env: Any) -> None:
        self.ended.append(env.outcome)


def test_active_mode_hooks(ctx, data) -> None:
    """``on_ready_for_data`` once, after arming and before any frame went to
    the cluster; the result hooks see every partition, in order."""
    hooks = ReadyHooks()
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16,
                                            ring=SMALL_RING) as conn:
        ctl = conn.get_active_controller(trigger_mode="exte")
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], controller=ctl,
                                  frames_per_partition=32, hooks=hooks)
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
    n = data.shape[0] * data.shape[1]
    assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1), dtype=np.float64))
    assert ctl.armed == 1 and hooks.ready == [(0, 0)]
    assert hooks.partial == sorted(hooks.partial) and hooks.partial[-1] == n
    assert len(hooks.partial) == -(-n // 32)
    assert hooks.ended == ["complete"]


class ScaledSum(UDF):
    """Per-frame sum times ``factor``: a parameter a hook changes mid-run.
    Frame 0 takes ``first_delay`` seconds."""

    def __init__(self, factor: float = 1.0, first_delay: float = 0.0):
        super().__init__(factor=factor, first_delay=first_delay)

    def get_result_buffers(self) -> dict[str, Any]:
        return {"total": self.buffer(kind="nav", dtype="float64")}

    def process_frame(self, frame: np.ndarray) -> None:
        if self.meta.slice.origin[0] == 0:
            time.sleep(self.params.first_delay)
        self.results.total[:] = frame.sum() * self.params.factor


class Doubler(Hooks):
    """Asks for ``factor=2`` after the first partition; remembers how many
    frames had been sent to the cluster by then."""

    sent_before = -1

    def on_partial_results(self, env: Any) -> None:
        if self.sent_before < 0:
            self.sent_before = env.ledger.dispatched
            env.update_parameters(env.udfs[0], factor=2.0)


def test_hook_updates_parameters_between_partitions(ctx, data) -> None:
    """``env.update_parameters`` from a result hook reaches the workers: every
    partition sent to the cluster after the hook returned uses the new value.
    (Unlike on one machine, those already on their way, up to two per worker
    thread, may run with either: the update reaches each worker between two
    of its tasks.)"""
    hooks = Doubler()
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=16,
                                  hooks=hooks)
        res = ctx.run_udf(dataset=aq, udf=ScaledSum(first_delay=1.5))
    per_frame = data.reshape(-1, 16, *data.shape[2:]).sum(axis=(2, 3), dtype=np.float64)
    factor = res["total"].data.reshape(per_frame.shape) / per_frame
    assert all(len(set(row)) == 1 for row in factor), "one value per partition"
    steps = [float(row[0]) for row in factor]
    after = hooks.sent_before // 16
    # while frame 0 takes its time, the other worker answers the partitions
    # after it; their results wait to be merged in order, and no more than
    # a window of 2 x 4 partitions in flight is sent meanwhile
    window = 2 * 2 * len(ctx.executor.client.scheduler_info()["workers"])
    assert 0 < after <= window < len(steps), (hooks.sent_before, steps)
    assert steps[0] == 1.0 and steps[after:] == [2.0] * (len(steps) - after), (
        hooks.sent_before, steps)


def test_progress_and_plots(ctx, data, capsys) -> None:
    """``progress=True`` and ``plots=`` (plot objects, and ``True`` with the
    context's plot class) work as on one machine: the plots are updated in
    this process from the merged results."""
    from libertem.viz.base import Dummy2DPlot
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16,
                                            ring=SMALL_RING) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        udfs = [SumUDF(), SumSigUDF()]
        plots = [Dummy2DPlot(aq, udfs[0], channel="intensity"),
                 Dummy2DPlot(aq, udfs[1], channel="intensity")]
        res = ctx.run_udf(dataset=aq, udf=udfs, plots=plots, progress=True)
        assert np.array_equal(plots[0].data, data.sum(axis=(0, 1), dtype=np.float64))
        assert np.array_equal(plots[1].data, data.sum(axis=(2, 3), dtype=np.float64))
        assert np.array_equal(res[0]["intensity"].data, plots[0].data)
        assert "100%" in capsys.readouterr().err, "the progress bar reached the end"
        old = ctx.plot_class
        ctx.plot_class = Dummy2DPlot
        try:
            aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2],
                                      frames_per_partition=32)
            res = ctx.run_udf(dataset=aq, udf=udfs, plots=True)
        finally:
            ctx.plot_class = old
    assert np.array_equal(res[1]["intensity"].data, data.sum(axis=(2, 3), dtype=np.float64))


def test_run_udf_iter_closed_early_then_a_full_run(ctx, data) -> None:
    """The usage pattern ``for part in ctx.run_udf_iter(...)``, left after
    two partial results: the tasks still in flight are cancelled, the
    acquisition ends, and the next one on the same connection is exact."""
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16,
                                            ring=SMALL_RING) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        for i, part in enumerate(ctx.run_udf_iter(dataset=aq, udf=SumUDF())):
            if i == 1:
                break
        assert int(part.damage.data.sum()) == 64
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1), dtype=np.float64))


def _rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` (from /proc; psutil is not a dependency)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


#: Memory test geometry: 128x128 uint16 frames (32 KiB), 64 frames per
#: partition (2 MiB of frames per task), a ring of 4 slots of 64 frames
#: (256 frames, 8 MiB) and a scan of 20 rings (5120 frames, 80 partitions,
#: 160 MiB in all).
LONG_SIG = (128, 128)
LONG_PART = 64
LONG_RING = RingConfig(num_slots=4, slot_bytes=LONG_PART * 128 * 128 * 2, max_frames=LONG_PART)
LONG_FRAMES = 20 * LONG_RING.num_slots * LONG_PART
#: Allowed growth of each process's RSS from the first to the last quarter:
#: 10 partitions.  A process that kept one partition's frames per task
#: (say a result or a task buffer never dropped) would grow by the 60 tasks
#: between the end of the first quarter and the end of the run, 120 MiB.
RSS_GROWTH_MIB = 20.0


def test_memory_bounded_on_a_scan_20_rings_long(cluster, ctx, path) -> None:
    """A scan 20 times longer than the ring, through the cluster: the RSS of
    this process, the scheduler and every worker, sampled at each partial
    result, stays flat after the first quarter (peak of the last quarter -
    peak of the first < RSS_GROWTH_MIB).  Frames cycle through a pool of one
    partition, so the source array itself is small."""
    pool = np.random.default_rng(5).integers(0, 1000, size=(LONG_PART, *LONG_SIG),
                                              dtype=np.uint16)
    nav = (LONG_FRAMES // 128, 128)
    pids = {"main": os.getpid(), "scheduler": cluster.scheduler.pid,
            **{f"worker-{i}": p.pid for i, p in enumerate(cluster.workers)}}
    samples: list[dict[str, float]] = []
    with ctx.make_connection("memory").open(data=pool, nav_shape=nav,
                                            frames_per_stack=LONG_PART,
                                            ring=LONG_RING) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=nav, frames_per_partition=LONG_PART)
        for part in ctx.run_udf_iter(dataset=aq, udf=SumUDF()):
            samples.append({name: _rss_mib(pid) for name, pid in pids.items()})
        snap = aq.ledger.snapshot()
    cycles = LONG_FRAMES // LONG_PART
    assert np.array_equal(part.buffers[0]["intensity"].data,
                          cycles * pool.sum(axis=0, dtype=np.float64))
    assert snap.processed == LONG_FRAMES and len(samples) == cycles
    assert ctx.executor.frames_by_reference == (LONG_FRAMES if path == "ring" else 0)
    quarter = len(samples) // 4
    for name in pids:
        first = max(s[name] for s in samples[:quarter])
        last = max(s[name] for s in samples[-quarter:])
        assert last - first < RSS_GROWTH_MIB, (
            f"{name} grew {last - first:.1f} MiB from the first to the last quarter: "
            + ", ".join(f"{s[name]:.0f}" for s in samples))


def test_no_worker_then_no_scheduler() -> None:
    """A cluster without workers, then without its scheduler: clear errors
    naming the address, no hang."""
    data = np.ones((4, 8, 4, 4), dtype=np.uint8)
    with ProcessCluster(workers=0) as bare:
        c = LiveContext(executor=DaskJobExecutor.connect(bare.address))
        try:
            with pytest.raises(WorkerDiedError, match=f"{bare.address}.*has no worker"):
                _run(c, data, [SumUDF()])
            bare.close()
            t0 = time.monotonic()
            with pytest.raises(SchedulerUnreachableError, match=bare.address):
                _run(c, data, [SumUDF()])
            with pytest.raises(SchedulerUnreachableError, match=bare.address):
                LiveContext(executor=c.executor)
            assert time.monotonic() - t0 < 20
        finally:
            c.executor.client.close(timeout=5)


@pytest.mark.parametrize("fault, error, where", [
    # found in the main process, while packing
    ("frame_gap@100", FrameGapError, "frames 100..100 never came"),
    # found on the worker, while decoding the batch of frames 96..127 (packed)
    # or the ring piece of frames 96..111 (by reference)
    ("truncated_payload@100", DecodeError, r"could not decode a frame in 96\.\.1(11|27)"),
])
def test_faults_end_the_run_and_the_next_one_works(ctx, data, fault, error, where,
                                                   path) -> None:
    flat = data.reshape(-1, *data.shape[2:])
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16,
                                            fault=fault) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        with pytest.raises(error, match=where):
            ctx.run_udf(dataset=aq, udf=SumUDF())
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, flat.sum(axis=0, dtype=np.float64))


def _ring_of_next_run(ctx: LiveContext, conn: Any, data: np.ndarray) -> tuple[str, Any]:
    """(ring name, SumUDF result) of an acquisition on ``conn``.  A connection
    keeps a run's ring for its next acquisition only when every frame in it
    was given back: the same name twice means no slot was leaked."""
    aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
    name = ""
    for part in ctx.run_udf_iter(dataset=aq, udf=SumUDF()):
        name = name or aq.stream.spec.name
    return name, part.buffers[0]["intensity"].data


def test_worker_killed_mid_acquisition(cluster, ctx, data, path) -> None:
    """SIGKILL the worker running a partition: dask runs it again on the
    other worker, from the frames its task holds (packed) or from the ring
    slots the main process still holds (by reference); the result is exact,
    no slot is leaked and the next acquisition works.  (Near the end of the
    module: each run leaves one worker fewer.)"""
    client = ctx.executor.client
    pids = client.run(os.getpid)
    flat = data.reshape(-1, *data.shape[2:])
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        killed = None
        t0 = time.monotonic()
        for part in ctx.run_udf_iter(dataset=aq, udf=SlowSumUDF(0.005)):
            if killed is None:
                ring = aq.stream.spec.name
                busy = [w for w, keys in client.processing().items() if keys]
                assert busy, "no worker is running a partition"
                killed = busy[0]
                victim = [p for p in cluster.workers if p.pid == pids[killed]][0]
                cluster.kill_worker(cluster.workers.index(victim))
        assert time.monotonic() - t0 < 30
        assert np.array_equal(part.buffers[0]["intensity"].data,
                              flat.sum(axis=0, dtype=np.float64))
        snap = aq.ledger.snapshot()
        assert snap.processed == len(flat)
        assert ctx.executor.frames_by_reference == (len(flat) if path == "ring" else 0)
        again, res = _ring_of_next_run(ctx, conn, data)
    assert again == ring, "the ring was not kept: a slot was never given back"
    assert np.array_equal(res, flat.sum(axis=0, dtype=np.float64))


def test_last_worker_killed(cluster, ctx, data) -> None:
    """SIGKILL the only worker left (after the test above): the run ends with
    an error naming the worker and the frames, never a hang, and the next
    run is refused at once, before arming, naming the scheduler."""
    client = ctx.executor.client
    pids = client.run(os.getpid)
    assert len(pids) == 1, "the test above leaves one worker"
    (address, pid), = pids.items()
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        t0 = time.monotonic()
        with pytest.raises(WorkerDiedError, match="frames") as err:
            for _part in ctx.run_udf_iter(dataset=aq, udf=SlowSumUDF(0.005)):
                victim = [p for p in cluster.workers if p.pid == pid][0]
                if victim.poll() is None:
                    cluster.kill_worker(cluster.workers.index(victim))
        assert time.monotonic() - t0 < 30
        assert address in str(err.value)
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        with pytest.raises(WorkerDiedError, match=f"{cluster.address} has no worker"):
            ctx.run_udf(dataset=aq, udf=SumUDF())
