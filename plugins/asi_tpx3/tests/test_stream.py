"""Reader + simulator over real TCP sockets on 127.0.0.1."""
import re
import socket
import threading
import time

import numpy as np
import pytest

from libertem_live_asi_tpx3.decode import Tpx3Decoder
from libertem_live_asi_tpx3.errors import (
    Tpx3Closed, Tpx3IdleTimeout, Tpx3ProtocolError, Tpx3Stopped, Tpx3StreamError,
)
from libertem_live_asi_tpx3.headers import (
    AcquisitionEnd, AcquisitionStart, ArrayChunk, DType, FormatType, ScanEnd, ScanStart,
)
from libertem_live_asi_tpx3.sim import Fault, Tpx3Sim
from libertem_live_asi_tpx3.stream import Phase, Tpx3Reader

from _helpers import connect, receive_acquisition

SMALL = dict(nav_shape=(6, 8), sig_shape=(64, 64), events_per_frame=15, frames_per_chunk=5)


def _assert_scan_matches(sim, acq_hdr, batch):
    dec = Tpx3Decoder(acq_hdr.sig_shape, acq_hdr.indptr_dtype, acq_hdr.indices_dtype)
    n = batch.offsets.size
    assert n == acq_hdr.nframes
    out = np.empty((n,) + acq_hdr.sig_shape, np.float32)
    dec.decode(batch.data, batch.offsets, batch.sizes, batch.aux, out)
    np.testing.assert_array_equal(out.sum(axis=0), sim.expected_sum())
    np.testing.assert_array_equal(out[n - 1], sim.expected_frame(n - 1))
    m = dec.decode_csr(batch.data, batch.offsets, batch.sizes, batch.aux)
    assert m.nnz == sim.expected_nnz_total()


def test_full_acquisition_with_metadata_and_several_scans():
    meta = {"scan": "raster", "dwell_ns": 1000}
    with Tpx3Sim(**SMALL, scans_per_acquisition=3, metadata=meta,
                 value_dtypes=(DType.U8, DType.U16, DType.U32, DType.U64),
                 format_type=FormatType.TOT, align=8, extra_pad=2) as sim:
        with connect(sim.port) as s:
            r = Tpx3Reader(s)
            res = receive_acquisition(r)
            assert res.acquisition.nav_shape == (6, 8)
            assert res.acquisition.format_type == FormatType.TOT
            assert len(res.scans) == 3
            assert res.metadata == [b'{"scan": "raster", "dwell_ns": 1000}'] * 3
            assert not res.cancelled and r.phase is Phase.IDLE
            for batch in res.scans:
                _assert_scan_matches(sim, res.acquisition, batch)


def test_message_order_and_raw_header_bytes():
    with Tpx3Sim(**SMALL) as sim, connect(sim.port) as s:
        r = Tpx3Reader(s)
        kinds = []
        for hdr, payload in r.messages(timeout=5):
            kinds.append(type(hdr))
            assert r.header_bytes == hdr.pack()
            if isinstance(hdr, ArrayChunk):
                assert len(payload) == hdr.payload_size()
            if isinstance(hdr, AcquisitionEnd):
                break
        nchunks = len(sim.synth.chunks)
        assert kinds == [AcquisitionStart, ScanStart] + [ArrayChunk] * nchunks + \
            [ScanEnd, AcquisitionEnd]


def test_several_acquisitions_per_connection_and_reconnect():
    with Tpx3Sim(**SMALL, acquisitions_per_connection=3, close_after=True) as sim:
        for _conn in range(2):
            with connect(sim.port) as s:
                r = Tpx3Reader(s)
                for _ in range(3):
                    res = receive_acquisition(r)
                    _assert_scan_matches(sim, res.acquisition, res.scans[0])
                with pytest.raises(Tpx3Closed):
                    r.read_header(timeout=5)
        assert sim.wait_for_acquisitions_sent(6, timeout=5)
        assert sim.connections == 2


def test_idle_timeout_then_trigger():
    with Tpx3Sim(**SMALL, wait_for_trigger=True) as sim, connect(sim.port) as s:
        r = Tpx3Reader(s)
        t0 = time.monotonic()
        with pytest.raises(Tpx3IdleTimeout):
            r.read_header(timeout=0.3)
        assert time.monotonic() - t0 >= 0.3
        assert r.phase is Phase.IDLE  # nothing consumed, reader still usable
        sim.trigger()
        res = receive_acquisition(r)
        _assert_scan_matches(sim, res.acquisition, res.scans[0])


def test_stop_flag_interrupts_wait():
    stop = threading.Event()
    with Tpx3Sim(**SMALL, wait_for_trigger=True) as sim, connect(sim.port) as s:
        r = Tpx3Reader(s, should_stop=stop.is_set, poll_interval=0.05)
        threading.Timer(0.2, stop.set).start()
        with pytest.raises(Tpx3Stopped):
            r.read_header(timeout=None)


def test_payload_api_misuse():
    with Tpx3Sim(**SMALL) as sim, connect(sim.port) as s:
        r = Tpx3Reader(s)
        while not isinstance(r.read_header(timeout=5), ArrayChunk):
            pass
        with pytest.raises(RuntimeError, match="pending"):
            r.read_header(timeout=5)
        with pytest.raises(ValueError, match="too small"):
            r.read_payload_into(bytearray(r.payload_size - 1))
        n = r.payload_size
        assert r.skip_payload() == n
        assert isinstance(r.read_header(timeout=5), ArrayChunk)
        buf = np.zeros(r.payload_size + 100, np.uint8)
        r.read_payload_into(memoryview(buf))  # larger buffers are fine
        with pytest.raises(RuntimeError, match="no ArrayChunk payload pending"):
            r.skip_payload()


def _read_until_error(r):
    """Drain the stream like a receiver; return the exception that ended it."""
    with pytest.raises(Exception) as ei:
        for _ in range(10_000):
            hdr = r.read_header(timeout=10)
            if isinstance(hdr, ArrayChunk):
                r.read_payload_into(bytearray(r.payload_size))
    return ei.value


@pytest.mark.parametrize("fault,exc,match", [
    (Fault.TRUNCATED_PAYLOAD, Tpx3StreamError, r"connection closed after \d+ of \d+ bytes of "
                                               r"chunk 4 payload"),
    (Fault.UNKNOWN_TAG, Tpx3ProtocolError, "unknown header tag 0x07.*chunk 4"),
    (Fault.WRONG_ORDER, Tpx3ProtocolError, "unexpected ArrayChunk header after "
                                           "AcquisitionStart"),
    (Fault.TOO_FEW_ROWS, Tpx3ProtocolError, "ScanEnd after 45 rows, but nav_shape .* needs 48"),
    (Fault.TOO_MANY_ROWS, Tpx3ProtocolError, "chunk rows exceed the scan: 48 rows"),
    (Fault.DISCONNECT_MID_SCAN, Tpx3Closed, "closed by the peer"),
])
def test_faults_give_clear_errors(fault, exc, match):
    with Tpx3Sim(**SMALL, fault=fault, fault_chunk=4) as sim, connect(sim.port) as s:
        r = Tpx3Reader(s, stall_timeout=5)
        t0 = time.monotonic()
        err = _read_until_error(r)
        assert isinstance(err, exc), repr(err)
        assert re.search(match, str(err)), str(err)
        assert time.monotonic() - t0 < 4  # content errors do not wait for a timeout
        if isinstance(err, Tpx3ProtocolError):
            assert "reconnect" in str(err) and err.offset is not None
        if fault is Fault.DISCONNECT_MID_SCAN:
            assert r.phase is Phase.SCAN  # a receiver sees the scan is incomplete
        with pytest.raises(Tpx3StreamError, match="unusable"):
            r.read_header(timeout=1)


def test_stall_mid_scan_times_out_as_stream_error():
    with Tpx3Sim(**SMALL, fault=Fault.STALL_MID_SCAN, fault_chunk=3) as sim, \
            connect(sim.port) as s:
        r = Tpx3Reader(s, stall_timeout=0.3, poll_interval=0.05)
        chunks = 0
        with pytest.raises(Tpx3IdleTimeout):
            while True:
                hdr = r.read_header(timeout=0.5)
                if isinstance(hdr, ArrayChunk):
                    chunks += 1
                    r.skip_payload()
        assert chunks == 3 and r.phase is Phase.SCAN


def test_stall_inside_a_message_is_a_stream_error():
    """A peer that sends half a header and then nothing: stall, not idle."""
    srv = socket.create_server(("127.0.0.1", 0))
    try:
        c = socket.create_connection(srv.getsockname())
        peer, _ = srv.accept()
        with c, peer:
            peer.sendall(AcquisitionStart(nav_shape=(1, 1)).pack()[:10])
            r = Tpx3Reader(c, stall_timeout=0.2, poll_interval=0.05)
            with pytest.raises(Tpx3StreamError, match=r"stalled .* after 10 of 32 bytes"):
                r.read_header(timeout=5)
    finally:
        srv.close()


def test_reconnect_after_fault_gets_good_data():
    with Tpx3Sim(**SMALL, fault=Fault.TRUNCATED_PAYLOAD, fault_connections=1) as sim:
        with connect(sim.port) as s:
            assert isinstance(_read_until_error(Tpx3Reader(s)), Tpx3StreamError)
        with connect(sim.port) as s:
            res = receive_acquisition(Tpx3Reader(s))
            _assert_scan_matches(sim, res.acquisition, res.scans[0])


def test_oversized_metadata_is_skipped():
    meta = b"x" * 5000
    with Tpx3Sim(**SMALL, metadata=meta) as sim, connect(sim.port) as s:
        r = Tpx3Reader(s, max_metadata=100)
        res = receive_acquisition(r)
        assert res.metadata == [None]
        _assert_scan_matches(sim, res.acquisition, res.scans[0])
