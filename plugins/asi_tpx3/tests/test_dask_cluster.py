"""ASI TPX3 sparse frames processed on a real dask.distributed cluster (a
scheduler and one worker process over loopback TCP): the worker, on this
machine, reads each partition's CSR rows from the ring by reference, or
gets them packed into its task as the detector sent them (as a worker on
another machine would), and decodes them with the driver's decoder, into
CSR tiles for UDFs that take them and into dense tiles for those that do
not; results equal the simulator's ground truth exactly."""
from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np
import pytest
from libertem.executor.dask import DaskJobExecutor
from libertem.udf.sum import SumUDF
from libertem.udf.sumsigudf import SumSigUDF

from libertem_live.api import LiveContext
from libertem_live.cluster.processes import ProcessCluster
from libertem_live_asi_tpx3.headers import DType
from libertem_live_asi_tpx3.sim import Tpx3Sim

from _udfs import DenseSumUDF, TileKindUDF, receiver_threads

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def cluster() -> Iterator[ProcessCluster]:
    # the worker imports _udfs (from this directory) to unpickle the test UDFs
    with ProcessCluster(workers=1, env={"PYTHONPATH": HERE}) as c:
        yield c
    assert all(p.poll() is not None for p in [c.scheduler, *c.workers]), "processes left"


@pytest.fixture(scope="module")
def cluster_ctx(cluster: ProcessCluster) -> Iterator[LiveContext]:
    ctx = LiveContext(executor=DaskJobExecutor.connect(cluster.address))
    try:
        yield ctx
    finally:
        ctx.close()


def test_sparse_and_dense_on_cluster(cluster_ctx: LiveContext) -> None:
    ctx = cluster_ctx
    nav = (12, 16)
    with Tpx3Sim(nav_shape=nav, sig_shape=(64, 64), events_per_frame=20,
                 frames_per_chunk=40, value_dtypes=(DType.U16, DType.U32),
                 wait_for_trigger=True, acquisitions_per_connection=None, seed=7) as sim:
        syn = sim.synth
        assert syn is not None
        n = syn.config.nframes
        per_frame = np.bincount(np.repeat(np.arange(n), np.diff(syn.indptr)),
                                weights=syn.values, minlength=n).reshape(nav)
        with ctx.make_connection("asi_tpx3").open(data_port=sim.port, timeout=10.0) as conn:
            for locality in (True, False):
                ctx.executor.locality = locality
                sim.trigger()
                pending = conn.wait_for_acquisition(timeout=20)
                assert pending is not None
                aq = ctx.make_acquisition(conn=conn, pending_aq=pending,
                                          frames_per_partition=32)
                res: Any = ctx.run_udf(dataset=aq, udf=[SumUDF(), SumSigUDF(), TileKindUDF()])
                snap = aq.ledger.snapshot()
                assert np.array_equal(res[0]["intensity"].data, sim.expected_sum())
                assert np.array_equal(res[1]["intensity"].data, per_frame)
                kinds = res[2]
                assert int(kinds["sparse"].data[0]) > 0 and int(kinds["dense"].data[0]) == 0
                assert (snap.received, snap.dispatched, snap.decoded, snap.processed,
                        snap.missing) == (n, n, n, n, 0), snap
                assert sum(ctx.executor.frames_by_worker.values()) == n  # on the worker
                assert ctx.executor.frames_by_reference == (n if locality else 0)

            ctx.executor.locality = True
            sim.trigger()
            pending = conn.wait_for_acquisition(timeout=20)
            assert pending is not None, "the next acquisition on the same connection"
            aq = ctx.make_acquisition(conn=conn, pending_aq=pending, frames_per_partition=32)
            res = ctx.run_udf(dataset=aq, udf=DenseSumUDF())
            assert np.array_equal(res["intensity"].data, sim.expected_sum())
            assert int(res["dense_tiles"].data[0]) > 0
    assert receiver_threads() == []
