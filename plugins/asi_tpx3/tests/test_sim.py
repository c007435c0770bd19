"""Simulator lifecycle, capture files and the console entry point."""
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from libertem_live.driver import PeerClosed
from libertem_live_asi_tpx3.headers import DType
from libertem_live_asi_tpx3.sim import Tpx3Sim, write_capture
from libertem_live_asi_tpx3.wire import iter_stream

from _helpers import messages, read_header, receive_acquisition

SMALL = dict(nav_shape=(4, 5), sig_shape=(32, 32), events_per_frame=10, frames_per_chunk=3)
SRC = os.path.join(os.path.dirname(__file__), "..", "src")


def _assert_stopped(sim):
    assert not sim.thread_alive
    assert sim.sockets_closed
    assert sim.error is None


def test_stop_without_client():
    sim = Tpx3Sim(**SMALL).start()
    sim.wait_for_listen()
    port = sim.port
    sim.stop()
    _assert_stopped(sim)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_stop_while_waiting_for_trigger():
    sim = Tpx3Sim(**SMALL, wait_for_trigger=True).start()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10):
        assert sim.wait_for_connections(1)
        sim.stop()
    _assert_stopped(sim)


def test_stop_while_holding_connection_and_peer_sees_eof():
    sim = Tpx3Sim(**SMALL).start()
    r = messages(sim.port)
    try:
        receive_acquisition(r)
        assert sim.wait_for_acquisitions_sent(1)
        sim.stop()
        with pytest.raises(PeerClosed):
            read_header(r, 5)
    finally:
        r.reader.close()
    _assert_stopped(sim)


def test_stop_while_blocked_sending_to_a_client_that_does_not_read():
    sim = Tpx3Sim(nav_shape=(64, 64), sig_shape=(512, 512), events_per_frame=100,
                  frames_per_chunk=256, acquisitions_per_connection=None).start()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        assert sim.wait_for_connections(1)
        s.recv(10)  # data is flowing, then we stop reading
        sim.stop()
    _assert_stopped(sim)
    assert sim.acquisitions_sent < 100


def test_stop_during_stall_fault():
    sim = Tpx3Sim(**SMALL, fault="stall_mid_frame").start()
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as s:
        assert sim.wait_for_connections(1)
        s.recv(64)
        sim.stop()
    _assert_stopped(sim)


def test_ground_truth_is_deterministic():
    a = Tpx3Sim(**SMALL, seed=5)
    b = Tpx3Sim(**SMALL, seed=5)
    c = Tpx3Sim(**SMALL, seed=6)
    np.testing.assert_array_equal(a.expected_sum(), b.expected_sum())
    assert not np.array_equal(a.expected_sum(), c.expected_sum())
    frames = sum(a.expected_frame(k) for k in range(20))
    np.testing.assert_array_equal(frames, a.expected_sum())
    assert a.expected_nnz_total() == a.synth.indptr[-1]


def test_fault_needs_synthetic_data(tmp_path):
    path = tmp_path / "c.tpx3"
    write_capture(path, **SMALL)
    with pytest.raises(ValueError, match="synthetic"):
        Tpx3Sim(capture=path, fault="ends_short")


def test_fault_model():
    """One fault for the first acquisition served; a frame outside the scan or an
    unknown kind is refused; inject() arms the next one."""
    with pytest.raises(ValueError, match="outside the scan of 20"):
        Tpx3Sim(**SMALL, fault="ends_short@20")
    with pytest.raises(ValueError, match="unknown fault"):
        Tpx3Sim(**SMALL, fault="bit_flip")
    with Tpx3Sim(**SMALL, fault="ends_short@4", acquisitions_per_connection=3,
                 wait_for_trigger=True) as sim:
        assert str(sim.fault) == "ends_short@4"
        r = messages(sim.port)
        sim.trigger(2)
        try:
            short = receive_acquisition(r)
            assert short.scans[0].offsets.size == 4 and sim.fault is None
            assert receive_acquisition(r).scans[0].offsets.size == 20
            sim.inject("ends_short@7")
            sim.trigger()
            assert receive_acquisition(r).scans[0].offsets.size == 7
        finally:
            r.reader.close()
        assert sim.acquisitions_sent == 1  # faulty acquisitions are not counted


def test_capture_write_and_replay(tmp_path):
    path = tmp_path / "cap.tpx3"
    synth = write_capture(path, **SMALL, value_dtypes=(DType.U16, DType.U64), align=8,
                          scans_per_acquisition=2, acquisitions=2, metadata={"k": 1})
    recs = list(iter_stream(path.read_bytes()))
    assert len(recs) == 2 * (2 + 2 * (2 + len(synth.chunks)))
    with Tpx3Sim(capture=path, acquisitions_per_connection=2, close_after=True) as sim:
        np.testing.assert_array_equal(sim.expected_sum(), synth.expected_sum())
        np.testing.assert_array_equal(sim.expected_frame(7), synth.expected_frame(7))
        assert sim.expected_nnz_total() == synth.expected_nnz_total()
        r = messages(sim.port)
        try:
            # the file holds 2 acquisitions; it is sent twice
            for _ in range(4):
                res = receive_acquisition(r)
                assert len(res.scans) == 2 and res.metadata == [b'{"k": 1}'] * 2
            with pytest.raises(PeerClosed):
                read_header(r, 5)
        finally:
            r.reader.close()


def test_cli_writes_capture(tmp_path):
    path = tmp_path / "cli.tpx3"
    out = subprocess.run(
        [sys.executable, "-m", "libertem_live_asi_tpx3.sim", "--nav", "4", "4", "--sig",
         "16", "16", "--events", "5", "--write-capture", str(path)],
        env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=60,
        check=True)
    info = json.loads(out.stdout)
    assert info["frames"] == 16 and info["bytes"] == path.stat().st_size
    assert sum(1 for _ in iter_stream(path.read_bytes())) > 4


def test_cli_serves_until_interrupted():
    p = subprocess.Popen(
        [sys.executable, "-m", "libertem_live_asi_tpx3.sim", "--port", "0", "--nav", "4", "4",
         "--sig", "16", "16", "--events", "5", "--acquisitions", "1"],
        env={**os.environ, "PYTHONPATH": SRC}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        line = p.stdout.readline()
        assert "listening on" in line, line + p.stderr.read()
        port = int(line.rsplit(":", 1)[1])
        r = messages(port)
        try:
            res = receive_acquisition(r)
            assert res.acquisition.nframes == 16
        finally:
            r.reader.close()
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


@pytest.mark.parametrize("cmd,prog", [
    ([sys.executable, "-m", "libertem_live_asi_tpx3.sim"], "python -m libertem_live_asi_tpx3.sim"),
    ([os.path.join(os.path.dirname(sys.executable), "libertem-live-tpx3-sim")],
     "libertem-live-tpx3-sim"),
])
def test_cli_help_shows_defaults_and_fault_kinds(cmd, prog):
    out = subprocess.run(cmd + ["--help"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    assert out.startswith(f"usage: {prog} ")
    assert "(default: 8283)" in out and "(default: (256, 256))" in out
    assert "never_ends" in out and "frame_gap" not in out


def test_cli_refuses_faults_it_cannot_express():
    out = subprocess.run(
        [sys.executable, "-m", "libertem_live_asi_tpx3.sim", "--port", "0", "--nav", "4", "4",
         "--sig", "16", "16", "--fault", "out_of_order@3"],
        env={**os.environ, "PYTHONPATH": SRC}, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "cannot inject 'out_of_order'" in out.stderr
