"""Merlin frames processed on a real dask.distributed cluster (a scheduler
and one worker process over loopback TCP): the worker, on this machine,
reads the MPX frames from the ring by reference, or gets them packed into
its task as the detector sent them (raw R64 quad words or sorted U16,
headers included), as a worker on another machine would; it decodes them
with the driver's decoder.  SumUDF and SumSigUDF equal the simulator's
ground truth exactly (small Poisson counts: every float32 sum is exact)."""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import pytest
from libertem.executor.dask import DaskJobExecutor
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

from libertem_live.api import LiveContext
from libertem_live.cluster.processes import ProcessCluster
from libertem_live_merlin.sim import MerlinSim

TIMEOUT = 15.0
NAV = (8, 12)


@pytest.fixture(scope="module")
def cluster() -> Iterator[ProcessCluster]:
    with ProcessCluster(workers=1) as c:
        yield c
    assert all(p.poll() is not None for p in [c.scheduler, *c.workers]), "processes left"


@pytest.fixture(scope="module")
def cluster_ctx(cluster: ProcessCluster) -> Iterator[LiveContext]:
    ctx = LiveContext(executor=DaskJobExecutor.connect(cluster.address))
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(scope="module")
def sim() -> Iterator[MerlinSim]:
    with MerlinSim(frames=math.prod(NAV), pool_size=16) as s:
        yield s


@pytest.mark.parametrize("file_format,path", [("raw", "ring"), ("sorted", "packed")])
def test_12bit_on_cluster(cluster_ctx: LiveContext, sim: MerlinSim, file_format: str,
                          path: str) -> None:
    n = math.prod(NAV)
    ctx = cluster_ctx
    ctx.executor.locality = path == "ring"
    with ctx.make_connection("merlin").open(
            api_host="127.0.0.1", api_port=sim.control_port, data_host="127.0.0.1",
            data_port=sim.data_port, timeout=TIMEOUT) as conn:
        ctl = conn.get_active_controller(counter_depth=12, file_format=file_format,
                                         soft_trigger=True)
        aq = ctx.make_acquisition(conn=conn, nav_shape=NAV, controller=ctl,
                                  frames_per_partition=24)
        res: Any = ctx.run_udf(dataset=aq, udf=[SumUDF(), SumSigUDF()])
        snap = aq.ledger.snapshot()
    assert np.array_equal(res[0]["intensity"].data, sim.expected_sum(n))
    per_frame = np.array([sim.frame(k).sum(dtype=np.float64) for k in range(n)]).reshape(NAV)
    assert np.array_equal(res[1]["intensity"].data, per_frame)
    assert (snap.received, snap.dispatched, snap.decoded, snap.processed, snap.missing) == (
        n, n, n, n, 0), snap
    assert sum(ctx.executor.frames_by_worker.values()) == n  # decoded on the worker
    assert ctx.executor.frames_by_reference == (n if path == "ring" else 0)
