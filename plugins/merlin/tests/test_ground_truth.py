"""Ground truth: live results over real sockets equal the simulator's frames.

A real ``LiveContext`` (the kit's ``live_ctx``: pipelined executor, two
workers) and ``MerlinSim`` on real TCP ports.  Sums are compared exactly:
the synthetic frames are small Poisson counts (plus a few hot pixels), so
float32 sums are exact and any lost, repeated, misplaced or mis-decoded
pixel shows.  Every counter depth x raw/sorted x layout runs on a small
scan (active mode, the settings written through the control port); the
main formats also run the full 128 x 128 scan, in passive mode.
"""
from __future__ import annotations

import itertools
from typing import Any, Iterator

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.udf.record import RecordUDF

from libertem_live_merlin.sim import MerlinSim

TIMEOUT = 15.0
LAYOUTS = ("1x1", "2x2", "2x2G")


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, MerlinSim]]:
    """One simulator per layout for the module (depth and format are set per
    run over the control port, as a user would)."""
    started = {layout: MerlinSim(layout=layout, pool_size=8, frames=16).start()
               for layout in LAYOUTS}
    try:
        yield started
    finally:
        for s in started.values():
            s.stop()


def connect(ctx: Any, sim: MerlinSim) -> Any:
    return ctx.make_connection("merlin").open(
        api_host="127.0.0.1", api_port=sim.control_port, data_host="127.0.0.1",
        data_port=sim.data_port, timeout=TIMEOUT)


def _sig(layout: str) -> tuple[int, int]:
    return {"1x1": (256, 256), "2x2": (512, 512), "2x2G": (514, 514)}[layout]


@pytest.mark.parametrize("layout,depth,raw", [
    (layout, depth, raw) for layout, depth, raw in
    itertools.product(LAYOUTS, (1, 6, 12, 24), (False, True))
])
def test_every_format_small_scan(live_ctx: Any, sims: dict[str, MerlinSim], layout: str,
                                 depth: int, raw: bool) -> None:
    sim = sims[layout]
    nav = (2, 4) if layout != "1x1" else (4, 4)
    with connect(live_ctx, sim) as conn:
        ctl = conn.get_active_controller(counter_depth=depth,
                                         file_format="raw" if raw else "sorted",
                                         soft_trigger=True)
        aq = live_ctx.make_acquisition(conn=conn, nav_shape=nav, controller=ctl)
        assert tuple(aq.shape.sig) == _sig(layout)
        expected_dtype = {1: np.uint8, 6: np.uint8, 12: np.uint16, 24: np.uint32}[depth]
        assert aq.dtype == expected_dtype
        res = live_ctx.run_udf(dataset=aq, udf=SumUDF())
        n = nav[0] * nav[1]
        expected = sim.expected_sum(n)
        got = res["intensity"].data
        assert got.shape == expected.shape
        assert np.array_equal(got, expected), (
            f"{layout} {depth}-bit {'raw' if raw else 'sorted'}: "
            f"{int((got != expected).sum())} pixels differ")
        snap = aq.ledger.snapshot()
        assert (snap.received, snap.processed, snap.missing) == (n, n, 0), snap


@pytest.mark.parametrize("depth,raw", [(12, False), (12, True), (1, True), (6, False)])
def test_full_scan_128x128_passive(live_ctx: Any, depth: int, raw: bool) -> None:
    nav = (128, 128)
    n = nav[0] * nav[1]
    with MerlinSim(frames=n, scan_shape=nav, counter_depth=depth, raw=raw,
                   pool_size=16) as sim:
        with connect(live_ctx, sim) as conn:
            conn.get_control().cmd("STARTACQUISITION")
            pending = conn.wait_for_acquisition(TIMEOUT)
            assert pending is not None
            assert pending.nav_shape == nav and pending.nimages == n
            aq = live_ctx.make_acquisition(conn=conn, pending_aq=pending)
            assert tuple(aq.shape.nav) == nav
            res = live_ctx.run_udf(dataset=aq, udf=SumUDF())
            assert np.array_equal(res["intensity"].data, sim.expected_sum(n))
            snap = aq.ledger.snapshot()
            assert (snap.received, snap.processed, snap.missing) == (n, n, 0), snap


@pytest.mark.parametrize("layout,depth", [("2x2", 12), ("2x2G", 12), ("2x2G", 1),
                                          ("2x2", 6)])
def test_quad_frames_assemble_like_the_simulator(live_ctx: Any, sims: dict[str, MerlinSim],
                                                 tmp_path: Any, layout: str,
                                                 depth: int) -> None:
    """Raw quad frames recorded live are pixel for pixel the images the
    simulator assembled (Q3/Q4 rotated, gaps zero)."""
    sim = sims[layout]
    nav = (2, 3)
    path = tmp_path / "rec.npy"
    with connect(live_ctx, sim) as conn:
        ctl = conn.get_active_controller(counter_depth=depth, file_format="raw",
                                         soft_trigger=True)
        aq = live_ctx.make_acquisition(conn=conn, nav_shape=nav, controller=ctl)
        live_ctx.run_udf(dataset=aq, udf=RecordUDF(str(path)))
    rec = np.load(path)
    assert rec.shape == nav + _sig(layout)
    flat = rec.reshape((-1,) + _sig(layout))
    for i in range(nav[0] * nav[1]):
        truth = sim.frame(i)
        assert np.array_equal(flat[i], truth), f"frame {i}: {(flat[i] != truth).sum()} px"
    if layout == "2x2G":
        assert not flat[:, 256:258, :].any() and not flat[:, :, 256:258].any()
