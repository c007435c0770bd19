from __future__ import annotations

from typing import Any

import pytest
from libertem.udf.sum import SumUDF

from libertem_live_testing.checks import assert_sum_equal
from libertem_live_testing.suite._util import open_conn, wait_pending


@pytest.mark.live_requires("passive")
class TestPassive:
    def test_pending_acquisition_and_sum(self, live_driver: Any, live_ctx: Any) -> None:
        with live_driver.scenario((8, 16)) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                pending = wait_pending(conn, sc)
                assert pending.nimages == sc.nimages, (
                    f"pending acquisition announces {pending.nimages} images, the simulator "
                    f"sends {sc.nimages}")
                aq = live_ctx.make_acquisition(conn=conn, pending_aq=pending,
                                               nav_shape=sc.nav_shape)
                assert tuple(aq.shape.nav) == sc.nav_shape
                assert tuple(aq.shape.sig) == tuple(sc.sig_shape)
                res = live_ctx.run_udf(dataset=aq, udf=SumUDF())
                assert_sum_equal(res["intensity"].data, sc.expected_sum())
                ledger = aq.ledger.snapshot()
                assert (ledger.expected, ledger.received, ledger.processed, ledger.missing) == (
                    sc.nimages, sc.nimages, sc.nimages, 0), f"ledger after a clean run: {ledger}"

    def test_passive_acquisition_runs_once(self, live_driver: Any, live_ctx: Any) -> None:
        from libertem_live.errors import AcquisitionStateError
        with live_driver.scenario((4, 8)) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                aq = live_ctx.make_acquisition(conn=conn, pending_aq=wait_pending(conn, sc),
                                               nav_shape=sc.nav_shape)
                live_ctx.run_udf(dataset=aq, udf=SumUDF())
                with pytest.raises(AcquisitionStateError, match="wait_for_acquisition"):
                    live_ctx.run_udf(dataset=aq, udf=SumUDF())

    def test_hooks_ready_for_data_not_called(self, live_driver: Any, live_ctx: Any) -> None:
        from libertem_live.api import Hooks
        calls: list[Any] = []

        class Recorder(Hooks):
            def on_ready_for_data(self, env: Any) -> None:
                calls.append(env)

        with live_driver.scenario((4, 8)) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                aq = live_ctx.make_acquisition(conn=conn, pending_aq=wait_pending(conn, sc),
                                               nav_shape=sc.nav_shape, hooks=Recorder())
                live_ctx.run_udf(dataset=aq, udf=SumUDF())
        assert calls == [], "on_ready_for_data must not be called in passive mode"
