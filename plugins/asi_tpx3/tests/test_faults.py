"""Faults give clear errors with the ledger, no hang and no leaked thread or socket,
and the connection recovers for the next acquisition: the messages of the fault
kinds, and the TPX3-specific cases the simulator does not make (a cancel inside a
scan, invalid tags, messages out of order), served as raw bytes."""
from __future__ import annotations

import socket
import threading
from typing import Any

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.driver import (
    AcquisitionStateError, AcquisitionTimeoutError, DecodeError, StreamTruncatedError,
)
from libertem_live_asi_tpx3.headers import AcquisitionEnd
from libertem_live_asi_tpx3.sim import SynthAcquisition, SynthConfig, Tpx3Sim
from libertem_live_asi_tpx3.sim.source import SynthSource

from _helpers import RawServer
from _udfs import receiver_threads

NAV = (8, 16)
SIM = dict(nav_shape=NAV, sig_shape=(32, 32), events_per_frame=10, frames_per_chunk=16,
           wait_for_trigger=True, acquisitions_per_connection=None)


def _sum(ctx: Any, conn: Any, sim: Any) -> None:
    pending = conn.wait_for_acquisition(timeout=20)
    assert pending is not None, "no acquisition after the fault"
    aq = ctx.make_acquisition(conn=conn, pending_aq=pending)
    res = ctx.run_udf(dataset=aq, udf=SumUDF())
    np.testing.assert_array_equal(res["intensity"].data, sim.expected_sum())


class _Bytes:
    """The clean wire bytes of a small synthetic acquisition, and its ground truth."""

    def __init__(self) -> None:
        self.synth = SynthAcquisition.generate(SynthConfig(
            nav_shape=NAV, sig_shape=(32, 32), events_per_frame=10, frames_per_chunk=16))
        self.src = SynthSource(self.synth, 1, b"", 1)
        self.clean = b"".join(bytes(s) for s in self.src.segments())

    def expected_sum(self) -> np.ndarray:
        return self.synth.expected_sum()

    def first_chunks(self, n: int) -> bytes:
        return b"".join(self.synth.chunks[:n])


# fault kinds -> (words the message must contain, connections the recovery needs)
MESSAGES = {
    "ends_short@48": (StreamTruncatedError, ["ended the scan (ScanEnd)", "48 of 128"], 1),
    "duplicate_frame@40": (Exception, ["129 rows", "0..127"], 1),
    "truncated_payload@50": (DecodeError, ["positions 48..63", "corrupt"], 1),
    "wrong_format@50": (DecodeError, ["bit-packed", "position 48 of 128"], 2),
    "disconnect_mid_stream@50": (Exception, ["middle of frame 48"], 2),
    "stall_mid_frame@50": (Exception, ["middle of frame 48", "no byte for 1 s"], 2),
}


@pytest.mark.parametrize("fault", list(MESSAGES))
def test_fault_messages_and_connection_reuse(live_ctx: Any, fault: str) -> None:
    """The message says what and where; faults that keep the stream in step keep the
    TCP connection, the others reconnect (test_fault_kinds checks the classes)."""
    error_type, words, connections = MESSAGES[fault]
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
            assert snap.expected == 128 and snap.received + snap.missing == 128
            assert receiver_threads() == []
            sim.trigger()
            _sum(live_ctx, conn, sim)
            assert sim.connections == connections
        assert receiver_threads() == []
    assert sim.sockets_closed and not sim.thread_alive


def test_cancel_mid_scan_keeps_the_connection(live_ctx: Any) -> None:
    """AcquisitionEnd inside a scan (the ASI software's cancel): StreamTruncatedError
    naming the cancel, and the next acquisition follows on the same socket."""
    b = _Bytes()
    cancelled = (b.src.acq_start + b.src.scan_start + b.first_chunks(3)
                 + AcquisitionEnd().pack())
    with RawServer([cancelled + b.clean]) as srv:
        with live_ctx.make_connection("asi_tpx3").open(data_port=srv.port,
                                                       timeout=1.0) as conn:
            aq = live_ctx.make_acquisition(conn=conn,
                                           pending_aq=conn.wait_for_acquisition(timeout=20))
            with pytest.raises(StreamTruncatedError, match="cancelled") as info:
                live_ctx.run_udf(dataset=aq, udf=SumUDF())
            assert "48 of 128" in str(info.value)
            snap = info.value.ledger.snapshot()
            assert (snap.received, snap.missing, snap.first_missing) == (48, 80, 48)
            _sum(live_ctx, conn, b)
            assert srv.connections == 1


def test_unknown_tag_reconnects(live_ctx: Any) -> None:
    b = _Bytes()
    broken = (b.src.acq_start + b.src.scan_start + b.first_chunks(3)
              + bytes([0x07]) + bytes(31))
    with RawServer([broken, b.clean]) as srv:
        with live_ctx.make_connection("asi_tpx3").open(data_port=srv.port,
                                                       timeout=1.0) as conn:
            aq = live_ctx.make_acquisition(conn=conn,
                                           pending_aq=conn.wait_for_acquisition(timeout=20))
            with pytest.raises(DecodeError, match="unknown header tag 0x07") as info:
                live_ctx.run_udf(dataset=aq, udf=SumUDF())
            assert "position 48 of 128" in str(info.value)
            _sum(live_ctx, conn, b)
            assert srv.connections == 2


def test_wrong_order_between_acquisitions_reconnects(live_ctx: Any) -> None:
    """An ArrayChunk without ScanStart happens before any scan is announced: the
    connection logs it and reconnects instead of announcing garbage."""
    b = _Bytes()
    wrong = b.src.acq_start + b.first_chunks(1)
    with RawServer([wrong, b.clean]) as srv:
        with live_ctx.make_connection("asi_tpx3").open(data_port=srv.port) as conn:
            _sum(live_ctx, conn, b)
            assert srv.connections == 2


def test_new_acquisition_without_end_of_the_previous(live_ctx: Any) -> None:
    """A server that abandons an acquisition between scans (no AcquisitionEnd) and
    starts the next: the connection follows it on the same socket."""
    b = _Bytes()
    with RawServer([b.src.acq_start + b.clean]) as srv:
        with live_ctx.make_connection("asi_tpx3").open(data_port=srv.port) as conn:
            _sum(live_ctx, conn, b)
            assert srv.connections == 1


def test_no_acquisition_returns_none(live_ctx: Any) -> None:
    with Tpx3Sim(**SIM) as sim:
        with live_ctx.make_connection("asi_tpx3").open(data_port=sim.port) as conn:
            assert conn.wait_for_acquisition(timeout=0.3) is None
            assert conn.wait_for_acquisition(timeout=0) is None
            sim.trigger()
            _sum(live_ctx, conn, sim)


def test_server_not_up_yet_then_reconnects(live_ctx: Any) -> None:
    """Nobody listening is an error that names the address, not None (which
    means: connected, no scan yet); once the server is up, the same
    connection works."""
    from libertem_live.errors import DetectorConnectionError

    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    conn = live_ctx.make_connection("asi_tpx3").open(data_port=port)
    with conn:
        with pytest.raises(DetectorConnectionError,
                           match=f"cannot reach the ASI TPX3 server at tcp://127.0.0.1:{port}"):
            conn.wait_for_acquisition(timeout=0.5)
        with pytest.raises(DetectorConnectionError, match="cannot reach"):
            conn.wait_for_acquisition(timeout=0)
        with Tpx3Sim(port=port, **SIM) as sim:
            assert conn.wait_for_acquisition(timeout=0.3) is None
            sim.trigger()
            _sum(live_ctx, conn, sim)


def test_server_closes_between_acquisitions(live_ctx: Any) -> None:
    """A server that drops the connection after every acquisition (or restarts)."""
    with Tpx3Sim(nav_shape=NAV, sig_shape=(32, 32), events_per_frame=10,
                 acquisitions_per_connection=1, close_after=True) as sim:
        with live_ctx.make_connection("asi_tpx3").open(data_port=sim.port) as conn:
            for _ in range(3):
                _sum(live_ctx, conn, sim)
            assert sim.connections >= 3


def test_silence_after_scan_start_times_out(live_ctx: Any) -> None:
    b = _Bytes()
    with RawServer([b.src.acq_start + b.src.scan_start]) as srv:
        with live_ctx.make_connection("asi_tpx3").open(data_port=srv.port,
                                                       timeout=0.5) as conn:
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
