"""Each injected fault shows up as the documented error on the receiving side."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import connect, read_acquisition

from libertem_live_merlin.control import MerlinControl
from libertem_live_merlin.decode import MerlinDecoder
from libertem_live_merlin.errors import (DecodeError, MerlinConnectionClosed,
                                         MerlinProtocolError, MerlinTimeout,
                                         MerlinTruncatedError)
from libertem_live_merlin.faults import Fault, FaultKind
from libertem_live_merlin.headers import parse_acquisition_header, parse_frame_header
from libertem_live_merlin.mpx import MpxReader
from libertem_live_merlin.sim import MerlinSim


@pytest.fixture
def sim():
    with MerlinSim(frames=6, pool_size=3) as s:
        yield s


def start(sim, fault):
    sim.inject_fault(fault)
    d = connect(sim.data_port)
    with MerlinControl(port=sim.control_port) as c:
        c.cmd("STARTACQUISITION")
    r = MpxReader(d, timeout=0.3)
    parse_acquisition_header(r.read_message())
    return d, r


def read_frames(r, k):
    return [parse_frame_header(r.read_message()) for _ in range(k)]


def test_abort_after(sim):
    d, r = start(sim, Fault(FaultKind.ABORT_AFTER, 3))
    read_frames(r, 3)
    with pytest.raises(MerlinTimeout):
        r.read_message()
    assert sim.wait_idle(5)
    assert sim.last_acquisition().outcome.startswith("fault: abort_after")
    d.close()


def test_disconnect_after(sim):
    d, r = start(sim, Fault(FaultKind.DISCONNECT_AFTER, 2))
    read_frames(r, 2)
    with pytest.raises(MerlinConnectionClosed):
        r.read_message()
    d.close()


def test_stall_after(sim):
    d, r = start(sim, Fault(FaultKind.STALL_AFTER, 2))
    read_frames(r, 2)
    with pytest.raises(MerlinTimeout, match="no data for 0.3 s"):
        r.read_message()
    with MerlinControl(port=sim.control_port) as c:
        assert c.get("DETECTORSTATUS") == "1"
        c.cmd("ABORT")
    assert sim.wait_idle(5)
    d.close()


def test_truncated_frame(sim):
    d, r = start(sim, Fault(FaultKind.TRUNCATE_FRAME, 3))
    read_frames(r, 2)
    with pytest.raises(MerlinTruncatedError, match="connection closed by peer in the middle"):
        r.read_message()
    d.close()


def test_short_frame_changes_size(sim):
    d, r = start(sim, Fault(FaultKind.SHORT_FRAME, 2))
    first = r.read_prefix()
    r.recv_exactly(first)
    second = r.read_prefix()
    assert second != first
    msg = r.recv_exactly(second)
    fh = parse_frame_header(msg)
    dec = MerlinDecoder.from_frame_header(fh)
    with pytest.raises(DecodeError, match="frame 0 of the batch .* expected 131072"):
        dec.decode(np.frombuffer(msg, np.uint8), np.array([fh.data_offset]),
                   np.array([second - fh.data_offset]), None, np.empty((1, 256, 256)))
    read_frames(r, 4)  # the stream goes on
    d.close()


def test_wrong_sequence(sim):
    d, r = start(sim, Fault(FaultKind.WRONG_SEQUENCE, 2))
    assert [f.sequence for f in read_frames(r, 6)] == [1, 1002, 3, 4, 5, 6]
    d.close()


def test_garbage_header(sim):
    d, r = start(sim, Fault(FaultKind.GARBAGE_HEADER, 2))
    read_frames(r, 1)
    with pytest.raises(MerlinProtocolError, match="does not start with 'MQ1,'.*GARBAGE"):
        parse_frame_header(r.read_message())
    d.close()


def test_garbage_prefix(sim):
    d, r = start(sim, Fault(FaultKind.GARBAGE_PREFIX, 2))
    read_frames(r, 1)
    at = r.offset
    with pytest.raises(MerlinProtocolError, match=f"bad MPX magic at stream offset {at}: "
                                                  f"expected b'MPX,', got b'GARB'"):
        r.read_message()
    d.close()


def test_fault_applies_to_one_acquisition_only(sim):
    d, r = start(sim, Fault(FaultKind.WRONG_SEQUENCE, 1, value=77))
    assert read_frames(r, 6)[0].sequence == 77
    assert sim.wait_idle(5)
    with MerlinControl(port=sim.control_port) as c:
        c.cmd("STARTACQUISITION")
    res = read_acquisition(MpxReader(d, timeout=5))
    assert [f.sequence for f in res.frames] == [1, 2, 3, 4, 5, 6]
    d.close()


def test_inject_by_name(sim):
    sim.inject_fault("disconnect_after", 0)
    d = connect(sim.data_port)
    with MerlinControl(port=sim.control_port) as c:
        c.cmd("STARTACQUISITION")
    r = MpxReader(d, timeout=5)
    r.read_message()  # HDR only
    with pytest.raises(MerlinConnectionClosed):
        r.read_message()
    d.close()
