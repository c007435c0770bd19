"""Stream V2 (CBOR): ground truth through the public API, channels, metadata,
an independent encoder, and the clear errors for malformed messages.

Sums are compared exactly (small integer counts, float32 tile sums are exact).
"""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import struct  # noqa: E402
import subprocess  # noqa: E402
from typing import Any, Callable, Iterator  # noqa: E402

import cbor2  # noqa: E402
import lz4.block  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import zmq  # noqa: E402
from libertem.udf.sum import SumUDF  # noqa: E402

from libertem_live.driver import DecodeError, FrameFormatError  # noqa: E402
from libertem_live_testing.processes import console_script  # noqa: E402
from libertem_live_dectris.client import SimplonClient  # noqa: E402
from libertem_live_dectris.sim import DectrisSim  # noqa: E402
from libertem_live_dectris.wire_v2 import (  # noqa: E402
    V2FormatError, image_payload, loads, parse_start,
)

TIMEOUT = 10.0


@pytest.fixture
def make_sim(start_sim: Callable[..., DectrisSim]) -> Callable[..., DectrisSim]:
    return lambda **kw: start_sim(**{"pool_size": 8, "stream": "v2", **kw})


def connect(ctx: Any, sim: DectrisSim, data_port: int | None = None, **kw: Any) -> Any:
    return ctx.make_connection("dectris").open(
        api_host="127.0.0.1", api_port=sim.port, data_host="127.0.0.1", stream="v2",
        data_port=sim.v2_port if data_port is None else data_port, timeout=TIMEOUT, **kw)


def run_passive(ctx: Any, conn: Any, sim: DectrisSim | None, nav: tuple[int, ...]) -> tuple[Any, np.ndarray]:
    if sim is not None:
        SimplonClient("127.0.0.1", sim.port).sendDetectorCommand("arm")
    pending = conn.wait_for_acquisition(TIMEOUT)
    assert pending is not None
    aq = ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=nav)
    res = ctx.run_udf(dataset=aq, udf=SumUDF())
    return pending, aq, res["intensity"].data.astype(np.float64)


@pytest.mark.parametrize("compression", ["bslz4", "lz4", "none"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
def test_v2_ground_truth(make_sim: Any, ctx: Any, dtype: str, compression: str,
                        receive_loop: str) -> None:
    sim = make_sim(frames=48, shape=(24, 20), dtype=dtype, compression=compression)
    with connect(ctx, sim) as conn:
        _, aq, got = run_passive(ctx, conn, sim, (6, 8))
        assert np.array_equal(got, sim.expected_sum(48))
        s = aq.ledger.snapshot()
        assert (s.received, s.decoded, s.missing) == (48, 48, 0)


def test_v2_active_lz4_ground_truth(make_sim: Any, ctx: Any) -> None:
    sim = make_sim(frames=40, shape=(16, 16), dtype="uint32", compression="lz4")
    with connect(ctx, sim) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(5, 8),
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        got = ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data.astype(np.float64)
        assert np.array_equal(got, sim.expected_sum(40))
        assert aq.run_info["stream"] == "v2"


def test_v2_two_channels_and_metadata(make_sim: Any, ctx: Any) -> None:
    mask = np.zeros((16, 16), np.uint32)
    mask[3, 5] = 1
    # 30 images of a pool of 8: the channels' sums differ (channel j shows pool frame k + j)
    sim = make_sim(frames=30, shape=(16, 16), channels=("threshold_1", "threshold_2"),
                   user_data={"sample": "gold"}, pixel_mask=mask)
    for j, channel in enumerate(("threshold_1", "threshold_2")):
        with connect(ctx, sim, channel=channel) as conn:
            pending, aq, got = run_passive(ctx, conn, sim, (5, 6))
            expected = sim.expected_sum(30, channel=j)
            excluded = pending.format.metadata["excluded_pixels"]
            assert np.array_equal(excluded, mask != 0)
            assert np.array_equal(got[~excluded], expected[~excluded])
            assert not np.array_equal(sim.expected_sum(30, channel=1 - j), expected)
            for info in (pending.format.metadata, aq.run_info):
                assert info["channel"] == channel
                assert info["channels"] == ["threshold_1", "threshold_2"]
                assert info["threshold_energy"] == {"threshold_1": 4020.0, "threshold_2": 5020.0}
                assert info["user_data"] == {"sample": "gold"}
                assert info["flatfield_present"] is False


def test_v2_active_applies_the_start_pixel_mask(make_sim: Any, ctx: Any) -> None:
    """Active mode learns the mask from the start message after the arm, and
    excludes it exactly as passive mode does (same patched result)."""
    mask = np.zeros((16, 16), np.uint32)
    mask[3, 5] = mask[10, 0] = 1
    sim = make_sim(frames=30, shape=(16, 16), user_data={"sample": "gold"}, pixel_mask=mask)
    expected = sim.expected_sum(30)
    with connect(ctx, sim) as conn:
        _, passive_aq, passive = run_passive(ctx, conn, sim, (5, 6))
        aq = ctx.make_acquisition(conn=conn, nav_shape=(5, 6),
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        assert "excluded_pixels" not in aq.frame_format.metadata  # not known before the arm
        got = ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data.astype(np.float64)
    off = mask == 0
    assert np.array_equal(aq.frame_format.metadata["excluded_pixels"], ~off)
    assert aq.get_correction_data().get_excluded_pixels() is not None
    assert np.array_equal(got[off], expected[off])
    # the DCU's 2**16 - 1 at the masked pixels is patched, the same way as in passive mode
    assert not np.array_equal(got[~off], expected[~off])
    assert np.array_equal(got, passive)
    assert aq.frame_format.metadata["user_data"] == {"sample": "gold"}
    assert aq.frame_format.metadata["series"] == aq.run_info["series"] != passive_aq.run_info["series"]


def test_v2_active_without_mask_excludes_nothing(make_sim: Any, ctx: Any) -> None:
    sim = make_sim(frames=12, shape=(8, 8))
    with connect(ctx, sim) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(3, 4),
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        got = ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data.astype(np.float64)
    assert np.array_equal(got, sim.expected_sum(12))
    assert "excluded_pixels" not in aq.frame_format.metadata


def test_each_stream_on_its_own_port(make_sim: Any, ctx: Any) -> None:
    """Like a DCU: V1 on ``zmqport``, V2 on ``v2_port``; the stream format set
    over REST at the arm picks the one a series goes out on, the other stays silent."""
    sim = make_sim(frames=12, shape=(8, 8), stream="legacy")
    assert sim.v2_port not in (0, sim.zmqport)
    api = SimplonClient("127.0.0.1", sim.port)
    common = {"api_host": "127.0.0.1", "api_port": sim.port, "timeout": TIMEOUT}
    with ctx.make_connection("dectris").open(data_port=sim.zmqport, **common) as v1, \
            ctx.make_connection("dectris").open(data_port=sim.v2_port, stream="v2", **common) as v2:
        for conn, other, fmt in ((v2, v1, "cbor"), (v1, v2, "legacy"), (v2, v1, "cbor")):
            api.setStreamConfig("format", fmt)  # a V1 connection leaves the format alone
            api.sendDetectorCommand("arm")
            pending = conn.wait_for_acquisition(TIMEOUT)
            assert pending is not None
            aq = ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=(3, 4))
            got = ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data.astype(np.float64)
            assert np.array_equal(got, sim.expected_sum(12))
            assert aq.run_info.get("stream", "legacy") == conn.stream
            assert other.wait_for_acquisition(0.3) is None


def test_data_port_defaults_by_stream(ctx: Any) -> None:
    """Nothing listens: opening only connects the PULL socket, which waits."""
    def port(**kw: Any) -> int:
        with ctx.make_connection("dectris").open(**kw) as conn:
            assert f"tcp://127.0.0.1:{conn.data_port} " in repr(conn)
            return conn.data_port
    assert port() == 9999
    assert port(stream="legacy") == 9999
    assert port(stream="v2") == 31001
    assert port(stream="v2", data_port=41001) == 41001
    assert port(data_port=41002) == 41002


def test_detectors_command_describes_the_data_port() -> None:
    out = subprocess.run([console_script("libertem-live"), "detectors", "dectris"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.split()[:1] == ["data_port"])
    assert line.split()[1] == "None" and "9999 for stream V1, 31001 for V2" in line
    assert "stream_port" not in out.stdout


def test_v2_missing_channel_fails_clearly(make_sim: Any, ctx: Any) -> None:
    sim = make_sim(frames=8, shape=(16, 16))
    with connect(ctx, sim, channel="difference") as conn:
        SimplonClient("127.0.0.1", sim.port).sendDetectorCommand("arm")
        with pytest.raises(FrameFormatError, match="threshold_1.*channel="):
            conn.wait_for_acquisition(TIMEOUT)


def test_rest_switches_the_format(make_sim: Any) -> None:
    sim = make_sim(frames=4, shape=(8, 8), stream="legacy")
    api = SimplonClient("127.0.0.1", sim.port)
    assert api.streamConfig("format")["value"] == "legacy"
    api.setStreamConfig("format", "cbor")
    assert sim.stream_config["format"] == "cbor"


# ------------------------------------------------------------ an independent encoder
# written from DECTRIS' published description (RFC 8746 typed arrays in a
# tag 40 array, tag 56500 compression), not with the simulator's helpers

def _hdf5_header(nbytes: int, block_bytes: int) -> bytes:
    return struct.pack(">QI", nbytes, block_bytes)


def _indep_payload(frame: np.ndarray, compression: str) -> Any:
    raw = frame.astype(frame.dtype.newbyteorder("<")).tobytes()
    if compression == "none":
        return raw
    if compression == "bslz4":
        bitshuffle = pytest.importorskip("bitshuffle")  # its own encoder, not ours
        block = 512
        body = bitshuffle.compress_lz4(frame.reshape(-1), block).tobytes()
        return cbor2.CBORTag(56500, ["bslz4", frame.dtype.itemsize,
                                     _hdf5_header(len(raw), block * frame.dtype.itemsize) + body])
    block = 300  # several blocks, the last one short
    out = [_hdf5_header(len(raw), block)]
    for i in range(0, len(raw), block):
        c = lz4.block.compress(raw[i:i + block], store_size=False)
        out += [struct.pack(">I", len(c)), c]
    return cbor2.CBORTag(56500, ["lz4", 0, b"".join(out)])


_TYPED = {"uint8": 64, "uint16": 69, "uint32": 70}


def _indep_series(frames: np.ndarray, compression: str, series: int = 7) -> list[bytes]:
    n, h, w = frames.shape
    dt = frames.dtype.name
    msgs = [cbor2.dumps(cbor2.CBORTag(55799, {
        "type": "start", "series_id": series, "number_of_images": n, "image_size_x": w,
        "image_size_y": h, "image_dtype": dt, "channels": ["threshold_1"],
        "threshold_energy": {"threshold_1": 6000.0}, "user_data": None}))]
    for k in range(n):
        arr = cbor2.CBORTag(40, [[h, w], cbor2.CBORTag(_TYPED[dt], _indep_payload(frames[k], compression))])
        msgs.append(cbor2.dumps(cbor2.CBORTag(55799, {
            "type": "image", "series_id": series, "image_id": k, "data": {"threshold_1": arr},
            "real_time": [1, 1000], "start_time": [k, 1000], "stop_time": [k + 1, 1000]})))
    msgs.append(cbor2.dumps(cbor2.CBORTag(55799, {"type": "end", "series_id": series})))
    return msgs


@pytest.fixture
def push(no_leaks: None) -> Iterator[tuple[zmq.Socket, int]]:
    zctx = zmq.Context()
    sock = zctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    yield sock, port
    sock.close(linger=0)
    zctx.term()


@pytest.mark.parametrize("compression", ["bslz4", "lz4", "none"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
def test_independent_encoder_decodes_to_ground_truth(
        make_sim: Any, ctx: Any, push: Any, dtype: str, compression: str,
        receive_loop: str) -> None:
    sock, port = push
    rest = make_sim(frames=1, shape=(8, 8))  # only its REST side is used
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 200, size=(12, 20, 36)).astype(dtype)
    frames[0, 0, 0] = np.iinfo(dtype).max
    with connect(ctx, rest, data_port=port) as conn:
        for m in _indep_series(frames, compression):
            sock.send(m)
        pending, aq, got = run_passive(ctx, conn, None, (3, 4))
        assert np.array_equal(got, frames.astype(np.float64).sum(axis=0))
        assert pending.format.metadata["threshold_energy"] == {"threshold_1": 6000.0}


def test_malformed_cbor_mid_series_names_the_image(make_sim: Any, ctx: Any, push: Any,
                                                   receive_loop: str) -> None:
    sock, port = push
    rest = make_sim(frames=1, shape=(8, 8))
    frames = np.ones((6, 8, 8), np.uint16)
    msgs = _indep_series(frames, "none")
    msgs[4] = msgs[4][:len(msgs[4]) // 2]  # image 3 cut in half: not CBOR any more
    with connect(ctx, rest, data_port=port) as conn:
        for m in msgs:
            sock.send(m)
        with pytest.raises(DecodeError, match="expected image 3"):
            run_passive(ctx, conn, None, (6,))


# ------------------------------------------------------------ malformed messages, each with its clear error

def _image(data: Any, image_id: int = 7) -> Any:
    return loads(cbor2.dumps(cbor2.CBORTag(55799, {
        "type": "image", "series_id": 1, "image_id": image_id, "data": data})))


U16 = np.dtype("uint16")


def test_unknown_tag_names_the_image() -> None:
    msg = _image({"threshold_1": cbor2.CBORTag(40, [[2, 2], cbor2.CBORTag(9999, b"\0" * 8)])})
    with pytest.raises(V2FormatError, match="image 7 .*unknown CBOR tag 9999"):
        image_payload(msg, "threshold_1", (2, 2), U16, "here")


def test_unknown_compression_names_the_image() -> None:
    c = cbor2.CBORTag(56500, ["zstd", 2, b"xx"])
    msg = _image({"threshold_1": cbor2.CBORTag(40, [[2, 2], cbor2.CBORTag(69, c)])})
    with pytest.raises(V2FormatError, match="image 7 .*unknown compression 'zstd'"):
        image_payload(msg, "threshold_1", (2, 2), U16, "here")


def test_missing_channel_names_the_image() -> None:
    msg = _image({"threshold_2": cbor2.CBORTag(40, [[2, 2], cbor2.CBORTag(69, b"\0" * 8)])})
    with pytest.raises(V2FormatError, match="image 7 .*no channel 'threshold_1'.*threshold_2"):
        image_payload(msg, "threshold_1", (2, 2), U16, "here")


def test_wrong_shape_names_the_image() -> None:
    msg = _image({"threshold_1": cbor2.CBORTag(40, [[2, 3], cbor2.CBORTag(69, b"\0" * 12)])})
    with pytest.raises(V2FormatError, match=r"image 7 .*shape \[2, 3\].*announced \[2, 2\]"):
        image_payload(msg, "threshold_1", (2, 2), U16, "here")


def test_wrong_pixel_type_and_size_name_the_image() -> None:
    msg = _image({"threshold_1": cbor2.CBORTag(40, [[2, 2], cbor2.CBORTag(70, b"\0" * 16)])})
    with pytest.raises(V2FormatError, match="image 7 .*pixel type"):
        image_payload(msg, "threshold_1", (2, 2), U16, "here")
    msg = _image({"threshold_1": cbor2.CBORTag(40, [[2, 2], cbor2.CBORTag(69, b"\0" * 6)])})
    with pytest.raises(V2FormatError, match="image 7 .*6 bytes"):
        image_payload(msg, "threshold_1", (2, 2), U16, "here")


def test_malformed_cbor_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not a CBOR message"):
        loads(b"\xbf\x61")


def test_start_without_required_field() -> None:
    msg = loads(cbor2.dumps({"type": "start", "series_id": 1, "image_size_x": 4}))
    with pytest.raises(ValueError, match="lacks 'number_of_images'"):
        parse_start(msg)


def test_recorded_stream_replays_to_ground_truth(make_sim: Any, ctx: Any, push: Any) -> None:
    """Record the simulator's V2 messages with a bare PULL socket, replay them
    byte for byte into a connection: the same ground truth."""
    sim = make_sim(frames=20, shape=(16, 12), dtype="uint16", compression="lz4")
    zctx = zmq.Context()
    pull = zctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.connect(f"tcp://127.0.0.1:{sim.v2_port}")
    try:
        SimplonClient("127.0.0.1", sim.port).sendDetectorCommand("arm")
        recorded = []
        while pull.poll(5000):
            recorded.append(pull.recv())
            if loads(recorded[-1])["type"] == "end":
                break
    finally:
        pull.close(linger=0)
        zctx.term()
    assert len(recorded) == 22
    sock, port = push
    with connect(ctx, sim, data_port=port) as conn:
        for m in recorded:
            sock.send(m)
        _, _, got = run_passive(ctx, conn, None, (4, 5))
        assert np.array_equal(got, sim.expected_sum(20))


@pytest.mark.parametrize("compression", ["bslz4", "lz4"])
def test_v2_dump_replays_to_ground_truth(start_sim: Any, ctx: Any, tmp_path: Any,
                                         compression: str) -> None:
    """``write_dump(stream="v2")`` records a series as V2 messages (the same
    pixels as a V1 dump of the same arguments); ``DectrisSim(path=...)``
    replays it on the V2 port, in passive and active mode, byte for byte."""
    from libertem_live_dectris.sim import write_dump

    path = tmp_path / "series.dump"
    kw: dict[str, Any] = {"frames": 40, "shape": (16, 12), "compression": compression,
                          "pool_size": 8}
    total = write_dump(path, stream="v2", series=77, **kw)
    assert np.array_equal(total, write_dump(tmp_path / "v1.dump", write_sum=False, **kw))
    sim = start_sim(path=path)
    with connect(ctx, sim) as conn:
        pending, _, got = run_passive(ctx, conn, sim, (5, 8))
        assert np.array_equal(got, total)
        assert pending.series == 77
        aq = ctx.make_acquisition(conn=conn, nav_shape=(5, 8),
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
        assert np.array_equal(res["intensity"].data.astype(np.float64), total)
    os.remove(f"{path}.sum.npy")
    assert np.array_equal(start_sim(path=path).expected_sum(), total)  # decoded from the messages


def test_v2_dump_refuses_faults_that_alter_images(tmp_path: Any) -> None:
    """A V2 recording goes out as recorded: a fault that would re-encode an
    image is refused when it is set, not by a series that silently stops."""
    from libertem_live_dectris.sim import write_dump

    path = tmp_path / "series.dump"
    write_dump(path, frames=4, shape=(8, 8), stream="v2", write_sum=False)
    with pytest.raises(ValueError, match="truncated_payload.*recording.*frame_gap"):
        DectrisSim(path=path, fault="truncated_payload")
    sim = DectrisSim(path=path, fault="frame_gap@2")
    with pytest.raises(ValueError, match="wrong_format"):
        sim.inject("wrong_format")
    sim.source.close()


def test_v2_dump_refuses_a_stream_v1_arm(start_sim: Any, tmp_path: Any) -> None:
    from libertem_live_dectris.errors import DetectorAPIError
    from libertem_live_dectris.sim import write_dump

    path = tmp_path / "series.dump"
    write_dump(path, frames=4, shape=(8, 8), stream="v2", write_sum=False)
    sim = start_sim(path=path)
    client = SimplonClient("127.0.0.1", sim.port)
    assert client.streamConfig("format")["value"] == "cbor"
    client.setStreamConfig("format", "legacy")
    with pytest.raises(DetectorAPIError, match="stream format 'cbor'"):
        client.sendDetectorCommand("arm")
