"""Upstream LiberTEM-live 0.3 behaviour its scripts rely on, on the memory
driver (the ``compat`` nox session runs upstream's own tests; these keep the
same behaviour covered in our suite)."""
from __future__ import annotations

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.api import LiveContext
from libertem_live.errors import NavShapeError
from libertem_live.udf.monitor import PartitionMonitorUDF, SignalMonitorUDF


@pytest.fixture(scope="module")
def ctx():
    with LiveContext(executor="inline") as c:
        yield c


def test_active_mode_takes_the_scan_shape_from_the_array(ctx) -> None:
    data = np.random.default_rng(1).random((5, 7, 4, 6))
    with ctx.make_connection("memory").open(data=data) as conn:
        aq = ctx.make_acquisition(conn=conn)
        assert tuple(aq.shape.nav) == (5, 7)
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert np.allclose(res["intensity"].data, data.sum(axis=(0, 1)))


def test_extra_kwargs_datashape_and_array_backends(ctx) -> None:
    with ctx.make_connection("memory").open(
            data=None, extra_kwargs={"datashape": (4, 4, 8, 8),
                                     "array_backends": ("sparse.GCXS",)}) as conn:
        aq = ctx.make_acquisition(conn=conn)
        assert aq.array_backends == ("sparse.GCXS",)
        res = ctx.run_udf(dataset=aq, udf=SignalMonitorUDF())
        assert res["intensity"].data.shape == (8, 8)
    with pytest.raises(TypeError, match="not supported"):
        ctx.make_connection("memory").open(data=np.zeros((2, 2, 2, 2)),
                                           extra_kwargs={"bogus": 1})


def test_partition_monitor_sums_in_float32_by_default(ctx) -> None:
    data = np.ones((2, 3, 4, 4), dtype=np.uint16)
    with ctx.make_connection("memory").open(data=data) as conn:
        res = ctx.run_udf(dataset=ctx.make_acquisition(conn=conn), udf=PartitionMonitorUDF())
    assert res["intensity"].data.dtype == np.float32


def test_removed_prepare_acquisition_says_what_replaced_it(ctx) -> None:
    with pytest.raises(RuntimeError, match="make_acquisition"):
        ctx.prepare_acquisition("merlin")


def test_unknown_active_nav_shape_is_also_a_runtime_error(ctx) -> None:
    class Unsure:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def determine_nav_shape(self, nimages):
            return None

    with ctx.make_connection("memory").open(data=np.zeros((2, 2, 2, 2))) as conn:
        ctrl = Unsure(conn.get_active_controller())
        with pytest.raises(RuntimeError) as info:
            ctx.make_acquisition(conn=conn, controller=ctrl)
        assert isinstance(info.value, NavShapeError)
