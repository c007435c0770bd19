"""Behaviour of upstream LiberTEM-live 0.3 names that upstream's own tests
reach only partly here (see compat/deselected.py): the Merlin control client
as upstream scripts use it, and the DECTRIS simulator's ``data_filter``."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.api import Hooks, LiveContext
from libertem_live.detectors.merlin import MerlinBusyError, MerlinControl
from libertem_live.detectors.merlin.control import MerlinControl as FromControlModule


@contextmanager
def _dectris(ctx: LiveContext, **sim_kw: Any) -> Iterator[tuple[Any, Any]]:
    """A started DectrisSim (upstream's name) and a connection to it; both
    closed afterwards."""
    from libertem_live.detectors.dectris.sim import DectrisSim

    sim = DectrisSim(**sim_kw)
    sim.start()
    try:
        with ctx.make_connection("dectris").open(
                api_host="127.0.0.1", api_port=sim.port,
                data_host="127.0.0.1", data_port=sim.zmqport) as conn:
            yield sim, conn
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def ctx():
    ctx = LiveContext.make_with("inline")
    yield ctx
    ctx.close()


def test_merlin_control_speaks_bytes_and_reads_command_files(tmp_path: Path) -> None:
    from libertem_live_merlin.sim import MerlinSim

    assert FromControlModule is MerlinControl
    commands = tmp_path / "cmd.txt"
    commands.write_text("SET,COUNTERDEPTH,6\n\nSET,NUMFRAMESTOACQUIRE,23\n")
    with MerlinSim(frames=4, pool_size=2) as sim:
        with MerlinControl("127.0.0.1", sim.control_port) as c:
            c.set("COUNTERDEPTH", 12)
            assert c.get("COUNTERDEPTH") == b"12"
            c.send_command_file(commands)
            assert c.get("COUNTERDEPTH") == b"6"
            assert c.get("NUMFRAMESTOACQUIRE") == b"23"
            bad = tmp_path / "bad.txt"
            bad.write_text("SET,COUNTERDEPTH\n")
            with pytest.raises(ValueError, match="line 1"):
                c.send_command_file(bad)


def test_hook_that_starts_the_merlin_itself_works_in_active_mode(ctx: LiveContext) -> None:
    """Upstream's way: on_ready_for_data sends CMD STARTACQUISITION and then
    triggers.  Active mode has already started the detector; that start is
    let pass, and the scan is exact."""
    from libertem_live_merlin.sim import MerlinSim

    with MerlinSim(frames=16, scan_shape=(4, 4), trigger=5, pool_size=4) as sim:
        port = sim.control_port

        class StartsItself(Hooks):
            def on_ready_for_data(self, env) -> None:
                with MerlinControl("127.0.0.1", port) as c:
                    c.cmd("STARTACQUISITION")
                    c.cmd("SOFTTRIGGER")

        with ctx.make_connection("merlin").open(
                api_host="127.0.0.1", api_port=port,
                data_host="127.0.0.1", data_port=sim.data_port) as conn:
            aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 4), hooks=StartsItself())
            res = ctx.run_udf(dataset=aq, udf=SumUDF())
            assert np.array_equal(res["intensity"].data, sim.expected_sum())
            # no run of ours started it now: a busy detector is an error again
            with MerlinControl("127.0.0.1", port) as c:
                c.cmd("STARTACQUISITION")
                with pytest.raises(MerlinBusyError):
                    c.cmd("STARTACQUISITION")
                c.cmd("STOPACQUISITION")


def test_dectris_data_filter_sees_every_part_and_can_drop_an_image(ctx: LiveContext) -> None:
    from libertem_live.errors import FrameGapError

    seen: list[int] = []

    def drop_third_image(part):
        seen.append(len(seen))
        # parts 0-1: header and config; then 4 parts per image
        return None if 10 <= len(seen) - 1 <= 13 else part

    with _dectris(ctx, frames=16, shape=(32, 32), data_filter=drop_third_image) as (sim, conn):
        aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 4))
        with pytest.raises(FrameGapError):
            ctx.run_udf(dataset=aq, udf=SumUDF())
        aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 4))
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
        assert np.array_equal(res["intensity"].data, sim.expected_sum())
    assert len(seen) >= 2 * (2 + 4 * 16)


def test_excluded_pixels_on_a_live_acquisition_match_offline(ctx: LiveContext) -> None:
    """``run_udf(..., corrections=CorrectionSet(excluded_pixels=...))`` on a
    live DECTRIS acquisition patches the same pixels, the same way, as LiberTEM
    does on the same frames offline."""
    import sparse
    from libertem.io.corrections import CorrectionSet

    bad_y = (3, 17, 40, 0, 63, 20)
    bad_x = (5, 17, 2, 63, 0, 21)
    with _dectris(ctx, frames=64, shape=(64, 64), pool_size=8) as (sim, conn):
        aq = ctx.make_acquisition(conn=conn, nav_shape=(8, 8))
        corr = CorrectionSet(excluded_pixels=sparse.COO(
            coords=np.stack((bad_y, bad_x)), data=1, shape=aq.shape.sig))
        live = ctx.run_udf(dataset=aq, udf=SumUDF(), corrections=corr)["intensity"].data
    frames = np.stack([sim.frame(k) for k in range(64)]).reshape(8, 8, 64, 64)
    offline_ds = ctx.load("memory", data=frames)
    offline = ctx.run_udf(dataset=offline_ds, udf=SumUDF(), corrections=corr)["intensity"].data
    np.testing.assert_allclose(live, offline)
    assert not np.allclose(live, frames.sum(axis=(0, 1)))  # the pixels were patched
