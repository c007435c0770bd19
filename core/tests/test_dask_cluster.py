"""Live acquisitions on a real dask.distributed cluster: a scheduler and two
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

from libertem_live.api import LiveContext
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
    with ProcessCluster(workers=2, env={"PYTHONPATH": HERE}) as c:
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


#: Two slots of 16 frames: every scan here is several times longer than the
#: ring, so a run completes only if packing frees the slots as it goes.
SMALL_RING = RingConfig(num_slots=2, slot_bytes=16 * 24 * 20 * 2, max_frames=16)


def _run(ctx: LiveContext, data: np.ndarray, udfs: list[Any], **kw: Any) -> Any:
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16,
                                            ring=SMALL_RING) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        res = ctx.run_udf(dataset=aq, udf=udfs, **kw)
        snap = aq.ledger.snapshot()
    return res, snap


def test_sum_and_sumsig_equal_single_machine(ctx, local, data) -> None:
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


def test_roi(ctx, local, data) -> None:
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
    # found on the worker, while decoding the batch of frames 96..127
    ("truncated_payload@100", DecodeError, "could not decode a frame in 96..127"),
])
def test_faults_end_the_run_and_the_next_one_works(ctx, data, fault, error, where) -> None:
    flat = data.reshape(-1, *data.shape[2:])
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16,
                                            fault=fault) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        with pytest.raises(error, match=where):
            ctx.run_udf(dataset=aq, udf=SumUDF())
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, flat.sum(axis=0, dtype=np.float64))


def test_worker_killed_mid_acquisition(cluster, ctx, data) -> None:
    """SIGKILL the worker running a partition: dask runs it again on the
    other worker from the frames it holds; the result is exact and the next
    acquisition works.  (Near the end of the module: it leaves one worker.)"""
    client = ctx.executor.client
    pids = client.run(os.getpid)
    flat = data.reshape(-1, *data.shape[2:])
    with ctx.make_connection("memory").open(data=data, frames_per_stack=16) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:2], frames_per_partition=32)
        killed = None
        t0 = time.monotonic()
        for part in ctx.run_udf_iter(dataset=aq, udf=SlowSumUDF(0.005)):
            if killed is None:
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
    res, _ = _run(ctx, data, [SumUDF()])
    assert np.array_equal(res[0]["intensity"].data, flat.sum(axis=0, dtype=np.float64))


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
