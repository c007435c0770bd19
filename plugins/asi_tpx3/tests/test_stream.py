"""The driver's message reader (on the core's TcpReader) + simulator over real
TCP sockets on 127.0.0.1."""
import re
import threading
import time

import numpy as np
import pytest

from libertem_live.driver import (
    FOREVER, IdleTimeout, PeerClosed, Stalled, Stopped, Truncated,
)
from libertem_live_asi_tpx3.decode import Tpx3Decoder
from libertem_live_asi_tpx3.errors import Tpx3FormatError, Tpx3ProtocolError
from libertem_live_asi_tpx3.headers import (
    AcquisitionEnd, AcquisitionStart, ArrayChunk, DType, FormatType, ScanEnd, ScanStart,
)
from libertem_live_asi_tpx3.sim import Tpx3Sim
from libertem_live_asi_tpx3.wire import Phase

from _helpers import RawServer, messages, read_header, receive_acquisition

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
        r = messages(sim.port)
        try:
            res = receive_acquisition(r)
            assert res.acquisition.nav_shape == (6, 8)
            assert res.acquisition.format_type == FormatType.TOT
            assert len(res.scans) == 3
            assert res.metadata == [b'{"scan": "raster", "dwell_ns": 1000}'] * 3
            assert not res.cancelled and r.phase is Phase.IDLE
            for batch in res.scans:
                _assert_scan_matches(sim, res.acquisition, batch)
        finally:
            r.reader.close()


def test_message_order_and_raw_header_bytes():
    with Tpx3Sim(**SMALL) as sim:
        r = messages(sim.port)
        kinds = []
        try:
            while True:
                hdr = read_header(r, 5)
                kinds.append(type(hdr))
                assert bytes(r.header_bytes) == hdr.pack()
                if isinstance(hdr, ArrayChunk):
                    payload = bytearray(r.payload_size)
                    assert r.payload_into(payload) == hdr.payload_size()
                if isinstance(hdr, AcquisitionEnd):
                    break
        finally:
            r.reader.close()
        nchunks = len(sim.synth.chunks)
        assert kinds == [AcquisitionStart, ScanStart] + [ArrayChunk] * nchunks + \
            [ScanEnd, AcquisitionEnd]


def test_several_acquisitions_per_connection_and_reconnect():
    with Tpx3Sim(**SMALL, acquisitions_per_connection=3, close_after=True) as sim:
        for _conn in range(2):
            r = messages(sim.port)
            try:
                for _ in range(3):
                    res = receive_acquisition(r)
                    _assert_scan_matches(sim, res.acquisition, res.scans[0])
                with pytest.raises(PeerClosed):
                    read_header(r, 5)
            finally:
                r.reader.close()
        assert sim.wait_for_acquisitions_sent(6, timeout=5)
        assert sim.connections == 2


def test_idle_timeout_then_trigger():
    with Tpx3Sim(**SMALL, wait_for_trigger=True) as sim:
        r = messages(sim.port)
        try:
            t0 = time.monotonic()
            with pytest.raises(IdleTimeout):
                read_header(r, 0.3)
            assert time.monotonic() - t0 >= 0.3
            assert r.phase is Phase.IDLE  # nothing consumed, reader still usable
            sim.trigger()
            res = receive_acquisition(r)
            _assert_scan_matches(sim, res.acquisition, res.scans[0])
        finally:
            r.reader.close()


def test_stop_flag_interrupts_wait():
    stop = threading.Event()
    with Tpx3Sim(**SMALL, wait_for_trigger=True) as sim:
        r = messages(sim.port)
        try:
            threading.Timer(0.2, stop.set).start()
            with pytest.raises(Stopped):
                r.header(stop, deadline=FOREVER)
            assert r.reader.connected  # a stop between messages keeps the stream position
        finally:
            r.reader.close()


def test_payload_api():
    with Tpx3Sim(**SMALL) as sim:
        r = messages(sim.port)
        try:
            while not isinstance(read_header(r, 5), ArrayChunk):
                pass
            with pytest.raises(ValueError, match="too small"):
                r.payload_into(bytearray(r.payload_size - 1))
            n = r.payload_size
            assert r.skip_payload() == n and r.payload_size == 0
            assert isinstance(read_header(r, 5), ArrayChunk)
            # a payload nobody read is dropped before the next header
            assert isinstance(read_header(r, 5), ArrayChunk)
            buf = np.zeros(r.payload_size + 100, np.uint8)
            r.payload_into(memoryview(buf))  # larger buffers are fine
            assert r.payload_size == 0
            assert r.state.chunk_index == 3
        finally:
            r.reader.close()


def _read_until_error(r):
    """Drain the stream like a receiver; return the exception that ended it."""
    with pytest.raises(Exception) as ei:
        for _ in range(10_000):
            hdr = read_header(r, 10)
            if isinstance(hdr, ArrayChunk):
                r.payload_into(bytearray(r.payload_size))
    return ei.value


@pytest.mark.parametrize("fault,exc,match", [
    ("disconnect_mid_stream@22", Truncated, r"payload of chunk 4, \d+ of \d+ bytes in"),
    ("wrong_format@22", Tpx3FormatError, r"value_dtype U1 \(bit-packed\).*chunk 4"),
])
def test_faults_give_clear_errors(fault, exc, match):
    with Tpx3Sim(**SMALL, fault=fault) as sim:
        r = messages(sim.port)
        try:
            t0 = time.monotonic()
            err = _read_until_error(r)
            assert isinstance(err, exc), repr(err)
            assert re.search(match, str(err)), str(err)
            assert time.monotonic() - t0 < 4  # content errors do not wait for a timeout
            if isinstance(err, Tpx3ProtocolError):
                assert "reconnect" in str(err) and err.offset is not None
            assert r.reader.broken is not None  # the stream position is lost: reconnect
            assert r.phase is Phase.SCAN  # a receiver sees the scan is incomplete
        finally:
            r.reader.close()


@pytest.mark.parametrize("blob,match,offset", [
    (AcquisitionStart(nav_shape=(1, 2)).pack() + ScanStart(metadata_length=3).pack() + b"{}\n"
     + bytes([7]) + bytes(31), r"unknown header tag 0x07.*byte offset 67, chunk 0", 67),
    (AcquisitionStart(nav_shape=(1, 2)).pack()
     + ArrayChunk(DType.U8, 1, 0, 8, 8).pack() + bytes(8),
     "unexpected ArrayChunk header after AcquisitionStart", 32),
])
def test_invalid_streams_give_protocol_errors(blob, match, offset):
    with RawServer([blob]) as srv:
        r = messages(srv.port)
        try:
            err = _read_until_error(r)
            assert isinstance(err, Tpx3ProtocolError), repr(err)
            assert re.search(match, str(err)), str(err)
            assert "reconnect" in str(err) and err.offset == offset
            assert r.reader.broken is not None
        finally:
            r.reader.close()


def test_stall_mid_frame_is_a_stall():
    with Tpx3Sim(**SMALL, fault="stall_mid_frame@16") as sim:
        r = messages(sim.port, stall_timeout=0.3)
        chunks = 0
        try:
            with pytest.raises(Stalled, match=r"no byte for 0.3 s while reading the payload"):
                while True:
                    hdr = read_header(r, 5)
                    if isinstance(hdr, ArrayChunk):
                        chunks += 1
                        r.payload_into(bytearray(r.payload_size))
            assert chunks == 4 and r.phase is Phase.SCAN  # three whole, the fourth stalled
        finally:
            r.reader.close()


def test_stall_inside_a_header_is_a_stall():
    """A peer that sends half a header and then nothing: stall, not idle."""
    with RawServer([AcquisitionStart(nav_shape=(1, 1)).pack()[:10]]) as srv:
        r = messages(srv.port, stall_timeout=0.2)
        try:
            with pytest.raises(Stalled, match=r"header, 10 of 32 bytes in"):
                read_header(r, 5)
        finally:
            r.reader.close()


def test_reconnect_after_fault_gets_good_data():
    with Tpx3Sim(**SMALL, fault="disconnect_mid_stream",
                 acquisitions_per_connection=None) as sim:
        r = messages(sim.port)
        try:
            assert isinstance(_read_until_error(r), Truncated)
            r.reader.ensure()  # reconnects: the position was lost
            r.reset()
            res = receive_acquisition(r)
            _assert_scan_matches(sim, res.acquisition, res.scans[0])
            assert r.reader.connects == 2
        finally:
            r.reader.close()


def test_oversized_metadata_is_skipped():
    meta = b"x" * 5000
    with Tpx3Sim(**SMALL, metadata=meta) as sim:
        r = messages(sim.port, max_metadata=100)
        try:
            res = receive_acquisition(r)
            assert res.metadata == [None]
            _assert_scan_matches(sim, res.acquisition, res.scans[0])
        finally:
            r.reader.close()
