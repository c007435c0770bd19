from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live_testing.checks import assert_frames_equal, assert_sum_equal
from libertem_live_testing.suite._util import make_acquisition, open_conn


class TestResults:
    def test_partial_results(self, live_driver: Any, live_ctx: Any,
                             live_mode: str) -> None:
        with live_driver.scenario((8, 16)) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                aq = make_acquisition(live_ctx, sc, conn, live_mode, frames_per_partition=32)
                damage = []
                last = None
                for res in live_ctx.run_udf_iter(dataset=aq, udf=SumUDF()):
                    damage.append(int(res.damage.data.sum()))
                    last = res.buffers[0]["intensity"].data.copy()
                assert damage == [32, 64, 96, 128], f"damage per partial result: {damage}"
                assert_sum_equal(last, sc.expected_sum())

    def test_early_close_then_next_acquisition(self, live_driver: Any, live_ctx: Any,
                                               live_mode: str) -> None:
        with live_driver.scenario((8, 16)) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                aq = make_acquisition(live_ctx, sc, conn, live_mode, frames_per_partition=32)
                gen = live_ctx.run_udf_iter(dataset=aq, udf=SumUDF())
                first = next(gen)
                assert int(first.damage.data.sum()) == 32
                gen.close()
            with open_conn(live_ctx, live_driver, sc) as conn:
                aq = make_acquisition(live_ctx, sc, conn, live_mode)
                res = live_ctx.run_udf(dataset=aq, udf=SumUDF())
                assert_sum_equal(res["intensity"].data, sc.expected_sum(),
                                 "SumUDF after an early-closed run")

    @pytest.mark.live_requires("frames")
    def test_record_round_trip(self, live_driver: Any, live_ctx: Any, tmp_path: Any,
                               live_mode: str) -> None:
        from libertem_live.udf.record import RecordUDF
        filename = tmp_path / "recording.npy"
        with live_driver.scenario((4, 8)) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                aq = make_acquisition(live_ctx, sc, conn, live_mode)
                live_ctx.run_udf(dataset=aq, udf=RecordUDF(str(filename)))
            recorded = np.load(filename)
            assert_frames_equal(recorded, sc.frames())
            assert os.path.exists(tmp_path / "recording.json"), "RecordUDF wrote no sidecar"
