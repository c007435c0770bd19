"""Several receiving sockets on one stream V2 (``receivers=N``): the
simulator's PUSH socket deals the messages out in turn, as a DCU's does;
the images must come out in order and exact, and a lost image is still a
FrameGapError."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.driver import FrameGapError
from libertem_live_dectris import receiver_fanin
from libertem_live_dectris.client import SimplonClient
from libertem_live_dectris.sim import DectrisSim, write_dump

TIMEOUT = 10.0
NAV = (6, 10)
N = NAV[0] * NAV[1]


@pytest.fixture
def make_sim(start_sim: Callable[..., DectrisSim]) -> Callable[..., DectrisSim]:
    return lambda **kw: start_sim(**{"pool_size": 8, "stream": "v2", "frames": N,
                                     "shape": (24, 20), "dtype": "uint16", **kw})


def connect(ctx: Any, sim: DectrisSim, receivers: int) -> Any:
    return ctx.make_connection("dectris").open(
        api_host="127.0.0.1", api_port=sim.port, data_host="127.0.0.1", stream="v2",
        data_port=sim.v2_port, timeout=TIMEOUT, receivers=receivers)


def run_passive(ctx: Any, conn: Any, sim: DectrisSim) -> tuple[Any, np.ndarray]:
    SimplonClient("127.0.0.1", sim.port).sendDetectorCommand("arm")
    pending = conn.wait_for_acquisition(TIMEOUT)
    assert pending is not None
    aq = ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=NAV)
    got = ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data.astype(np.float64)
    return aq, got


@pytest.mark.parametrize("receivers", [2, 3])
def test_passive_runs_are_exact_and_in_order(make_sim: Any, ctx: Any, receivers: int) -> None:
    sim = make_sim()
    with connect(ctx, sim, receivers) as conn:
        for _ in range(2):
            aq, got = run_passive(ctx, conn, sim)
            assert np.array_equal(got, sim.expected_sum(N))
            snap = aq.ledger.snapshot()
            assert (snap.received, snap.missing) == (N, 0), snap


def test_active_run_is_exact(make_sim: Any, ctx: Any) -> None:
    sim = make_sim(compression="lz4")
    with connect(ctx, sim, 2) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=NAV,
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        got = ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data.astype(np.float64)
        assert np.array_equal(got, sim.expected_sum(N))


def test_images_sent_out_of_order_are_put_back_in_order(make_sim: Any, ctx: Any) -> None:
    """With several sockets, arrival order is not image order: the image id
    decides, so two swapped images still give the exact result."""
    sim = make_sim(fault="out_of_order@20")
    with connect(ctx, sim, 2) as conn:
        _, got = run_passive(ctx, conn, sim)
        assert np.array_equal(got, sim.expected_sum(N))


def test_a_socket_far_ahead_is_not_a_lost_image(start_sim: Any, ctx: Any, tmp_path: Any,
                                                 monkeypatch: Any) -> None:
    """The PUSH socket hands a message to whichever receiver has room, so one
    socket can run thousands of images ahead of another.  With the reorder
    window shrunk to 4 images, a recorded series replayed at full speed
    through 2 sockets is still exact: the sockets ahead wait while the one
    that holds the next image catches up."""
    monkeypatch.setattr(receiver_fanin, "REORDER_WINDOW", 4)
    path = tmp_path / "series.dump"
    total = write_dump(path, frames=3000, shape=(16, 16), stream="v2", pool_size=8)
    sim = start_sim(path=path)
    with connect(ctx, sim, 2) as conn:
        SimplonClient("127.0.0.1", sim.port).sendDetectorCommand("arm")
        aq = ctx.make_acquisition(conn=conn, pending_aq=conn.wait_for_acquisition(TIMEOUT),
                                  nav_shape=(50, 60))
        got = ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data.astype(np.float64)
        assert np.array_equal(got, total)
        assert aq.ledger.snapshot().missing == 0


@pytest.mark.parametrize("window", [receiver_fanin.REORDER_WINDOW, 4])
def test_a_lost_image_is_a_frame_gap_and_the_next_run_works(make_sim: Any, ctx: Any, window: int,
                                                            monkeypatch: Any) -> None:
    """The gap is found when every socket has passed the lost image, whether
    or not the reorder window filled up first."""
    monkeypatch.setattr(receiver_fanin, "REORDER_WINDOW", window)
    sim = make_sim(fault="frame_gap@17")
    with connect(ctx, sim, 3) as conn:
        with pytest.raises(FrameGapError, match="17"):
            run_passive(ctx, conn, sim)
        assert sim.wait_idle(TIMEOUT)
        _, got = run_passive(ctx, conn, sim)
        assert np.array_equal(got, sim.expected_sum(N))


def test_several_receivers_need_stream_v2(ctx: Any) -> None:
    with pytest.raises(ValueError, match="stream='v2'"):
        ctx.make_connection("dectris").open(api_host="127.0.0.1", api_port=1, receivers=2)
