"""Each fault the simulator injects gives a clear error with the ledger, no hang and
no leaked thread or socket, and the connection recovers for the next acquisition."""
from __future__ import annotations

import socket
import threading
from typing import Any

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.errors import (
    AcquisitionStateError, AcquisitionTimeoutError, DecodeError, DetectorConnectionError,
    FrameOrderError, StreamTruncatedError,
)
from libertem_live_asi_tpx3.sim import Fault, Tpx3Sim

from _udfs import receiver_threads

NAV = (8, 16)
SIM = dict(nav_shape=NAV, sig_shape=(32, 32), events_per_frame=10, frames_per_chunk=16,
           wait_for_trigger=True, acquisitions_per_connection=None, fault_chunk=3)

# fault -> (error type, words the message must contain, connection kept)
CASES = {
    Fault.TRUNCATED_PAYLOAD: (DetectorConnectionError, ["went away", "payload"], False),
    Fault.UNKNOWN_TAG: (DecodeError, ["unknown header tag 0x07"], False),
    Fault.TOO_FEW_ROWS: (StreamTruncatedError, ["ScanEnd", "112 of 128"], True),
    Fault.TOO_MANY_ROWS: (FrameOrderError, ["nav_shape (8, 16)", "128..143"], False),
    Fault.DISCONNECT_MID_SCAN: (DetectorConnectionError, ["went away"], False),
    Fault.STALL_MID_SCAN: (AcquisitionTimeoutError, ["no data for 1 s", "48 of 128"], False),
    Fault.CANCEL_MID_SCAN: (StreamTruncatedError, ["cancelled", "48 of 128"], True),
}


def _sum(ctx: Any, conn: Any, sim: Tpx3Sim) -> None:
    pending = conn.wait_for_acquisition(timeout=20)
    assert pending is not None, "no acquisition after the fault"
    aq = ctx.make_acquisition(conn=conn, pending_aq=pending)
    res = ctx.run_udf(dataset=aq, udf=SumUDF())
    np.testing.assert_array_equal(res["intensity"].data, sim.expected_sum())


@pytest.mark.parametrize("fault", list(CASES), ids=lambda f: f.value)
def test_fault_is_reported_and_connection_recovers(live_ctx: Any, fault: Fault) -> None:
    error_type, words, kept = CASES[fault]
    with Tpx3Sim(fault=fault, **SIM) as sim:
        with live_ctx.make_connection("asi_tpx3").open(data_port=sim.port,
                                                       timeout=1.0) as conn:
            sim.trigger()
            pending = conn.wait_for_acquisition(timeout=20)
            assert pending is not None
            aq = live_ctx.make_acquisition(conn=conn, pending_aq=pending)
            with pytest.raises(error_type) as info:
                live_ctx.run_udf(dataset=aq, udf=SumUDF())
            err = info.value
            for w in words:
                assert w in str(err), f"{w!r} not in the message: {err}"
            assert err.ledger is not None and err.ledger is aq.ledger
            snap = err.ledger.snapshot()
            assert snap.expected == 128
            if error_type is StreamTruncatedError:
                assert snap.missing == 128 - snap.received and snap.first_missing == snap.received
            assert receiver_threads() == []
            sim.trigger()
            if not kept or fault is Fault.TOO_FEW_ROWS:
                # the broken connection is replaced (the sim holds or closed the old one)
                if kept:  # TOO_FEW_ROWS keeps a healthy connection, but the sim holds it
                    assert conn.wait_for_acquisition(timeout=0.5) is None
                    conn.close()
                    conn.open()
                _sum(live_ctx, conn, sim)
                assert sim.connections == 2
            else:
                _sum(live_ctx, conn, sim)
                assert sim.connections == 1, "a cancelled scan keeps the connection"
        assert receiver_threads() == []
    assert sim.sockets_closed and not sim.thread_alive


def test_wrong_order_between_acquisitions_reconnects(live_ctx: Any) -> None:
    """An ArrayChunk without ScanStart happens before any scan is announced: the
    connection logs it and reconnects instead of announcing garbage."""
    with Tpx3Sim(fault=Fault.WRONG_ORDER, **SIM) as sim:
        with live_ctx.make_connection("asi_tpx3").open(data_port=sim.port) as conn:
            sim.trigger(2)
            _sum(live_ctx, conn, sim)
            assert sim.connections == 2


def test_no_acquisition_returns_none(live_ctx: Any) -> None:
    with Tpx3Sim(**SIM) as sim:
        with live_ctx.make_connection("asi_tpx3").open(data_port=sim.port) as conn:
            assert conn.wait_for_acquisition(timeout=0.3) is None
            assert conn.wait_for_acquisition(timeout=0) is None
            sim.trigger()
            _sum(live_ctx, conn, sim)


def test_server_not_up_yet_then_reconnects(live_ctx: Any) -> None:
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    conn = live_ctx.make_connection("asi_tpx3").open(data_port=port, reconnect_interval=0.2)
    with conn:
        assert conn.wait_for_acquisition(timeout=0.5) is None
        with Tpx3Sim(port=port, **SIM) as sim:
            sim.trigger()
            _sum(live_ctx, conn, sim)


def test_server_closes_between_acquisitions(live_ctx: Any) -> None:
    """A server that drops the connection after every acquisition (or restarts)."""
    with Tpx3Sim(nav_shape=NAV, sig_shape=(32, 32), events_per_frame=10,
                 acquisitions_per_connection=1, close_after=True) as sim:
        with live_ctx.make_connection("asi_tpx3").open(data_port=sim.port,
                                                       reconnect_interval=0.1) as conn:
            for _ in range(3):
                _sum(live_ctx, conn, sim)
            assert sim.connections >= 3


def test_silence_after_scan_start_times_out(live_ctx: Any) -> None:
    with Tpx3Sim(fault=Fault.STALL_MID_SCAN, **{**SIM, "fault_chunk": 0}) as sim:
        with live_ctx.make_connection("asi_tpx3").open(data_port=sim.port,
                                                       timeout=0.5) as conn:
            sim.trigger()
            aq = live_ctx.make_acquisition(conn=conn,
                                           pending_aq=conn.wait_for_acquisition(timeout=20))
            with pytest.raises(AcquisitionTimeoutError, match="0 of 128") as info:
                live_ctx.run_udf(dataset=aq, udf=SumUDF())
            assert info.value.ledger.snapshot().received == 0


def test_early_stop_skips_rest_of_scan_on_same_connection(live_ctx: Any) -> None:
    with Tpx3Sim(nav_shape=(32, 64), sig_shape=(32, 32), events_per_frame=10,
                 frames_per_chunk=16, wait_for_trigger=True,
                 acquisitions_per_connection=None) as sim:
        with live_ctx.make_connection("asi_tpx3").open(data_port=sim.port) as conn:
            sim.trigger()
            aq = live_ctx.make_acquisition(conn=conn, frames_per_partition=64,
                                           pending_aq=conn.wait_for_acquisition(timeout=20))
            gen = live_ctx.run_udf_iter(dataset=aq, udf=SumUDF())
            next(gen)
            gen.close()
            assert receiver_threads() == []
            sim.trigger()
            _sum(live_ctx, conn, sim)
            assert sim.connections == 1


def test_active_mode_is_refused(live_ctx: Any) -> None:
    with Tpx3Sim(**SIM) as sim:
        with live_ctx.make_connection("asi_tpx3").open(data_port=sim.port) as conn:
            with pytest.raises(AcquisitionStateError, match="passive mode only"):
                conn.get_active_controller()
            with pytest.raises(AcquisitionStateError, match="wait_for_acquisition"):
                live_ctx.make_acquisition(conn=conn, nav_shape=NAV)


def test_no_thread_left_behind() -> None:
    assert receiver_threads() == []
    assert not [t for t in threading.enumerate() if t.name == "Tpx3Sim" and t.is_alive()]
