"""``LiveContext(executor=...)`` takes executor names as its docstring offers."""
from __future__ import annotations

import numpy as np
import pytest
from libertem.executor.inline import InlineJobExecutor
from libertem.udf.sum import SumUDF

from libertem_live.api import LiveContext
from libertem_live.executor import LivePipelinedExecutor


def _run_memory(ctx: LiveContext) -> None:
    data = np.arange(3 * 4 * 4 * 4, dtype=np.uint16).reshape((3, 4, 4, 4))
    with ctx.make_connection("memory").open(data=data) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(3, 4))
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))


def test_inline_by_name() -> None:
    ctx = LiveContext(executor="inline")
    try:
        assert isinstance(ctx.executor, InlineJobExecutor)
        _run_memory(ctx)
    finally:
        ctx.close()


def test_pipelined_by_name() -> None:
    ctx = LiveContext(executor="pipelined")
    try:
        assert isinstance(ctx.executor, LivePipelinedExecutor)
        _run_memory(ctx)
    finally:
        ctx.close()


@pytest.mark.parametrize("name", ["dask", "Inline", ""])
def test_unknown_name_lists_the_choices(name: str) -> None:
    with pytest.raises(ValueError, match=f"unknown executor {name!r}: .*'pipelined', 'inline'"):
        LiveContext(executor=name)
