"""Frame order, checked without RecordUDF: a per-frame checksum (nav-shaped)
against the same checksum of the frames the simulator sent.  A plain sum
cannot see two swapped frames; this can, and the ground truth is checked to
be able to see it."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from libertem_live_testing.checks import assert_checksums_equal
from libertem_live_testing.suite._util import make_acquisition, open_conn
from libertem_live_testing.udfs import ChecksumUDF, checksums

NAV = (8, 16)


@pytest.mark.live_requires("frames")
class TestFrameOrder:
    def test_ground_truth_sees_order(self, live_driver: Any) -> None:
        with live_driver.scenario(NAV) as sc:
            frames = np.asarray(sc.frames())
        assert frames.shape == NAV + tuple(sc.sig_shape), (
            f"scenario.frames() has shape {frames.shape}, expected nav {NAV} + sig "
            f"{tuple(sc.sig_shape)}")
        sums = checksums(frames).reshape(-1)
        same = np.flatnonzero(sums[:-1] == sums[1:])
        assert not len(same), (
            f"the ground truth cannot see a swap: frames {same[0]} and {same[0] + 1} (and "
            f"{len(same) - 1} more neighbouring pairs) are alike; the simulator must send "
            "frames that differ from their neighbours")
        flat = frames.reshape((-1,) + frames.shape[len(NAV):])
        swapped = flat.copy()
        swapped[[0, 1]] = swapped[[1, 0]]
        assert not np.array_equal(checksums(swapped), checksums(flat)), (
            "checksums of the frames with frames 0 and 1 swapped do not differ")
        if flat.shape[-1] == flat.shape[-2]:
            assert not np.array_equal(checksums(flat.swapaxes(-1, -2)), checksums(flat)), (
                "the ground truth cannot see transposed frames: every frame is symmetric")
        by_columns = frames.swapaxes(0, 1).reshape(frames.shape)
        assert not np.array_equal(checksums(by_columns), checksums(frames)), (
            "the ground truth cannot see a scan written column by column")

    def test_checksum_per_frame(self, live_driver: Any, live_ctx: Any,
                                live_mode: str) -> None:
        with live_driver.scenario(NAV) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                aq = make_acquisition(live_ctx, sc, conn, live_mode, frames_per_partition=32)
                res = live_ctx.run_udf(dataset=aq, udf=ChecksumUDF())
            assert_checksums_equal(res["checksum"].data, checksums(sc.frames()))
