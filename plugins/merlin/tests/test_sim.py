"""The simulator end to end over real TCP: acquisitions, triggers, lifecycle."""
from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import MpxReader, connect, read_acquisition

from libertem_live_merlin.client import ControlClient
from libertem_live_merlin.errors import MerlinOutOfRangeError
from libertem_live_merlin.headers import parse_frame_header
from libertem_live_merlin.sim import MerlinSim
from libertem_live_merlin.sim.source import make_frames, write_mib


def nothing_arrives(sock: socket.socket, within: float = 0.2) -> bool:
    """Negative check: no byte becomes readable within ``within`` seconds."""
    r, _, _ = select.select([sock], [], [], within)
    return not r


def assert_closed(sock: socket.socket) -> None:
    """Read until the peer's close shows: EOF, or a reset."""
    sock.settimeout(5)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        pass


@pytest.mark.parametrize("layout, depth, raw", [
    ("1x1", 12, False), ("1x1", 1, True), ("1x1", 24, True), ("2x2G", 6, True),
    ("2x2", 24, False), ("2x2G", 12, False), ("2x2", 12, True),
])
def test_passive_read_of_whole_acquisition(layout, depth, raw):
    n = 12
    with MerlinSim(frames=n, scan_shape=(3, 4), counter_depth=depth, raw=raw,
                   layout=layout, pool_size=5) as sim:
        d = connect(sim.data_port)
        with ControlClient(port=sim.control_port) as c:
            c.cmd("STARTACQUISITION")
        res = read_acquisition(MpxReader(d, timeout=5))
        assert res.header.nav_shape == (3, 4) and res.header.counter_depth == depth
        assert res.header.assembly_size == layout
        fh = res.frames[0]
        assert fh.layout == layout and fh.counter_depth == depth
        assert fh.pixel_format == ("R64" if raw else {1: "U08", 6: "U08", 12: "U16",
                                                      24: "U32"}[depth])
        for i in range(n):
            np.testing.assert_array_equal(res.images[i], sim.frame(i))
        np.testing.assert_array_equal(res.images.sum(axis=0, dtype=np.float64),
                                      sim.expected_sum())
        assert res.images.max() <= (1 << depth) - 1 and res.images.sum() > 0
        assert sim.wait_idle(5)
        assert sim.last_acquisition().outcome == "complete"
        d.close()


def test_soft_trigger_releases_frames_per_trigger():
    with MerlinSim(frames=8, trigger=5, frames_per_trigger=4, pool_size=4) as sim:
        d = connect(sim.data_port)
        r = MpxReader(d, timeout=5)
        with ControlClient(port=sim.control_port) as c:
            c.cmd("STARTACQUISITION")
            assert r.read_message().startswith(b"HDR,")
            assert nothing_arrives(d)  # armed, waiting for the trigger
            c.cmd("SOFTTRIGGER")
            seqs = [parse_frame_header(r.read_message()).sequence for _ in range(4)]
            assert seqs == [1, 2, 3, 4]
            assert nothing_arrives(d)
            assert c.get("DETECTORSTATUS") == "1"
            c.cmd("SOFTTRIGGER")
            seqs = [parse_frame_header(r.read_message()).sequence for _ in range(4)]
            assert seqs == [5, 6, 7, 8]
        assert sim.wait_idle(5)
        d.close()


def test_continuous_acquisition_until_stop():
    with MerlinSim(frames=0, pool_size=4) as sim:
        d = connect(sim.data_port)
        r = MpxReader(d, timeout=5)
        with ControlClient(port=sim.control_port) as c:
            c.cmd("STARTACQUISITION")
            r.read_message()
            for i in range(200):
                assert parse_frame_header(r.read_message()).sequence == i + 1
            c.cmd("STOPACQUISITION")
            assert sim.wait_idle(5)
            c.cmd("STARTACQUISITION")  # the next acquisition follows what was in flight
            seq = 200
            while True:
                msg = r.read_message()
                if msg.startswith(b"HDR,"):
                    break
                seq += 1
                assert parse_frame_header(msg).sequence == seq
            c.cmd("ABORT")
        d.close()


def test_acquisition_armed_before_client_connects():
    with MerlinSim(frames=3, pool_size=3) as sim:
        with ControlClient(port=sim.control_port) as c:
            c.cmd("STARTACQUISITION")
        d = connect(sim.data_port)
        res = read_acquisition(MpxReader(d, timeout=5))
        assert len(res.frames) == 3
        d.close()


def test_reconnect_between_acquisitions():
    with MerlinSim(frames=5, pool_size=5) as sim:
        with ControlClient(port=sim.control_port) as c:
            for _ in range(3):
                d = connect(sim.data_port)
                c.cmd("STARTACQUISITION")
                res = read_acquisition(MpxReader(d, timeout=5))
                np.testing.assert_array_equal(res.images.sum(0, dtype=np.float64),
                                              sim.expected_sum())
                assert sim.wait_idle(5)
                d.close()
        assert sim.data_connections == 3


def test_client_leaving_mid_acquisition_ends_it():
    with MerlinSim(frames=0, pool_size=2) as sim:
        d = connect(sim.data_port)
        with ControlClient(port=sim.control_port) as c:
            c.cmd("STARTACQUISITION")
            MpxReader(d, timeout=5).read_message()
            d.close()
            assert sim.wait_idle(5)
            assert sim.last_acquisition().outcome == "client gone"
            assert c.get("DETECTORSTATUS") == "0"


def test_stop_closes_sockets_and_joins_threads_while_streaming():
    sim = MerlinSim(frames=0, pool_size=2).start()
    d = connect(sim.data_port)  # never reads: the sender blocks in sendmsg
    c = ControlClient(port=sim.control_port).connect()
    c.cmd("STARTACQUISITION")
    assert len(sim.threads()) >= 3  # accept loops + one control client
    t0 = time.monotonic()
    sim.stop()
    assert time.monotonic() - t0 < 5
    assert sim.threads() == []
    for port in (sim.control_port, sim.data_port):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)
    with pytest.raises(ConnectionError):
        c.get("IMAGEX")
    assert_closed(d)  # the data client sees the end of the stream
    d.close()
    c.close()


def test_restart_on_same_ports():
    with MerlinSim(frames=2, pool_size=2) as sim:
        cport, dport = sim.control_port, sim.data_port
        d = connect(dport)
        c = ControlClient(port=cport).connect()
        sim.restart()
        assert (sim.control_port, sim.data_port) == (cport, dport)
        with pytest.raises(ConnectionError):
            c.get("IMAGEX")
        assert_closed(d)  # EOF, or a reset if it was still in the listen backlog
        d.close()
        c.close()
        d = connect(dport)
        with ControlClient(port=cport) as c:
            c.cmd("STARTACQUISITION")
        assert len(read_acquisition(MpxReader(d, timeout=5)).frames) == 2
        d.close()


def test_mib_file_source(tmp_path):
    frames = make_frames(6, (256, 256), 1, seed=3)
    path = tmp_path / "scan.mib"
    write_mib(path, frames, 1, raw=True)
    with MerlinSim(mib_path=str(path), frames=9) as sim:
        d = connect(sim.data_port)
        with ControlClient(port=sim.control_port) as c:
            assert c.get("COUNTERDEPTH") == "1" and c.get("FILEFORMAT") == "2"
            with pytest.raises(MerlinOutOfRangeError):
                c.set("COUNTERDEPTH", 12)  # fixed by the file
            c.cmd("STARTACQUISITION")
        res = read_acquisition(MpxReader(d, timeout=5))
        for i in range(9):  # the file is cycled, sequence numbers rewritten
            np.testing.assert_array_equal(res.images[i], frames[i % 6])
        np.testing.assert_array_equal(res.images.sum(0, dtype=np.float64),
                                              sim.expected_sum())
        d.close()


def test_pacing():
    with MerlinSim(frames=20, pool_size=2, frame_rate=400) as sim:
        d = connect(sim.data_port)
        r = MpxReader(d, timeout=5)
        with ControlClient(port=sim.control_port) as c:
            c.cmd("STARTACQUISITION")
        r.read_message()
        r.read_message()
        t0 = time.monotonic()
        for _ in range(19):
            r.read_message()
        assert time.monotonic() - t0 >= 18 / 400
        d.close()


def test_cli_runs_until_interrupted():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.Popen([sys.executable, "-m", "libertem_live_merlin.sim", "--control-port",
                          "0", "--data-port", "0", "--frames", "3", "--pool-size", "3"],
                         stdout=subprocess.PIPE, text=True, env=env)
    try:
        ports = json.loads(p.stdout.readline())
        d = connect(ports["data_port"])
        with ControlClient(port=ports["control_port"]) as c:
            c.cmd("STARTACQUISITION")
        assert len(read_acquisition(MpxReader(d, timeout=10)).frames) == 3
        d.close()
        p.send_signal(signal.SIGINT)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_cli_help_shows_defaults_and_prog():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-m", "libertem_live_merlin.sim", "--help"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert out.startswith("usage: python -m libertem_live_merlin.sim")
    assert "(default: 6342)" in out and "--fault KIND[@FRAME]" in out
    assert "frame_gap" in out and "never_ends" not in out


def test_unsupported_fault_is_refused():
    with pytest.raises(ValueError, match="cannot inject 'never_ends'.*no end-of-series"):
        MerlinSim(frames=4, fault="never_ends")
    with pytest.raises(ValueError, match="unknown fault"):
        MerlinSim(frames=4, fault="no_such_fault")
