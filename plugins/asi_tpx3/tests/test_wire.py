"""The message order (wire.StreamState) on in-memory recordings, without sockets."""
import pytest

from libertem_live_asi_tpx3.errors import Tpx3ProtocolError
from libertem_live_asi_tpx3.headers import AcquisitionEnd, ArrayChunk, ScanEnd
from libertem_live_asi_tpx3.sim.source import SynthAcquisition, SynthConfig, SynthSource
from libertem_live_asi_tpx3.wire import Phase, StreamState, iter_stream

SRC = SynthSource(SynthAcquisition.generate(SynthConfig(
    nav_shape=(6, 8), sig_shape=(64, 64), events_per_frame=15, frames_per_chunk=5)), 1, b"", 1)
CHUNKS = SRC.synth.chunks  # 10 chunks: 9 of 5 rows, 1 of 3


def _walk(data: bytes) -> list:
    return [type(h) for _, h, _ in iter_stream(data)]


def test_clean_acquisition_and_records():
    data = b"".join(bytes(s) for s in SRC.segments())
    recs = list(iter_stream(data))
    assert [type(h) for _, h, _ in recs].count(ArrayChunk) == len(CHUNKS)
    chunk_recs = [bytes(r) for _, h, r in recs if isinstance(h, ArrayChunk)]
    assert chunk_recs == CHUNKS


@pytest.mark.parametrize("body,match", [
    (b"".join(CHUNKS[:-1]), "ScanEnd after 45 rows, but nav_shape .* needs 48"),
    (b"".join(CHUNKS) + CHUNKS[0], "chunk rows exceed the scan: 48 rows"),
])
def test_row_count_is_checked(body, match):
    data = SRC.acq_start + SRC.scan_start + body + SRC.scan_end + SRC.acq_end
    with pytest.raises(Tpx3ProtocolError, match=match) as info:
        _walk(data)
    assert info.value.offset is not None and "reconnect" in str(info.value)


def test_order_is_checked():
    with pytest.raises(Tpx3ProtocolError, match="unexpected ArrayChunk header after "
                                                "AcquisitionStart"):
        _walk(SRC.acq_start + CHUNKS[0])
    with pytest.raises(Tpx3ProtocolError, match="unexpected ScanEnd header while idle"):
        _walk(ScanEnd().pack())


def test_cut_recordings_are_refused():
    data = b"".join(bytes(s) for s in SRC.segments())
    with pytest.raises(Tpx3ProtocolError, match="recording ends inside the message"):
        _walk(data[:len(SRC.acq_start) + len(SRC.scan_start) + 40])
    with pytest.raises(Tpx3ProtocolError, match="recording ends inside a header"):
        _walk(data[:10])


def test_cancel_inside_a_scan_and_reset():
    st = StreamState()
    for _, h, _ in iter_stream(SRC.acq_start + SRC.scan_start + CHUNKS[0]
                               + AcquisitionEnd().pack(), check_frame_count=False):
        st.feed(h)
    assert st.cancelled and st.phase is Phase.IDLE
    st.reset()
    assert st.acquisition is None and st.chunk_index == 0
