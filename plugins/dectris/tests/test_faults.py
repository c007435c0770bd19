"""Bad input from a DECTRIS detector: every fault is a clear, bounded error.

Each test makes ``DectrisSim`` misbehave (see ``sim/faults.py``), runs SumUDF
through a real ``LiveContext`` over real sockets and checks that

* the error says what happened, where (the data address or REST URL, the
  series and frame) and what to do, and carries the acquisition's ledger
  with the right numbers;
* nothing hangs: every wait is bounded by the connection's ``timeout=``;
* the detector is left disarmed, and the *next* acquisition on the *same*
  connection works and gives the exact sum;
* no thread, socket or shared-memory segment is left behind (``no_leaks``).
"""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import math  # noqa: E402

import socket  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from libertem.udf.sum import SumUDF  # noqa: E402

from libertem_live.api import Hooks, LiveContext  # noqa: E402
from libertem_live.driver import (  # noqa: E402
    AcquisitionError, AcquisitionTimeoutError, DecodeError, DuplicateFrameError,
    FrameFormatError, FrameGapError, StreamTruncatedError,
)
from libertem_live_dectris.client import DetectorAPIError  # noqa: E402
from libertem_live_dectris.sim import DectrisSim  # noqa: E402

NAV = (8, 8)
N = math.prod(NAV)
SIG = (24, 40)  # small, non-square
TIMEOUT = 3.0  # the connection's timeout: no frame for this long is an error


@pytest.fixture
def make_sim(start_sim: Callable[..., DectrisSim]) -> Callable[..., DectrisSim]:
    def make(fault: Any = None, **kw: Any) -> DectrisSim:
        return start_sim(fault=fault, **{"frames": N, "shape": SIG, "pool_size": 8,
                                         "send_timeout": 5.0, **kw})
    return make


def connect(ctx: LiveContext, sim: DectrisSim, **kw: Any) -> Any:
    kw.setdefault("timeout", TIMEOUT)
    return ctx.make_connection("dectris").open(
        api_host="127.0.0.1", api_port=sim.port, data_host="127.0.0.1",
        data_port=sim.zmqport, **kw)


def active(ctx: LiveContext, conn: Any, **kw: Any) -> Any:
    return ctx.make_acquisition(conn=conn, nav_shape=NAV, hooks=kw.pop("hooks", None),
                                controller=conn.get_active_controller(trigger_mode="exte", **kw))


def state(conn: Any) -> str:
    return conn.get_api_client().detectorStatus("state")["value"]


def fails(ctx: LiveContext, aq: Any, exc_type: type[BaseException]) -> Any:
    """Run SumUDF on ``aq``; it must raise ``exc_type`` carrying the ledger."""
    with pytest.raises(exc_type) as info:
        ctx.run_udf(dataset=aq, udf=SumUDF())
    err = info.value
    if isinstance(err, AcquisitionError):
        assert err.ledger is not None, "the error must carry the ledger"
        assert "ledger: expected=" in str(err), "the ledger is part of the message"
    return err


def ledger(err: AcquisitionError) -> dict[str, Any]:
    """The error's ledger, which must balance: every expected frame is
    received or booked as missing."""
    assert err.ledger is not None
    led = err.ledger.as_dict()
    assert led["received"] + led["missing"] == led["expected"], led
    return led


def next_acquisition_works(ctx: LiveContext, conn: Any, sim: DectrisSim) -> None:
    """After a failure, the detector is idle and the same connection delivers
    the next series completely and exactly."""
    assert state(conn) == "idle", "the failed acquisition must leave the detector disarmed"
    sim.dwelltime = None  # a slow scan ends with the failed acquisition
    aq = active(ctx, conn)
    res = ctx.run_udf(dataset=aq, udf=SumUDF())
    assert np.array_equal(res["intensity"].data.astype(np.float64), sim.expected_sum(N))
    s = aq.ledger.snapshot()
    assert (s.received, s.processed, s.missing) == (N, N, 0), s
    assert state(conn) == "idle"


def where(sim: DectrisSim) -> str:
    return f"tcp://127.0.0.1:{sim.zmqport}"


# ---------------------------------------------------------------- the stream


def test_series_ends_early(ctx, make_sim, receive_loop) -> None:
    sim = make_sim(fault="ends_short@40")
    with connect(ctx, sim) as conn:
        err = fails(ctx, active(ctx, conn), StreamTruncatedError)
        msg = str(err)
        assert "ended the series after 40 frames, but 64 were expected" in msg  # what
        assert where(sim) in msg  # where
        assert "check the detector's frame count" in msg  # what to do
        led = ledger(err)
        assert (led["expected"], led["received"], led["missing"], led["first_missing"]) == \
            (N, 40, N - 40, 40)
        next_acquisition_works(ctx, conn, sim)


def test_truncated_payload(ctx, make_sim) -> None:
    """Decoding happens in the workers; the error names the frame and the cause."""
    sim = make_sim(fault="truncated_payload@37")
    with connect(ctx, sim) as conn:
        with pytest.raises(DecodeError) as info:
            ctx.run_udf(dataset=active(ctx, conn), udf=SumUDF())
        msg = str(info.value)
        assert "bs16-lz4< uint16 (24, 40)" in msg and "LZ4 block" in msg
        assert "the transfer corrupted it" in msg  # what to suspect
        assert "could not decode frame 37:" in msg
        next_acquisition_works(ctx, conn, sim)


def test_corrupt_payload_error_has_ledger_and_frame(ctx, make_sim) -> None:
    sim = make_sim(fault="corrupt_payload@37")
    with connect(ctx, sim) as conn:
        err = fails(ctx, active(ctx, conn), DecodeError)
        assert "frame 37" in str(err) and "size mismatch" in str(err)
        led = ledger(err)
        assert led["received"] == N and led["missing"] == 0 and led["decoded"] < N
        next_acquisition_works(ctx, conn, sim)


def test_frame_of_wrong_format(ctx, make_sim, receive_loop) -> None:
    sim = make_sim(fault="wrong_format@5")
    with connect(ctx, sim) as conn:
        err = fails(ctx, active(ctx, conn), FrameFormatError)
        msg = str(err)
        assert "frame 5 of series" in msg and where(sim) in msg
        assert "(32, 48) uint16" in msg and "(24, 40) uint16" in msg
        led = ledger(err)
        assert led["received"] <= 5 and led["first_missing"] <= 5
        next_acquisition_works(ctx, conn, sim)


def test_frame_id_gap(ctx, make_sim, receive_loop) -> None:
    sim = make_sim(fault="frame_gap@10")
    with connect(ctx, sim) as conn:
        err = fails(ctx, active(ctx, conn), FrameGapError)
        msg = str(err)
        assert "expected frame 10, got 11 (1 image missing)" in msg and where(sim) in msg
        assert "lower the frame rate or check the link" in msg
        led = ledger(err)
        assert (led["received"], led["missing"], led["first_missing"]) == (10, N - 10, 10)
        next_acquisition_works(ctx, conn, sim)


def test_duplicate_frame(ctx, make_sim, receive_loop) -> None:
    sim = make_sim(fault="duplicate_frame@20")
    with connect(ctx, sim) as conn:
        err = fails(ctx, active(ctx, conn), DuplicateFrameError)
        msg = str(err)
        assert "frame 20 of series" in msg and "arrived again" in msg and where(sim) in msg
        led = ledger(err)
        assert led["received"] <= 21 and led["first_missing"] <= 21
        next_acquisition_works(ctx, conn, sim)


def test_no_frames_within_timeout(ctx, make_sim, receive_loop) -> None:
    sim = make_sim(dwelltime=60e6)  # a scan of one image per minute
    with connect(ctx, sim, timeout=1.0) as conn:
        err = fails(ctx, active(ctx, conn), AcquisitionTimeoutError)
        msg = str(err)
        assert "no frame after frame 0" in msg and "for 1 s" in msg
        assert where(sim) in msg
        assert "open the connection with a larger timeout" in msg
        led = ledger(err)
        assert (led["received"], led["missing"], led["first_missing"]) == (1, N - 1, 1)
        next_acquisition_works(ctx, conn, sim)


def test_no_series_at_all_passive(ctx, make_sim) -> None:
    """Passive mode with nobody arming: wait_for_acquisition returns None in time."""
    sim = make_sim()
    with connect(ctx, sim) as conn:
        assert conn.wait_for_acquisition(timeout=0.3) is None
        next_acquisition_works(ctx, conn, sim)


# ---------------------------------------------------------------- the REST API


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_rest_api_down(ctx, make_sim) -> None:
    sim = make_sim()
    port = _free_port()  # nothing listens there
    with ctx.make_connection("dectris").open(
            api_host="127.0.0.1", api_port=port, data_host="127.0.0.1",
            data_port=sim.zmqport, timeout=TIMEOUT) as conn:
        with pytest.raises(DetectorAPIError) as info:
            active(ctx, conn)
        msg = str(info.value)
        assert info.value.url.startswith(f"http://127.0.0.1:{port}/")
        assert info.value.url in msg
        assert "connection refused or failed" in msg and "reachable" in msg
        with pytest.raises(DetectorAPIError):
            conn.wait_for_acquisition(timeout=1.0)


def test_rest_api_silent(ctx, make_sim) -> None:
    """A port that accepts connections but never answers: bounded by api_timeout."""
    sim = make_sim()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with ctx.make_connection("dectris").open(
                api_host="127.0.0.1", api_port=port, data_host="127.0.0.1",
                data_port=sim.zmqport, timeout=TIMEOUT, api_timeout=0.5) as conn:
            with pytest.raises(DetectorAPIError) as info:
                active(ctx, conn)
    msg = str(info.value)
    assert f"http://127.0.0.1:{port}/" in msg and "no answer within 0.5 s" in msg


def test_rest_rejects_invalid_setting(ctx, make_sim) -> None:
    sim = make_sim()
    with connect(ctx, sim) as conn:
        with pytest.raises(DetectorAPIError) as info:
            active(ctx, conn, compression="zstd")
        e = info.value
        assert e.status == 400
        assert e.url == f"http://127.0.0.1:{sim.port}/detector/api/1.8.0/config/compression"
        assert "zstd" in e.body and "allowed" in e.body
        assert e.url in str(e) and "HTTP 400" in str(e) and "zstd" in str(e)
        next_acquisition_works(ctx, conn, sim)


def test_rest_error_on_command(ctx, make_sim) -> None:
    sim = make_sim(dwelltime=60e6)  # the first series stays armed
    with connect(ctx, sim) as conn:
        api = conn.get_api_client()
        with pytest.raises(DetectorAPIError) as info:
            api.sendDetectorCommand("self_destruct")
        assert info.value.status == 404 and "self_destruct" in info.value.body
        api.sendDetectorCommand("arm")
        with pytest.raises(DetectorAPIError) as info:
            api.sendDetectorCommand("arm")  # armed twice
        assert info.value.status == 400 and "already armed" in info.value.body
        assert info.value.url.endswith("/detector/api/1.8.0/command/arm")
        api.sendDetectorCommand("disarm")
        next_acquisition_works(ctx, conn, sim)


# ---------------------------------------------------------------- interrupts


class InterruptWhenArmed(Hooks):
    def __init__(self, conn: Any):
        self.conn = conn
        self.state_when_called: str | None = None

    def on_ready_for_data(self, env: Any) -> None:
        self.state_when_called = state(self.conn)
        raise KeyboardInterrupt()


def test_keyboard_interrupt_in_hook(ctx, make_sim) -> None:
    sim = make_sim(dwelltime=60e6)  # an armed detector waiting for the scan
    with connect(ctx, sim) as conn:
        hooks = InterruptWhenArmed(conn)
        aq = active(ctx, conn, hooks=hooks)
        with pytest.raises(KeyboardInterrupt):
            ctx.run_udf(dataset=aq, udf=SumUDF())
        assert hooks.state_when_called in ("ready", "acquire")
        next_acquisition_works(ctx, conn, sim)


def test_keyboard_interrupt_while_iterating(ctx, make_sim) -> None:
    """Ctrl-C in the main thread between two partial results (``gen.throw``).

    The scan is paced (20 ms per frame) so that partial results come back while
    the detector is still acquiring. (LiberTEM's main thread feeds the workers
    and only collects results between tasks, so a *stalled* scan yields no
    partial result before the timeout.)"""
    sim = make_sim(dwelltime=20_000)
    with connect(ctx, sim) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=NAV, frames_per_partition=8,
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        gen = ctx.run_udf_iter(dataset=aq, udf=SumUDF())
        first = next(gen)
        assert 8 <= first.damage.data.sum() < N
        assert state(conn) == "acquire", "the detector is still acquiring"
        with pytest.raises(KeyboardInterrupt):
            gen.throw(KeyboardInterrupt())
        assert 8 <= aq.ledger.received < N
        next_acquisition_works(ctx, conn, sim)


# ---------------------------------------------------------------- clean-up


def test_close_releases_everything(ctx, make_sim) -> None:
    """The connection's socket is closed after close(); leaks are checked by no_leaks."""
    sim = make_sim()
    conn = connect(ctx, sim)
    aq = active(ctx, conn)
    ctx.run_udf(dataset=aq, udf=SumUDF())
    conn.get_api_client().sendDetectorCommand("arm")
    assert conn.wait_for_acquisition(timeout=TIMEOUT) is not None  # announced, never run
    conn.close()
    assert conn.closed
    with pytest.raises(Exception, match="closed"):
        conn.wait_for_acquisition(timeout=0.1)
