from __future__ import annotations

from typing import Any

import pytest
from libertem.udf.sum import SumUDF

from libertem_live_testing.checks import assert_sum_equal
from libertem_live_testing.suite._util import open_conn


@pytest.mark.live_requires("active")
class TestActive:
    def test_ready_for_data_called_once_per_run(self, live_driver: Any, live_ctx: Any) -> None:
        from libertem_live.api import Hooks
        calls: list[tuple[int, ...]] = []

        class Recorder(Hooks):
            def on_ready_for_data(self, env: Any) -> None:
                calls.append(tuple(env.aq.shape.nav))

        with live_driver.scenario((8, 16)) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                aq = live_ctx.make_acquisition(conn=conn, nav_shape=sc.nav_shape,
                                               controller=sc.active_controller(conn),
                                               hooks=Recorder())
                res = live_ctx.run_udf(dataset=aq, udf=SumUDF())
                assert_sum_equal(res["intensity"].data, sc.expected_sum())
                assert calls == [sc.nav_shape], (
                    f"on_ready_for_data calls: {calls}, expected exactly one with nav shape "
                    f"{sc.nav_shape}")
                res = live_ctx.run_udf(dataset=aq, udf=SumUDF())
                assert_sum_equal(res["intensity"].data, sc.expected_sum(), "second run")
                assert len(calls) == 2, "an active acquisition re-arms for every run"

    def test_active_needs_concrete_nav_shape(self, live_driver: Any, live_ctx: Any) -> None:
        from libertem_live.errors import NavShapeError
        with live_driver.scenario((4, 8)) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                knows = getattr(sc.active_controller(conn), "determine_nav_shape", None)
                told = None if knows is None else knows(None)
                if told is not None:
                    # the controller knows the scan shape: then it is used, not required
                    aq = live_ctx.make_acquisition(conn=conn,
                                                   controller=sc.active_controller(conn))
                    assert tuple(aq.shape.nav) == tuple(told)
                    return
                with pytest.raises(NavShapeError, match="concrete nav_shape"):
                    live_ctx.make_acquisition(conn=conn, controller=sc.active_controller(conn))
                with pytest.raises(NavShapeError, match="concrete nav_shape"):
                    live_ctx.make_acquisition(conn=conn, nav_shape=(-1, 8),
                                              controller=sc.active_controller(conn))
