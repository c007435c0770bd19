"""Driver-level faults: each ends in a clear error carrying the ledger, within
the timeout, leaks nothing (threads, sockets, shared memory), and the same
connection then runs the next acquisition correctly.

(``test_faults.py`` holds the wire-level checks of the simulator's faults,
``test_fault_kinds.py`` the kit's outcome for every kind.)
Everything through the public API: a module-wide LiveContext, MerlinSim on
real TCP ports.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Iterator

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.api import Hooks
from libertem_live.errors import (AcquisitionTimeoutError, DecodeError,
                                  DetectorConnectionError, FrameGapError, StreamTruncatedError)

from libertem_live_merlin.errors import (MerlinBusyError, MerlinControlError,
                                         MerlinOutOfRangeError, MerlinUnknownCommandError)
from libertem_live_merlin.sim import MerlinSim

N = 32
NAV = (4, 8)
TIMEOUT = 2.0  # idle timeout of the connections here: faults must fail fast


def _socket_fds() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            out.add(f"{fd}:{target}")
    return out


def _our_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate()
            if t.name.startswith(("libertem-live-merlin", "merlin-sim"))}


@pytest.fixture
def no_leaks(live_ctx: Any) -> Iterator[list[Any]]:
    """Yields a list to put connections in; afterwards no receiver or simulator
    thread, no socket and none of their rings may be left."""
    threads, socks = _our_threads(), _socket_fds()
    conns: list[Any] = []
    yield conns
    new = _our_threads() - threads
    for t in new:
        t.join(2.0)  # simulator client threads end once they see our close
    left = [t.name for t in new if t.is_alive()]
    assert not left, f"threads left running: {left}"
    rings = [name for c in conns for name in c.ring_names]
    assert rings, "the test created no acquisition stream"
    kept = [r for r in rings if os.path.exists(f"/dev/shm/{r.lstrip('/')}")]
    assert not kept, f"shared memory left behind: {kept}"
    opened = _socket_fds() - socks
    assert not opened, f"{len(opened)} sockets left open: {sorted(opened)}"


@pytest.fixture
def sim(no_leaks: list[Any]) -> Iterator[MerlinSim]:
    with MerlinSim(frames=N, scan_shape=NAV, counter_depth=12, raw=False,
                   pool_size=8) as s:
        yield s


def connect(ctx: Any, sim: MerlinSim, conns: list[Any], **kw: Any) -> Any:
    kw.setdefault("timeout", TIMEOUT)
    conn = ctx.make_connection("merlin").open(
        api_host="127.0.0.1", api_port=sim.control_port, data_host="127.0.0.1",
        data_port=sim.data_port, **kw)
    conns.append(conn)
    return conn


def passive_run(ctx: Any, conn: Any, udf: Any = None) -> tuple[Any, Any]:
    """What external software does: internal trigger (an active controller before
    may have left soft triggering on), start; then LiberTEM receives."""
    conn.get_control().set("TRIGGERSTART", 0)
    conn.get_control().cmd("STARTACQUISITION")
    pending = conn.wait_for_acquisition(10.0)
    assert pending is not None
    aq = ctx.make_acquisition(conn=conn, pending_aq=pending, frames_per_partition=8)
    return aq, ctx.run_udf(dataset=aq, udf=udf or SumUDF())


def assert_next_acquisition_works(ctx: Any, conn: Any, sim: MerlinSim) -> None:
    aq, res = passive_run(ctx, conn)
    assert np.array_equal(res["intensity"].data, sim.expected_sum(N))
    snap = aq.ledger.snapshot()
    assert (snap.received, snap.processed, snap.missing) == (N, N, 0), snap


def run_failing(ctx: Any, conn: Any, exc: Any) -> Any:
    conn.get_control().cmd("STARTACQUISITION")
    pending = conn.wait_for_acquisition(10.0)
    assert pending is not None
    aq = ctx.make_acquisition(conn=conn, pending_aq=pending, frames_per_partition=8)
    with pytest.raises(exc) as info:
        ctx.run_udf(dataset=aq, udf=SumUDF())
    assert info.value.ledger is not None, "the error must carry the ledger"
    return info.value


def test_aborted_mid_stream(live_ctx: Any, sim: MerlinSim, no_leaks: list[Any]) -> None:
    """Upstream issue #167: no more frames, connection open, detector idle -> an
    error well within the timeout that says how many frames came; the
    connection stays usable."""
    with connect(live_ctx, sim, no_leaks) as conn:
        sim.inject_fault("ends_short@10")
        err = run_failing(live_ctx, conn, StreamTruncatedError)
        assert "after 10 of 32 frames" in str(err)
        snap = err.ledger.snapshot()
        assert (snap.received, snap.missing, snap.first_missing) == (10, 22, 10), snap
        assert_next_acquisition_works(live_ctx, conn, sim)


def test_new_header_instead_of_frame(live_ctx: Any, sim: MerlinSim,
                                     no_leaks: list[Any]) -> None:
    """An aborted acquisition followed by the next one: the run ends (at the new
    header where a frame was due, or when the idle detector is noticed), and
    the new run is not lost."""
    with connect(live_ctx, sim, no_leaks, timeout=10.0) as conn:
        sim.inject_fault("ends_short@5")
        conn.get_control().cmd("STARTACQUISITION")
        pending = conn.wait_for_acquisition(10.0)
        assert pending is not None
        assert sim.wait_idle(5)
        conn.get_control().cmd("STARTACQUISITION")  # next acquisition, same socket
        aq = live_ctx.make_acquisition(conn=conn, pending_aq=pending, frames_per_partition=8)
        with pytest.raises(StreamTruncatedError, match="after 5 of 32 frames") as info:
            live_ctx.run_udf(dataset=aq, udf=SumUDF())
        assert info.value.ledger.snapshot().received == 5
        pending = conn.wait_for_acquisition(5.0)
        assert pending is not None, "the acquisition that followed the aborted one is kept"
        aq = live_ctx.make_acquisition(conn=conn, pending_aq=pending)
        res = live_ctx.run_udf(dataset=aq, udf=SumUDF())
        assert np.array_equal(res["intensity"].data, sim.expected_sum(N))


def test_truncated_frame(live_ctx: Any, sim: MerlinSim, no_leaks: list[Any]) -> None:
    with connect(live_ctx, sim, no_leaks) as conn:
        sim.inject_fault("disconnect_mid_stream@6")
        err = run_failing(live_ctx, conn, DetectorConnectionError)
        assert "6 of 32 frames" in str(err) and "closed the connection" in str(err)
        assert err.ledger.snapshot().received == 6
        assert_next_acquisition_works(live_ctx, conn, sim)  # reconnects


def test_sequence_gap(live_ctx: Any, sim: MerlinSim, no_leaks: list[Any]) -> None:
    """Frame 6 never comes, frame 7 keeps its number: a ledger entry and an
    error, never a shift of the later frames into the wrong scan positions."""
    with connect(live_ctx, sim, no_leaks) as conn:
        sim.inject_fault("frame_gap@6")
        err = run_failing(live_ctx, conn, FrameGapError)
        assert "frames 6..6 never came" in str(err)
        snap = err.ledger.snapshot()
        assert (snap.received, snap.first_missing) == (7, 6), snap
        assert snap.received + snap.missing == N, snap
        assert_next_acquisition_works(live_ctx, conn, sim)


def test_header_that_does_not_parse(live_ctx: Any, sim: MerlinSim,
                                    no_leaks: list[Any]) -> None:
    with connect(live_ctx, sim, no_leaks) as conn:
        sim.inject_fault("corrupt_payload@3")
        err = run_failing(live_ctx, conn, DecodeError)
        assert "frame 4 of 32" in str(err) and "does not parse" in str(err)
        assert err.ledger.snapshot().received == 3
        assert_next_acquisition_works(live_ctx, conn, sim)


def test_frame_size_changes(live_ctx: Any, sim: MerlinSim, no_leaks: list[Any]) -> None:
    with connect(live_ctx, sim, no_leaks) as conn:
        sim.inject_fault("truncated_payload@8")
        err = run_failing(live_ctx, conn, DecodeError)
        assert "frame size changed" in str(err)
        assert err.ledger.snapshot().received == 8
        assert_next_acquisition_works(live_ctx, conn, sim)


def test_control_status_errors(live_ctx: Any, sim: MerlinSim, no_leaks: list[Any]) -> None:
    with connect(live_ctx, sim, no_leaks) as conn:
        ctl = conn.get_control()
        with pytest.raises(MerlinUnknownCommandError, match="status 2.*check the spelling"):
            ctl.get("NOSUCHPARAMETER")
        with pytest.raises(MerlinOutOfRangeError, match="COUNTERDEPTH=7 with status 3"):
            live_ctx.make_acquisition(
                conn=conn, nav_shape=NAV,
                controller=conn.get_active_controller(extra_settings={"COUNTERDEPTH": 7}))
        # busy: an armed acquisition waiting for its soft trigger
        aq = live_ctx.make_acquisition(conn=conn, nav_shape=NAV,
                                       controller=conn.get_active_controller(trigger_start=5))
        ctl.cmd("STARTACQUISITION")
        with pytest.raises(MerlinBusyError, match="status 1 .busy.*STOPACQUISITION") as info:
            ctl.set("COUNTERDEPTH", 6)
        assert isinstance(info.value, MerlinControlError) and info.value.status == 1
        with pytest.raises(MerlinBusyError):
            live_ctx.run_udf(dataset=aq, udf=SumUDF())  # arm: STARTACQUISITION refused
        ctl.cmd("STOPACQUISITION")
        assert sim.wait_idle(5)
        aq = live_ctx.make_acquisition(
            conn=conn, nav_shape=NAV, controller=conn.get_active_controller(soft_trigger=True))
        res = live_ctx.run_udf(dataset=aq, udf=SumUDF())
        assert np.array_equal(res["intensity"].data, sim.expected_sum(N))
        assert_next_acquisition_works(live_ctx, conn, sim)


def test_simulator_killed_mid_acquisition(live_ctx: Any, no_leaks: list[Any]) -> None:
    """The Merlin software dies mid-scan: DetectorConnectionError; once it is
    back on the same ports, the same connection (control and data) recovers."""
    with MerlinSim(frames=N, scan_shape=NAV, pool_size=8, frame_rate=100) as sim:
        with connect(live_ctx, sim, no_leaks, timeout=10.0) as conn:
            conn.get_control().cmd("STARTACQUISITION")
            pending = conn.wait_for_acquisition(10.0)
            assert pending is not None
            aq = live_ctx.make_acquisition(conn=conn, pending_aq=pending,
                                           frames_per_partition=8)
            with pytest.raises(DetectorConnectionError, match="closed the connection") as info:
                for k, _ in enumerate(live_ctx.run_udf_iter(dataset=aq, udf=SumUDF())):
                    if k == 0:
                        sim.stop()
            snap = info.value.ledger.snapshot()
            assert 8 <= snap.received < N and snap.missing == N - snap.received, snap
            sim.frame_rate = None
            sim.start()  # same ports
            assert_next_acquisition_works(live_ctx, conn, sim)


def test_restart_between_acquisitions_and_give_up(live_ctx: Any,
                                                   no_leaks: list[Any]) -> None:
    with MerlinSim(frames=N, scan_shape=NAV, pool_size=8) as sim:
        with connect(live_ctx, sim, no_leaks, reconnect_timeout=1.0) as conn:
            assert_next_acquisition_works(live_ctx, conn, sim)
            sim.restart()
            assert_next_acquisition_works(live_ctx, conn, sim)
            sim.stop()
            with pytest.raises(DetectorConnectionError, match="cannot connect.*6342"):
                conn.wait_for_acquisition(5.0)
            sim.start()
            assert_next_acquisition_works(live_ctx, conn, sim)


def test_no_frames_within_timeout(live_ctx: Any, sim: MerlinSim,
                                  no_leaks: list[Any]) -> None:
    """Armed, never triggered: AcquisitionTimeoutError naming 0 of N frames."""
    with connect(live_ctx, sim, no_leaks) as conn:
        aq = live_ctx.make_acquisition(conn=conn, nav_shape=NAV,
                                       controller=conn.get_active_controller(trigger_start=5))
        with pytest.raises(AcquisitionTimeoutError, match="0 of 32 frames") as info:
            live_ctx.run_udf(dataset=aq, udf=SumUDF())
        assert info.value.ledger.snapshot().received == 0
        assert sim.wait_idle(5), "the controller must stop the detector after the error"
        assert_next_acquisition_works(live_ctx, conn, sim)


def test_keyboard_interrupt_from_hook(live_ctx: Any, sim: MerlinSim,
                                      no_leaks: list[Any]) -> None:
    class Interrupt(Hooks):
        def on_ready_for_data(self, env: Any) -> None:
            raise KeyboardInterrupt

    with connect(live_ctx, sim, no_leaks) as conn:
        aq = live_ctx.make_acquisition(conn=conn, nav_shape=NAV, hooks=Interrupt(),
                                       controller=conn.get_active_controller(soft_trigger=True))
        with pytest.raises(KeyboardInterrupt):
            live_ctx.run_udf(dataset=aq, udf=SumUDF())
        assert sim.wait_idle(5)
        aq = live_ctx.make_acquisition(
            conn=conn, nav_shape=NAV, controller=conn.get_active_controller(soft_trigger=True))
        res = live_ctx.run_udf(dataset=aq, udf=SumUDF())
        assert np.array_equal(res["intensity"].data, sim.expected_sum(N))


def test_keyboard_interrupt_mid_stream(live_ctx: Any, no_leaks: list[Any]) -> None:
    """Ctrl-C in the middle of a passive run (gen.throw): the rest of that
    acquisition is skipped on the same socket, the next one is exact."""
    with MerlinSim(frames=N, scan_shape=NAV, pool_size=8, frame_rate=200) as sim:
        with connect(live_ctx, sim, no_leaks, timeout=10.0) as conn:
            conn.get_control().cmd("STARTACQUISITION")
            pending = conn.wait_for_acquisition(10.0)
            assert pending is not None
            aq = live_ctx.make_acquisition(conn=conn, pending_aq=pending,
                                           frames_per_partition=8)
            gen = live_ctx.run_udf_iter(dataset=aq, udf=SumUDF())
            next(gen)
            with pytest.raises(KeyboardInterrupt):
                gen.throw(KeyboardInterrupt)
            sim.frame_rate = None
            assert sim.wait_idle(10)
            connections = sim.data_connections
            assert_next_acquisition_works(live_ctx, conn, sim)
            assert sim.data_connections == connections, "resynchronised without reconnecting"


def test_stale_data_is_discarded_but_a_running_acquisition_is_named() -> None:
    """Before an active-mode arm the data port is emptied of what earlier
    acquisitions left.  A finite burst is discarded message by message; data
    that keeps coming faster than it is discarded (the detector acquiring
    for somebody else: here a process sending tiny MPX messages) ends in
    MerlinStillSendingError after the limit, instead of an arm that never
    returns."""
    import select
    import subprocess
    import sys
    import time

    from libertem_live_merlin.errors import MerlinStillSendingError
    from libertem_live_merlin.receiver import DataPort
    from libertem_live_merlin.wire import build_prefix

    message = build_prefix(8) + b"12345678"
    detector = (
        "import socket, sys\n"
        "s = socket.create_server(('127.0.0.1', 0)); print(s.getsockname()[1], flush=True)\n"
        "peer, _ = s.accept(); burst = int(sys.argv[2]); m = bytes.fromhex(sys.argv[1])\n"
        "if burst: peer.sendall(m * burst); print('sent', flush=True); peer.recv(1)\n"
        "else:\n"
        "    chunk = m * 20000\n"
        "    try:\n"
        "        while True: peer.sendall(chunk)\n"
        "    except OSError: pass\n")
    for burst in (500, 0):
        proc = subprocess.Popen([sys.executable, "-c", detector, message.hex(), str(burst)],
                                stdout=subprocess.PIPE, text=True)
        try:
            port = DataPort("127.0.0.1", int(proc.stdout.readline()), timeout=2.0)
            sock = port.reader.ensure()
            try:
                if burst:
                    assert proc.stdout.readline().strip() == "sent"  # all in our socket buffer
                    assert port.drain_available() == burst
                else:
                    assert select.select([sock], [], [], 10)[0], "the detector sends"
                    t0 = time.monotonic()
                    with pytest.raises(MerlinStillSendingError,
                                       match="kept sending .* STOPACQUISITION"):
                        port.drain_available(limit_s=0.5)
                    assert time.monotonic() - t0 < 5
            finally:
                port.close()
        finally:
            proc.kill()
            proc.wait(10)
            proc.stdout.close()
