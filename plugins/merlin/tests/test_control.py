"""Control client against the simulator's control port (real TCP)."""
from __future__ import annotations

import socket
import threading

import pytest
from conftest import MpxReader

from libertem_live.errors import DetectorConnectionError

from libertem_live_merlin.client import ControlClient, ReconnectingControl
from libertem_live_merlin.errors import (MerlinBusyError, MerlinControlTimeout,
                                         MerlinOutOfRangeError, MerlinProtocolError,
                                         MerlinUnknownCommandError)
from libertem_live_merlin.sim import MerlinSim
from libertem_live_merlin.wire import build_message


@pytest.fixture
def sim():
    with MerlinSim(frames=4, trigger=5) as s:
        yield s


def test_initial_values_and_set_get(sim):
    with ControlClient(port=sim.control_port, timeout=5) as c:
        assert c.get("IMAGEX") == "256" and c.get_int("IMAGEY") == 256
        assert c.get("COUNTERDEPTH") == "12"
        assert c.get("DETECTORSTATUS") == "0"
        for name in ("NUMFRAMESTOACQUIRE", "NUMFRAMESPERTRIGGER", "ACQUISITIONTIME",
                     "ACQUISITIONPERIOD", "CONTINUOUSRW", "TRIGGERSTART", "TRIGGERSTOP",
                     "FILEFORMAT", "FILEENABLE", "RUNHEADLESS"):
            c.get(name)
        c.set("COUNTERDEPTH", 6)
        assert c.get("COUNTERDEPTH") == "6"
        c.set("acquisitiontime", 0.5)  # names are case-insensitive on the server
        assert c.get("ACQUISITIONTIME") == "0.5"


def test_status_3_out_of_range(sim):
    with ControlClient(port=sim.control_port) as c:
        with pytest.raises(MerlinOutOfRangeError) as ei:
            c.set("COUNTERDEPTH", 7)
        e = ei.value
        assert e.status == 3 and e.name == "COUNTERDEPTH" and e.value == "7"
        assert "COUNTERDEPTH=7" in str(e) and "out of range" in str(e) and "1, 6, 12" in str(e)
        assert c.get("COUNTERDEPTH") == "12"  # unchanged


def test_status_2_unknown(sim):
    with ControlClient(port=sim.control_port) as c:
        with pytest.raises(MerlinUnknownCommandError, match="NOSUCHTHING.*status 2"):
            c.get("NOSUCHTHING")
        with pytest.raises(MerlinUnknownCommandError):
            c.cmd("SELFDESTRUCT")
        with pytest.raises(MerlinUnknownCommandError):  # read-only
            c.set("IMAGEX", 512)


def test_status_1_busy_while_acquiring(sim):
    with ControlClient(port=sim.control_port) as c:
        c.cmd("STARTACQUISITION")  # soft trigger: stays armed, no data client needed
        assert c.get("DETECTORSTATUS") == "1"
        with pytest.raises(MerlinBusyError, match="acquiring.*STOPACQUISITION"):
            c.set("COUNTERDEPTH", 6)
        with pytest.raises(MerlinBusyError):
            c.cmd("STARTACQUISITION")
        c.cmd("ABORT")
        assert c.get("DETECTORSTATUS") == "0"
        c.set("COUNTERDEPTH", 6)


def test_server_accepts_plain_and_suffixed_forms_with_correct_length(sim):
    s = socket.create_connection(("127.0.0.1", sim.control_port), timeout=5)
    r = MpxReader(s, timeout=5)
    s.sendall(b"MPX,0000000011,GET,IMAGEX")
    # reply "GET,IMAGEX,256,0" is 16 bytes; the length field counts them + 1
    assert bytes(r.recv_exactly(15 + 16)) == b"MPX,0000000017,GET,IMAGEX,256,0"
    s.sendall(build_message(b"GET,IMAGEX,0"))
    assert bytes(r.read_message()) == b"GET,IMAGEX,256,0"
    s.sendall(build_message(b"CMD,STOPACQUISITION,0"))
    assert bytes(r.read_message()) == b"CMD,STOPACQUISITION,0"
    s.sendall(build_message(b"BOGUS"))
    assert bytes(r.read_message()) == b"BOGUS,2"
    s.close()


def test_client_dummy_suffix_mode(sim):
    with ControlClient(port=sim.control_port, dummy_suffix=True) as c:
        assert c.get("IMAGEX") == "256"
        c.cmd("STOPACQUISITION")


def _one_shot_server(reply: bytes | None):
    """A real TCP server that answers one request with ``reply`` (None: never)."""
    ls = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def run():
        conn, _ = ls.accept()
        MpxReader(conn, timeout=5).read_message()
        conn.settimeout(None)
        if reply is not None:
            conn.sendall(reply)
        done.wait(10)
        conn.close()
        ls.close()
    t = threading.Thread(target=run)
    t.start()
    return ls.getsockname()[1], done, t


@pytest.mark.parametrize("reply, needle", [
    (build_message(b"GET,IMAGEX,256,x"), "status field 'x'"),
    (build_message(b"GET,IMAGEY,256,0"), "does not answer request 'GET,IMAGEX'"),
    (build_message(b"GET,IMAGEX"), "expected GET,NAME,VALUE,STATUS"),
    (b"HELLO-NOT-MPX-FRAMED", "bad MPX magic"),
])
def test_unparsable_replies(reply, needle):
    port, done, t = _one_shot_server(reply)
    try:
        with ControlClient(port=port, timeout=5) as c:
            with pytest.raises(MerlinProtocolError, match=needle):
                c.get("IMAGEX")
    finally:
        done.set()
        t.join()


def test_reply_timeout():
    port, done, t = _one_shot_server(None)
    try:
        with ControlClient(port=port, timeout=0.2) as c:
            with pytest.raises(MerlinControlTimeout, match="no reply to 'GET,IMAGEX'"):
                c.get("IMAGEX")
    finally:
        done.set()
        t.join()


def test_connect_refused_is_immediate():
    ls = socket.create_server(("127.0.0.1", 0))
    port = ls.getsockname()[1]
    ls.close()
    with pytest.raises(DetectorConnectionError, match="cannot connect.*tried 1 times"):
        ControlClient(port=port, timeout=2).connect()


def test_reconnecting_client_survives_a_restart(sim):
    """A request on a connection the restart dropped is retried once on a new one."""
    c = ReconnectingControl("127.0.0.1", sim.control_port, reconnect_timeout=5)
    try:
        assert c.get("IMAGEX") == "256"
        sim.restart()
        assert c.get("IMAGEX") == "256"
    finally:
        c.close()


def test_detector_idle_probe(sim):
    c = ReconnectingControl("127.0.0.1", sim.control_port)
    try:
        assert c.detector_idle() is None, "the probe never opens a connection itself"
        c.connect()
        assert c.detector_idle() is True
        c.cmd("STARTACQUISITION")  # soft trigger: armed, busy
        assert c.detector_idle() is False
        c.cmd("ABORT")
        assert c.detector_idle() is True
    finally:
        c.close()
