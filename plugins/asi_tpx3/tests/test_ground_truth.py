"""Live results equal the simulator's ground truth, on the dense and the CSR path."""
from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.driver import RingConfig
from libertem_live_asi_tpx3.headers import DType, FormatType
from libertem_live_asi_tpx3.sim import Tpx3Sim

from _udfs import DenseSumUDF, TileKindUDF, receiver_threads

ALL = (DType.U8, DType.U16, DType.U32, DType.U64)
# the smallest sig shape each indices dtype can address (U8: 256 pixels)
SIG_FOR_INDICES = {DType.U8: (16, 16), DType.U16: (64, 64), DType.U32: (64, 64),
                   DType.U64: (64, 64)}


def _truth_in_roi(sim: Tpx3Sim, roi: np.ndarray) -> np.ndarray:
    syn = sim.synth
    per_event = np.repeat(roi.reshape(-1), np.diff(syn.indptr))
    s = np.bincount(syn.indices[per_event], weights=syn.values[per_event],
                    minlength=syn.config.sig_size)
    return s.reshape(syn.config.sig_shape)


def _run_both(ctx: Any, sim: Tpx3Sim, dense_roi: np.ndarray | None = None,
              **open_kw: Any) -> None:
    """Two acquisitions on one connection: SumUDF on CSR tiles, then a numpy-only sum
    (over ``dense_roi`` only, if given: dense 512x512 frames cost ~1 MiB each)."""
    truth = sim.expected_sum()
    with ctx.make_connection("asi_tpx3").open(data_port=sim.port, timeout=10.0,
                                              **open_kw) as conn:
        sim.trigger()
        pending = conn.wait_for_acquisition(timeout=20)
        assert pending is not None
        assert pending.nav_shape == sim.synth.config.nav_shape
        aq = ctx.make_acquisition(conn=conn, pending_aq=pending)
        res = ctx.run_udf(dataset=aq, udf=[SumUDF(), TileKindUDF()])
        np.testing.assert_array_equal(res[0]["intensity"].data, truth)
        kinds = res[1]
        assert int(kinds["sparse"].data[0]) > 0 and int(kinds["dense"].data[0]) == 0, (
            f"SumUDF should get CSR tiles: {int(kinds['sparse'].data[0])} sparse, "
            f"{int(kinds['dense'].data[0])} dense")
        assert aq.ledger.snapshot().missing == 0

        sim.trigger()
        pending = conn.wait_for_acquisition(timeout=20)
        assert pending is not None, "the second acquisition on the same connection"
        aq = ctx.make_acquisition(conn=conn, pending_aq=pending)
        res = ctx.run_udf(dataset=aq, udf=DenseSumUDF(), roi=dense_roi)
        if dense_roi is not None:
            truth = _truth_in_roi(sim, dense_roi)
        np.testing.assert_array_equal(res["intensity"].data, truth)
        assert int(res["dense_tiles"].data[0]) > 0
    assert receiver_threads() == []


@pytest.mark.parametrize("indices_dtype,indptr_dtype",
                         list(itertools.product(ALL, ALL)),
                         ids=lambda d: DType(d).name)
def test_every_dtype_combination(live_ctx: Any, indices_dtype: DType,
                                 indptr_dtype: DType) -> None:
    """Every indices x indptr dtype, all four value dtypes mixed over the chunks of a scan,
    ToT values (so that dtype truncation would show), padded regions."""
    sig = SIG_FOR_INDICES[indices_dtype]
    with Tpx3Sim(nav_shape=(8, 12), sig_shape=sig, events_per_frame=4, frames_per_chunk=10,
                 value_dtypes=ALL, indices_dtype=indices_dtype, indptr_dtype=indptr_dtype,
                 format_type=FormatType.TOT, align=8, extra_pad=3, wait_for_trigger=True,
                 acquisitions_per_connection=None,
                 seed=10 * int(indices_dtype) + int(indptr_dtype)) as sim:
        _run_both(live_ctx, sim)


def test_oversized_chunks_are_split(live_ctx: Any) -> None:
    """Chunks with more rows than a slot's frame table and more bytes than a slot."""
    with Tpx3Sim(nav_shape=(16, 64), sig_shape=(64, 64), events_per_frame=30,
                 frames_per_chunk=300, value_dtypes=(DType.U16, DType.U32),
                 format_type=FormatType.TOT, wait_for_trigger=True,
                 acquisitions_per_connection=None, seed=5) as sim:
        assert max(len(c) for c in sim.synth.chunks) > 16 << 10
        _run_both(live_ctx, sim, ring=RingConfig(num_slots=6, slot_bytes=16 << 10,
                                                 max_frames=64))


def test_big_scan_512x512_frames(live_ctx: Any) -> None:
    """The real geometry once: 256x256 positions of 512x512 frames.

    CSR tiles for the whole scan; the dense pass decodes every 8th scan row
    (8192 frames) - all 65536 dense frames would write 64 GiB and take
    minutes on a 2-core box without testing anything more.
    """
    roi = np.zeros((256, 256), bool)
    roi[::8] = True
    with Tpx3Sim(nav_shape=(256, 256), sig_shape=(512, 512), events_per_frame=3,
                 wait_for_trigger=True, acquisitions_per_connection=None, seed=1) as sim:
        _run_both(live_ctx, sim, dense_roi=roi)
