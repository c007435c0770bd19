from __future__ import annotations

from typing import Any

import pytest
from libertem.udf.sum import SumUDF

from libertem_live_testing.checks import assert_sum_equal
from libertem_live_testing.suite._util import open_conn, wait_pending


def _make(ctx: Any, harness: Any, sc: Any, conn: Any) -> Any:
    if harness.capabilities.active:
        return ctx.make_acquisition(conn=conn, nav_shape=sc.nav_shape,
                                    controller=sc.active_controller(conn),
                                    frames_per_partition=16)
    return ctx.make_acquisition(conn=conn, nav_shape=sc.nav_shape,
                                pending_aq=wait_pending(conn, sc), frames_per_partition=16)


@pytest.mark.live_requires("short_stream")
class TestFaults:
    def test_short_stream_is_reported(self, live_driver: Any, live_ctx: Any) -> None:
        from libertem_live.errors import AcquisitionError
        with live_driver.scenario((8, 8), short_by=20) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                aq = _make(live_ctx, live_driver, sc, conn)
                with pytest.raises(AcquisitionError) as info:
                    live_ctx.run_udf(dataset=aq, udf=SumUDF())
                ledger = info.value.ledger
                assert ledger is not None, "the error must carry the acquisition's ledger"
                snap = ledger.snapshot()
                assert snap.expected == 64 and snap.received == 44, f"ledger: {snap}"
                assert snap.missing == 20 and snap.first_missing == 44, f"ledger: {snap}"
                assert "44" in str(info.value) and "64" in str(info.value), (
                    f"the message should say how many frames came: {info.value}")

    def test_connection_usable_after_failure(self, live_driver: Any, live_ctx: Any) -> None:
        from libertem_live.errors import AcquisitionError
        with live_driver.scenario((8, 8), short_by=20) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                with pytest.raises(AcquisitionError):
                    live_ctx.run_udf(dataset=_make(live_ctx, live_driver, sc, conn),
                                     udf=SumUDF())
        with live_driver.scenario((8, 8)) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                res = live_ctx.run_udf(dataset=_make(live_ctx, live_driver, sc, conn),
                                       udf=SumUDF())
                assert_sum_equal(res["intensity"].data, sc.expected_sum())
