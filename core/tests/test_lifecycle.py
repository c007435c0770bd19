"""Run lifecycle on live acquisitions: always ended, errors that say what
happened, executors, plots, ROI, recording."""
from __future__ import annotations

from typing import Any

import json
import os
import threading

import numpy as np
import pytest
from libertem.executor.inline import InlineJobExecutor
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

from libertem_live.api import Hooks, LiveContext
from libertem_live.errors import AcquisitionTimeoutError, StreamTruncatedError
from libertem_live.udf.record import RecordUDF


@pytest.fixture(scope="module")
def ctx():
    from libertem.viz.base import Dummy2DPlot
    c = LiveContext(plot_class=Dummy2DPlot)
    yield c
    c.close()


@pytest.fixture
def data():
    return np.random.default_rng(1).integers(0, 1000, size=(6, 10, 8, 8), dtype=np.uint16)


def _active_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("libertem-live")}


class Stop(Hooks):
    """Raises in on_ready_for_data: the run must not start and the stream must end."""

    def __init__(self, exc):
        self.exc = exc

    def on_ready_for_data(self, env):
        raise self.exc


def test_keyboard_interrupt_in_hook_ends_acquisition(ctx, data) -> None:
    with ctx.make_connection("memory").open(data=data) as conn:
        ctrl = conn.get_active_controller()
        aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10), controller=ctrl,
                                  hooks=Stop(KeyboardInterrupt()))
        with pytest.raises(KeyboardInterrupt):
            ctx.run_udf(dataset=aq, udf=SumUDF())
        assert ctrl.stopped == 1, "the detector is stopped after an interrupted run"
        aq2 = ctx.make_acquisition(conn=conn, nav_shape=(6, 10))
        res = ctx.run_udf(dataset=aq2, udf=SumUDF())
        assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))
    assert not _active_threads()


@pytest.fixture
def ctrl_c_raises() -> Any:
    """Ctrl-C raises KeyboardInterrupt, as at a terminal, also when the tests
    run as a background job (which starts with SIGINT ignored)."""
    import signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_arming_stops_what_was_armed(ctx, data, ctrl_c_raises) -> None:
    """A real SIGINT to this process in the middle of arming: the arm
    finishes, the run ends with KeyboardInterrupt, the stream it started is
    stopped (no receiver left), and the next run is exact."""
    import os
    import signal

    with ctx.make_connection("memory").open(data=data) as conn:
        ctrl = conn.get_active_controller()
        armed = ctrl.arm

        def arm_with_ctrl_c(conn_: Any, nimages: int) -> Any:
            os.kill(os.getpid(), signal.SIGINT)
            return armed(conn_, nimages)

        ctrl.arm = arm_with_ctrl_c  # type: ignore[method-assign]
        aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10), controller=ctrl)
        with pytest.raises(KeyboardInterrupt):
            ctx.run_udf(dataset=aq, udf=SumUDF())
        assert ctrl.armed == 1 and ctrl.stopped == 1, "armed once, and stopped again"
        assert conn.active_stream is None, "the stream started by the arm is closed"
        ctrl.arm = armed  # type: ignore[method-assign]
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
        assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))
    assert not _active_threads()


def test_keyboard_interrupt_while_iterating(ctx, data) -> None:
    with ctx.make_connection("memory").open(data=data) as conn:
        ctrl = conn.get_active_controller()
        aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10), controller=ctrl,
                                  frames_per_partition=10)
        gen = ctx.run_udf_iter(dataset=aq, udf=SumUDF())
        next(gen)
        with pytest.raises(KeyboardInterrupt):
            gen.throw(KeyboardInterrupt())
        assert ctrl.stopped == 1
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
        assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))


def test_timeout_is_reported_with_ledger(ctx, data) -> None:
    with ctx.make_connection("memory").open(data=data, start_delay=5.0, timeout=0.5) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10))
        with pytest.raises(AcquisitionTimeoutError) as info:
            ctx.run_udf(dataset=aq, udf=SumUDF())
    msg = str(info.value)
    assert "no frame at all from the memory detector for 0.5 s" in msg
    assert "received=0" in msg and "expected=60" in msg


def test_truncated_stream_message(ctx, data) -> None:
    with ctx.make_connection("memory").open(data=data, truncate_after=25) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10), frames_per_partition=10)
        with pytest.raises(StreamTruncatedError, match="after 25 frames, but 60 were expected"):
            ctx.run_udf(dataset=aq, udf=SumUDF())
        snap = aq.ledger.snapshot()
        assert (snap.received, snap.missing, snap.first_missing) == (25, 35, 25)


def test_inline_executor_with_partitions_larger_than_ring(data) -> None:
    big = np.random.default_rng(2).integers(0, 9, size=(40, 50, 8, 8), dtype=np.uint8)
    ctx = LiveContext(executor=InlineJobExecutor())
    try:
        from libertem_live.transport.stream import RingConfig
        with ctx.make_connection("memory").open(
                data=big, frames_per_stack=16,
                ring=RingConfig(num_slots=4, slot_bytes=16 * 64, max_frames=16)) as conn:
            aq = ctx.make_acquisition(conn=conn, nav_shape=(40, 50), frames_per_partition=1000)
            res = ctx.run_udf(dataset=aq, udf=SumUDF())
        assert np.array_equal(res["intensity"].data, big.sum(axis=(0, 1)))
        assert aq.ledger.blocked_s > 0, "a 4-slot ring for 2000 frames must block the receiver"
    finally:
        ctx.close()


def test_roi(ctx, data) -> None:
    roi = np.zeros((6, 10), dtype=bool)
    roi[1, 3:7] = True
    roi[4, :] = True
    with ctx.make_connection("memory").open(data=data) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10), frames_per_partition=7)
        res = ctx.run_udf(dataset=aq, udf=[SumUDF(), SumSigUDF()], roi=roi)
    assert np.array_equal(res[0]["intensity"].data, data[roi].sum(axis=0))
    sums = res[1]["intensity"].data
    assert np.array_equal(sums[roi], data[roi].sum(axis=(1, 2)))
    assert aq.ledger.processed == int(roi.sum())


def test_plots_progress_and_async(ctx, data) -> None:
    import asyncio
    with ctx.make_connection("memory").open(data=data) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10), frames_per_partition=20)
        res = ctx.run_udf(dataset=aq, udf=SumUDF(), plots=True, progress=True)
        assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))

        async def run():
            last = None
            async for part in ctx.run_udf_iter(dataset=aq, udf=SumUDF(), sync=False):
                last = part
            return last
        last = asyncio.run(run())
        assert np.array_equal(last.buffers[0]["intensity"].data, data.sum(axis=(0, 1)))


def test_record_refuses_overwrite_before_arming(ctx, data, tmp_path) -> None:
    fn = tmp_path / "scan.npy"
    fn.write_bytes(b"precious")
    with ctx.make_connection("memory").open(data=data) as conn:
        ctrl = conn.get_active_controller()
        aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10), controller=ctrl)
        with pytest.raises(FileExistsError, match="overwrite=True"):
            ctx.run_udf(dataset=aq, udf=RecordUDF(str(fn)))
        assert ctrl.armed == 0, "the detector must not be armed for a refused recording"
        assert fn.read_bytes() == b"precious"
        ctx.run_udf(dataset=aq, udf=RecordUDF(str(fn), overwrite=True))
    assert np.array_equal(np.load(fn), data)
    meta = json.loads((tmp_path / "scan.json").read_text())
    assert meta["complete"] is True and meta["shape"] == [6, 10, 8, 8]
    assert meta["ledger"]["received"] == 60 and meta["detector"] == "memory"


def test_record_failed_run_is_marked_incomplete(ctx, data, tmp_path) -> None:
    fn = tmp_path / "scan.npy"
    with ctx.make_connection("memory").open(data=data, truncate_after=30) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10), frames_per_partition=10)
        with pytest.raises(StreamTruncatedError):
            ctx.run_udf(dataset=aq, udf=RecordUDF(str(fn)))
    assert not fn.exists(), "a failed recording must not appear under the requested name"
    names = sorted(os.listdir(tmp_path))
    assert names == ["scan.incomplete.json", "scan.incomplete.npy"]
    meta = json.loads((tmp_path / "scan.incomplete.json").read_text())
    assert meta["complete"] is False and "StreamTruncatedError" in meta["error"]
    assert meta["ledger"]["received"] == 30


def test_offline_datasets_still_work(ctx) -> None:
    arr = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    ds = ctx.load("memory", data=arr, num_partitions=2)
    res = ctx.run_udf(dataset=ds, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, arr.sum(axis=(0, 1)))


def test_no_shared_memory_left_behind(ctx, data) -> None:
    before = set(os.listdir("/dev/shm"))
    with ctx.make_connection("memory").open(data=data) as conn:
        for _ in range(3):
            aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10))
            ctx.run_udf(dataset=aq, udf=SumUDF())
        pending = conn.wait_for_acquisition(1.0)
        assert pending is not None  # announced, never run: closing conn must free it
    leaked = {n for n in set(os.listdir("/dev/shm")) - before if n.startswith("psm_")}
    assert not leaked, f"shared memory segments left behind: {leaked}"


def test_sparse_tiles_for_sparse_udfs(ctx, data) -> None:
    """UDFs that accept CSR get CSR tiles; dense UDFs get dense ones; same results."""
    from libertem.udf.base import UDF

    class SeenBackend(UDF):
        def get_backends(self):
            return (self.BACKEND_SCIPY_CSR,)

        def get_result_buffers(self):
            return {"total": self.buffer(kind="sig", dtype="float64"),
                    "kinds": self.buffer(kind="nav", dtype="int8")}

        def process_tile(self, tile):
            import scipy.sparse
            assert scipy.sparse.issparse(tile), type(tile)
            self.results.total[:] += np.asarray(tile.sum(axis=0)).reshape(self.results.total.shape)
            self.results.kinds[:] = 1

        def merge(self, dest, src):
            dest.total[:] += src.total
            dest.kinds[:] = src.kinds

    sparse_data = data * (data > 900)
    roi = np.ones((6, 10), dtype=bool)
    roi[2] = False
    with ctx.make_connection("memory").open(data=sparse_data, sparse=True) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10), frames_per_partition=13)
        res = ctx.run_udf(dataset=aq, udf=[SeenBackend(), SumUDF()])
        assert np.array_equal(res[0]["total"].data, sparse_data.sum(axis=(0, 1)))
        assert np.array_equal(res[1]["intensity"].data, sparse_data.sum(axis=(0, 1)))
        assert res[0]["kinds"].data.all()
        res = ctx.run_udf(dataset=aq, udf=SeenBackend(), roi=roi)
        assert np.array_equal(res["total"].data, sparse_data[roi].sum(axis=0))


def test_every_frame_in_its_place_with_a_tiny_ring(ctx) -> None:
    """A 4-slot ring for 12,000 frames: every slot is taken again thousands of
    times while the workers read; each frame carries its own index, so a frame
    read from a slot after the receiver reused it would show in its place."""
    from libertem.udf.sumsigudf import SumSigUDF
    from libertem_live.transport.stream import RingConfig
    n = 12000
    frames = np.repeat(np.arange(n, dtype=np.uint32), 16).reshape(n, 4, 4)
    with ctx.make_connection("memory").open(
            data=frames, frames_per_stack=8,
            ring=RingConfig(num_slots=4, slot_bytes=8 * 64, max_frames=8)) as conn:
        for _ in range(2):
            aq = ctx.make_acquisition(conn=conn, nav_shape=(n,), frames_per_partition=1000)
            res = ctx.run_udf(dataset=aq, udf=SumSigUDF())
            assert np.array_equal(res["intensity"].data, 16 * np.arange(n))
            assert aq.ledger.snapshot().processed == n
            assert aq.ledger.blocked_s > 0


SESSION = """
import sys
import numpy as np
from libertem.udf.sum import SumUDF
from libertem_live.api import LiveContext

if __name__ == "__main__":
    ctx = LiveContext()
    conn = ctx.make_connection("memory").open(data=np.ones((4, 4, 8, 8), dtype=np.uint16))
    aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 4))
    assert ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data.sum() == 16 * 64
    print(" ".join(str(w.process.pid) for w in ctx.executor._pool.workers), flush=True)
    sys.stdin.read()
"""


def test_workers_end_when_the_main_process_is_killed(tmp_path) -> None:
    """SIGKILL to a user's session (no chance to close its pool): its worker
    processes end within a few seconds instead of waiting on their queues
    for ever."""
    import signal
    import subprocess
    import sys
    import time
    script = tmp_path / "session.py"
    script.write_text(SESSION)
    err = open(tmp_path / "session.stderr", "w+")
    proc = subprocess.Popen([sys.executable, str(script)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=err, text=True)
    workers: list[int] = []
    try:
        workers = [int(p) for p in proc.stdout.readline().split()]
        assert len(workers) >= 1, "the session ran no worker: " + err.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

        def alive() -> list[int]:
            left = []
            for pid in workers:
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                            left.append(pid)
                except FileNotFoundError:
                    pass
            return left
        deadline = time.monotonic() + 20
        while alive():
            assert time.monotonic() < deadline, f"workers {alive()} outlived their session"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        err.close()
