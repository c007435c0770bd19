"""Each fault kind shows up on the Merlin data port as documented in
``libertem_live_merlin.sim.faults`` (read with a plain MPX reader)."""
from __future__ import annotations


import pytest
from conftest import MpxReader, connect, read_acquisition

from libertem_live.driver import Fault, FaultKind

from libertem_live_merlin.client import ControlClient
from libertem_live_merlin.errors import MerlinProtocolError
from libertem_live_merlin.headers import parse_acquisition_header, parse_frame_header
from libertem_live_merlin.sim import MerlinSim


@pytest.fixture
def sim():
    with MerlinSim(frames=6, pool_size=3) as s:
        yield s


def start(sim, fault, timeout=5.0):
    sim.inject_fault(fault)
    d = connect(sim.data_port)
    with ControlClient(port=sim.control_port) as c:
        c.cmd("STARTACQUISITION")
    r = MpxReader(d, timeout=timeout)
    parse_acquisition_header(r.read_message())
    return d, r


def sequences(r, k):
    return [parse_frame_header(r.read_message()).sequence for _ in range(k)]


def test_frame_gap(sim):
    d, r = start(sim, "frame_gap@2")
    assert sequences(r, 5) == [1, 2, 4, 5, 6]
    d.close()


def test_duplicate_frame(sim):
    d, r = start(sim, "duplicate_frame@2")
    assert sequences(r, 7) == [1, 2, 3, 3, 4, 5, 6]
    d.close()


def test_out_of_order(sim):
    d, r = start(sim, Fault(FaultKind.OUT_OF_ORDER, 2))
    assert sequences(r, 6) == [1, 2, 4, 3, 5, 6]
    d.close()


def test_truncated_payload_keeps_the_framing(sim):
    d, r = start(sim, "truncated_payload@1")
    full = r.read_prefix()
    r.recv_exactly(full)
    short = r.read_prefix()
    msg = r.recv_exactly(short)
    fh = parse_frame_header(msg)
    assert fh.sequence == 2 and short - fh.data_offset == fh.payload_size // 2
    assert sequences(r, 4) == [3, 4, 5, 6]  # the stream goes on
    d.close()


def test_corrupt_payload(sim):
    d, r = start(sim, "corrupt_payload@1")
    sequences(r, 1)
    with pytest.raises(MerlinProtocolError, match="does not start with 'MQ1,'.*GARBAGE"):
        parse_frame_header(r.read_message())
    assert sequences(r, 4) == [3, 4, 5, 6]
    d.close()


def test_wrong_format(sim):
    d, r = start(sim, "wrong_format@1")
    first = parse_frame_header(r.read_message())
    other = parse_frame_header(r.read_message())
    assert (first.counter_depth, first.pixel_format) == (12, "U16")
    assert (other.sequence, other.counter_depth, other.pixel_format) == (2, 24, "U32")
    assert sequences(r, 4) == [3, 4, 5, 6]
    d.close()


def test_ends_short(sim):
    d, r = start(sim, "ends_short@3", timeout=0.5)
    assert sequences(r, 3) == [1, 2, 3]
    assert sim.wait_idle(5)
    assert sim.last_acquisition().outcome == "fault: ends_short after 3 frames"
    with pytest.raises(TimeoutError):  # nothing more, the connection stays open
        r.read_message()
    d.close()


def test_stall_mid_frame(sim):
    d, r = start(sim, "stall_mid_frame@2", timeout=0.3)
    sequences(r, 2)
    with pytest.raises(TimeoutError):
        r.read_message()
    assert 0 < r.offset - 2063 - 2 * (15 + 384 + 131072) < 15 + 384 + 131072
    with ControlClient(port=sim.control_port) as c:
        assert c.get("DETECTORSTATUS") == "1"
        c.cmd("ABORT")
    assert sim.wait_idle(5)
    d.close()


def test_disconnect_mid_stream(sim):
    d, r = start(sim, "disconnect_mid_stream@2")
    sequences(r, 2)
    with pytest.raises(ConnectionAbortedError, match="closed after"):
        r.read_message()
    d.close()


def test_restart_between(sim):
    c = ControlClient(port=sim.control_port).connect()
    d, r = start(sim, "restart_between")
    assert sequences(r, 6) == [1, 2, 3, 4, 5, 6]  # the acquisition is whole
    with pytest.raises(EOFError):
        r.read_message()  # then the data connection drops ...
    with pytest.raises(ConnectionError):
        c.get("IMAGEX")  # ... and the control connection too
    c.close()
    d.close()
    assert sim.wait_idle(5)
    d = connect(sim.data_port)  # same ports
    with ControlClient(port=sim.control_port) as c:
        c.cmd("STARTACQUISITION")
    assert len(read_acquisition(MpxReader(d)).frames) == 6
    d.close()


def test_fault_applies_to_one_acquisition_only(sim):
    d, r = start(sim, "frame_gap@0")
    assert sequences(r, 5) == [2, 3, 4, 5, 6]
    assert sim.wait_idle(5)
    with ControlClient(port=sim.control_port) as c:
        c.cmd("STARTACQUISITION")
    res = read_acquisition(MpxReader(d, timeout=5))
    assert [f.sequence for f in res.frames] == [1, 2, 3, 4, 5, 6]
    d.close()


def test_fault_from_the_constructor_and_refused_kinds():
    with MerlinSim(frames=4, pool_size=2, fault="duplicate_frame@0") as sim:
        d = connect(sim.data_port)
        with ControlClient(port=sim.control_port) as c:
            c.cmd("STARTACQUISITION")
        r = MpxReader(d)
        r.read_message()
        assert sequences(r, 5) == [1, 1, 2, 3, 4]
        with pytest.raises(ValueError, match="never_ends"):
            sim.inject_fault("never_ends")
        d.close()
