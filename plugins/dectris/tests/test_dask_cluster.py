"""DECTRIS bitshuffle-LZ4 frames processed on a real dask.distributed cluster
(scheduler and worker processes over loopback TCP): the worker, on this
machine, reads the frames from the ring by reference, or gets them packed
into its task compressed, as the detector sent them (as a worker on another
machine would), and decodes them with the driver's decoder; SumUDF and
SumSigUDF equal the simulator's ground truth exactly."""
from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from libertem.executor.dask import DaskJobExecutor
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

from libertem_live.api import LiveContext
from libertem_live.cluster.processes import ProcessCluster
from libertem_live_dectris.sim import DectrisSim

TIMEOUT = 10.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[ProcessCluster]:
    with ProcessCluster(workers=1) as c:
        yield c


@pytest.fixture
def cluster_ctx(start_sim: Any, cluster: ProcessCluster) -> Iterator[LiveContext]:
    """Set up after ``start_sim`` (so after the conftest's leak check took its
    snapshot) and closed before that check: the dask client's sockets are
    its own, not the driver's."""
    ctx = LiveContext(executor=DaskJobExecutor.connect(cluster.address))
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.mark.parametrize("path", ["ring", "packed"])
def test_bslz4_uint16_on_cluster(start_sim: Callable[..., DectrisSim],
                                 cluster_ctx: LiveContext, path: str) -> None:
    nav = (16, 24)
    n = math.prod(nav)
    sim = start_sim(frames=n, shape=(128, 96), dtype="uint16", compression="bslz4",
                    pool_size=16)
    ctx = cluster_ctx
    ctx.executor.locality = path == "ring"
    with ctx.make_connection("dectris").open(
            api_host="127.0.0.1", api_port=sim.port, data_host="127.0.0.1",
            data_port=sim.zmqport, timeout=TIMEOUT) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=nav, frames_per_partition=64,
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        res: Any = ctx.run_udf(dataset=aq, udf=[SumUDF(), SumSigUDF()])
        snap = aq.ledger.snapshot()
    assert np.array_equal(res[0]["intensity"].data.astype(np.float64), sim.expected_sum(n))
    per_frame = np.array([sim.frame(k).sum(dtype=np.float64) for k in range(n)]).reshape(nav)
    assert np.array_equal(res[1]["intensity"].data, per_frame)
    assert (snap.received, snap.dispatched, snap.decoded, snap.processed, snap.missing) == (
        n, n, n, n, 0), snap
    assert sum(ctx.executor.frames_by_worker.values()) == n  # decoded on the worker
    assert ctx.executor.frames_by_reference == (n if path == "ring" else 0)
