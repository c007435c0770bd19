from __future__ import annotations

from typing import Any

import pytest
from libertem.udf.sum import SumUDF

from libertem_live_testing.checks import assert_sum_equal
from libertem_live_testing.suite._util import make_acquisition, open_conn


class TestConnection:
    def test_close_is_idempotent_and_with_reopens(self, live_driver: Any, live_ctx: Any,
                                                  live_mode: str) -> None:
        with live_driver.scenario((4, 8)) as sc:
            conn = open_conn(live_ctx, live_driver, sc)
            conn.close()
            conn.close()
            with conn:
                aq = make_acquisition(live_ctx, sc, conn, live_mode)
                res = live_ctx.run_udf(dataset=aq, udf=SumUDF())
                assert_sum_equal(res["intensity"].data, sc.expected_sum())
            conn.close()

    @pytest.mark.live_requires("passive")
    def test_wait_for_acquisition_times_out_with_none(self, live_driver: Any,
                                                      live_ctx: Any) -> None:
        with live_driver.scenario((4, 8)) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                assert conn.wait_for_acquisition(timeout=0.5) is None, (
                    "wait_for_acquisition must return None when nothing was armed")
