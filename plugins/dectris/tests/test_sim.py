"""The simulator's ZeroMQ stream: series layout, trigger modes, replay, faults, CLI."""
from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from libertem_live_dectris import wire as M
from libertem_live_dectris.errors import PayloadError
from libertem_live_dectris.client import SimplonClient
from libertem_live_dectris.sim import DectrisSim, write_dump

from conftest import Receiver

SHAPE = (32, 40)


def make_sim(**kw) -> DectrisSim:
    kw.setdefault("shape", SHAPE)
    kw.setdefault("frames", 50)
    kw.setdefault("pool_size", 16)
    return DectrisSim(port=0, zmqport=0, **kw).start()


@pytest.mark.parametrize("compression,dtype", [("bslz4", "uint16"), ("lz4", "uint8"), ("none", "uint32"), ("bslz4", "uint32")])
def test_exte_series_and_ground_truth(receiver_factory, compression, dtype):
    with make_sim(compression=compression, dtype=dtype) as sim:
        rx = receiver_factory(sim.zmqport)
        series = SimplonClient("127.0.0.1", sim.port).sendDetectorCommand("arm")["sequence id"]
        r = rx.series()
        assert M.parse_dheader(r.header[0]) == M.SeriesHeader(series, "basic")
        cfg = M.parse_config(r.header[1])
        assert (cfg.n_images, cfg.shape, cfg.dtype, cfg.compression) == (50, SHAPE, np.dtype(dtype), compression)
        assert r.frames == [(series, k) for k in range(50)]
        assert M.parse_dseries_end(r.end) == series
        d = M.parse_dimage_d(r.images[0][1])
        assert d.shape == SHAPE and d.dtype == dtype and d.size == len(r.images[0][2])
        start, stop, real = M.parse_dconfig(r.images[0][3])
        assert stop - start == real > 0
        frames = r.decoded()
        np.testing.assert_array_equal(frames[7], sim.frame(7))
        np.testing.assert_array_equal(frames.sum(axis=0, dtype=np.float64), sim.expected_sum())
        assert sim.expected_sum().sum() > 0


def test_series_ids_increment_and_header_sent_separately(receiver_factory):
    with make_sim(frames=3) as sim:
        rx = receiver_factory(sim.zmqport)
        for expected in (1, 2):
            assert sim.arm() == expected
            first = rx.recv()
            assert len(first) == 1 and M.peek_htype(first[0]) == M.DHEADER
            second = rx.recv()
            assert len(second) == 1 and M.parse_config(second[0]).n_images == 3
            images = [rx.recv() for _ in range(3)]
            assert [M.parse_dimage(m[0]) for m in images] == [(expected, k) for k in range(3)]
            assert M.parse_dseries_end(rx.recv()[0]) == expected
            assert sim.wait_idle()


@pytest.mark.parametrize("detail", ["none", "all"])
def test_header_detail(receiver_factory, detail):
    with make_sim(frames=2, header_detail=detail, header_multipart=True) as sim:
        rx = receiver_factory(sim.zmqport)
        sim.arm()
        hdr = rx.recv()
        assert len(hdr) == M.header_part_count(detail)  # one multipart message
        assert M.parse_dheader(hdr[0]).header_detail == detail
        for _ in range(2):
            assert M.peek_htype(rx.recv()[0]) == M.DIMAGE
        assert M.peek_htype(rx.recv()[0]) == M.DSERIES_END


def test_inte_one_image_per_trigger(receiver_factory):
    with make_sim(frames=3) as sim:
        c = SimplonClient("127.0.0.1", sim.port)
        c.setDetectorConfig("trigger_mode", "inte")
        c.setDetectorConfig("ntrigger", 3)
        rx = receiver_factory(sim.zmqport)
        c.sendDetectorCommand("arm")
        assert len(rx.recv()) == 1 and len(rx.recv()) == 1
        assert rx.recv(timeout=0.2) is None  # nothing without a trigger
        for k in range(3):
            c.sendDetectorCommand("trigger", 0.001)
            msg = rx.recv()
            assert M.parse_dimage(msg[0])[1] == k
            assert rx.recv(timeout=0.05) is None or k == 2
        assert sim.wait_idle()


def test_ints_nimages_per_trigger(receiver_factory):
    with make_sim() as sim:
        c = SimplonClient("127.0.0.1", sim.port)
        c.setDetectorConfig("trigger_mode", "ints")
        c.setDetectorConfig("nimages", 4)
        c.setDetectorConfig("ntrigger", 2)
        assert sim.n_images() == 8
        rx = receiver_factory(sim.zmqport)
        c.sendDetectorCommand("arm")
        rx.recv(), rx.recv()
        c.sendDetectorCommand("trigger")
        got = [M.parse_dimage(rx.recv()[0])[1] for _ in range(4)]
        assert got == [0, 1, 2, 3]
        assert rx.recv(timeout=0.2) is None
        c.sendDetectorCommand("trigger")
        r = rx.series(header_seen=True)
        assert [f for _, f in r.frames] == [4, 5, 6, 7] and r.end is not None


def test_disarm_mid_series_sends_end(receiver_factory):
    with make_sim() as sim:
        c = SimplonClient("127.0.0.1", sim.port)
        c.setDetectorConfig("trigger_mode", "ints")
        c.setDetectorConfig("nimages", 4)
        rx = receiver_factory(sim.zmqport)
        c.sendDetectorCommand("arm")
        c.sendDetectorCommand("trigger")
        c.sendDetectorCommand("disarm")
        r = rx.series()
        assert len(r.images) <= 4 and M.parse_dseries_end(r.end) == 1
        assert sim.wait_idle()


def test_dwelltime_paces(receiver_factory):
    with make_sim(frames=20, dwelltime=5000) as sim:  # 5 ms per image
        rx = receiver_factory(sim.zmqport)
        t = time.monotonic()
        sim.arm()
        r = rx.series()
        assert len(r.images) == 20 and time.monotonic() - t >= 19 * 0.005


def test_replay_dump(tmp_path, receiver_factory):
    path = tmp_path / "rec.dump"
    total = write_dump(path, frames=24, shape=SHAPE, pool_size=8, series=34)
    with DectrisSim(path=str(path), port=0, zmqport=0) as sim:
        sim.wait_for_listen()
        c = SimplonClient("127.0.0.1", sim.port)
        assert c.detectorConfig("ntrigger")["value"] == 24
        assert c.detectorConfig("x_pixels_in_detector")["value"] == SHAPE[1]
        # the LT-live active sequence writes these; all match the recording
        for k, v in (("ntrigger", 1), ("nimages", 1), ("trigger_mode", "exte"), ("ntrigger", 24)):
            c.setDetectorConfig(k, v)
        with pytest.raises(Exception, match="replayed recording"):
            c.setDetectorConfig("trigger_mode", "ints")
        rx = receiver_factory(sim.zmqport)
        for _ in range(2):  # replays the same series id each arm
            assert c.sendDetectorCommand("arm") == {"sequence id": 34}
            r = rx.series()
            assert r.frames == [(34, k) for k in range(24)]
            np.testing.assert_array_equal(r.decoded().sum(axis=0, dtype=np.float64), total)
            assert sim.wait_idle()
        np.testing.assert_array_equal(sim.expected_sum(), total)


def test_send_timeout_without_receiver_and_prompt_stop():
    with make_sim(frames=5000, send_timeout=0.3, sndhwm=10) as sim:
        sim.arm()
        assert sim.wait_idle(10)  # abandoned after the timeout
        c = SimplonClient("127.0.0.1", sim.port)
        assert c.detectorStatus("state")["value"] == "idle"
    # stop() while a slow scan waits for its next image must be prompt too
    sim = make_sim(dwelltime=60e6)
    sim.arm()
    t = time.monotonic()
    sim.stop()
    assert time.monotonic() - t < 2


def test_disarm_during_a_slow_scan(receiver_factory):
    with make_sim(dwelltime=60e6) as sim:  # one image a minute
        rx = receiver_factory(sim.zmqport)
        sim.arm()
        r = rx.series(timeout=0.5)
        assert len(r.images) == 1 and r.end is None
        assert sim.detector_status()["state"] == "acquire"
        t = time.monotonic()
        sim.disarm()
        assert time.monotonic() - t < 2
        assert M.parse_dseries_end(rx.recv()[0]) == 1
        assert sim.wait_idle()


# ---------------------------------------------------------------- faults

def _run(receiver_factory, fault, n=10, **kw) -> tuple[DectrisSim, Receiver]:
    sim = make_sim(frames=n, fault=fault, **kw)
    rx = receiver_factory(sim.zmqport)
    sim.arm()
    return sim, rx


def _clean_next_series(sim: DectrisSim, rx: Receiver, n: int = 10) -> None:
    """A fault applies to one series: the next one is complete."""
    assert sim.wait_idle()
    series = sim.arm()
    r = rx.series()
    assert r.frames == [(series, k) for k in range(n)] and r.end is not None
    np.testing.assert_array_equal(r.decoded().sum(axis=0, dtype=np.float64), sim.expected_sum(n))


def test_fault_frame_gap(receiver_factory):
    sim, rx = _run(receiver_factory, "frame_gap@3")
    with sim:
        r = rx.series()
        assert [f for _, f in r.frames] == [0, 1, 2, 4, 5, 6, 7, 8, 9] and r.end is not None
        _clean_next_series(sim, rx)


def test_fault_duplicate_and_out_of_order(receiver_factory):
    sim, rx = _run(receiver_factory, "duplicate_frame@6")
    with sim:
        assert [f for _, f in rx.series().frames] == [0, 1, 2, 3, 4, 5, 6, 6, 7, 8, 9]
        sim.inject("out_of_order@4")
        assert sim.wait_idle()
        sim.arm()
        assert [f for _, f in rx.series().frames] == [0, 1, 2, 3, 5, 4, 6, 7, 8, 9]
        sim.inject("out_of_order")  # default: the middle
        assert sim.wait_idle()
        sim.arm()
        assert [f for _, f in rx.series().frames] == [0, 1, 2, 3, 4, 6, 5, 7, 8, 9]


def test_fault_corrupt_and_truncated_payload(receiver_factory):
    sim, rx = _run(receiver_factory, "corrupt_payload@2")
    with sim:
        r = rx.series()
        assert len(r.images) == 10
        blob = r.images[2][2]
        assert M.parse_dimage_d(r.images[2][1]).size == len(blob) and blob == b"\xff" * len(blob)
        with pytest.raises(PayloadError, match="frame 2 of the batch"):
            r.decoded()
        sim.inject("truncated_payload@2")
        assert sim.wait_idle()
        sim.arm()
        r = rx.series()
        assert M.parse_dimage_d(r.images[2][1]).size // 2 == len(r.images[2][2])
        with pytest.raises(PayloadError, match="frame 2 of the batch"):
            r.decoded()


def test_corrupt_payload_needs_compression():
    with pytest.raises(ValueError, match="uncompressed"):
        make_sim(compression="none", fault="corrupt_payload")


def test_fault_wrong_format(receiver_factory):
    sim, rx = _run(receiver_factory, "wrong_format@1")
    with sim:
        r = rx.series()
        descs = [M.parse_dimage_d(img[1]) for img in r.images]
        assert descs[0].shape == SHAPE and descs[1].shape == (SHAPE[0] + 8, SHAPE[1] + 8)
        assert all(d.shape == SHAPE for d in descs[2:])


def test_fault_ends_short(receiver_factory):
    sim, rx = _run(receiver_factory, "ends_short@4")
    with sim:
        r = rx.series()
        assert len(r.images) == 4 and r.end is not None
        _clean_next_series(sim, rx)


def test_fault_never_ends(receiver_factory):
    sim, rx = _run(receiver_factory, "never_ends")
    with sim:
        r = rx.series(timeout=0.3)
        assert len(r.images) == 10 and r.end is None
        assert sim.wait_idle()
        _clean_next_series(sim, rx)


def test_fault_disconnect_and_rebind(receiver_factory):
    sim, rx = _run(receiver_factory, "disconnect_mid_stream@5")
    with sim:
        r = rx.series(timeout=0.3)
        assert len(r.images) <= 5 and r.end is None
        assert sim.wait_idle()
        # binds the same port again at the arm; the PULL socket reconnects by itself
        _clean_next_series(sim, rx)


def test_fault_restart_between(receiver_factory):
    sim, rx = _run(receiver_factory, "restart_between")
    with sim:
        ports = sim.zmqport, sim.v2_port
        r = rx.series()
        assert len(r.images) == 10 and r.end is not None  # the first series is clean
        _clean_next_series(sim, rx)
        assert (sim.zmqport, sim.v2_port) == ports


def test_inject_method(receiver_factory):
    with make_sim(frames=5) as sim:
        sim.inject("frame_gap@0")
        rx = receiver_factory(sim.zmqport)
        sim.arm()
        assert [f for _, f in rx.series().frames] == [1, 2, 3, 4]
        with pytest.raises(ValueError, match="unknown fault"):
            sim.inject("explode")
        with pytest.raises(ValueError, match="cannot inject 'stall_mid_frame'"):
            sim.inject("stall_mid_frame")


def test_cli_help_shows_defaults():
    p = subprocess.run([sys.executable, "-m", "libertem_live_dectris.sim", "--help"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("usage: python -m libertem_live_dectris.sim")
    assert "(default: 8910)" in p.stdout and "--fault KIND[@FRAME]" in p.stdout
    assert "frame_gap" in p.stdout
    text = " ".join(p.stdout.split())
    assert "ZeroMQ port of stream V1 (0 = any free) (default: 9999)" in text
    assert "ZeroMQ port of stream V2 (0 = any free) (default: 31001)" in text


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_cli_stops_cleanly_on_a_signal_right_after_it_listens(sig):
    """Ctrl-C (or a service manager's SIGTERM) the moment the ports are printed
    stops the simulator with status 0 and its stop message, not a traceback."""
    import signal
    p = subprocess.Popen([sys.executable, "-m", "libertem_live_dectris.sim", "--port", "0",
                          "--zmqport", "0", "--v2-port", "0", "--frames", "4", "--shape", "8", "8"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "REST on http://" in p.stdout.readline()
        p.send_signal(getattr(signal, sig))
        out, err = p.communicate(timeout=30)
        assert p.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()


def test_cli_refuses_unsupported_fault():
    p = subprocess.run([sys.executable, "-m", "libertem_live_dectris.sim", "--port", "0",
                        "--zmqport", "0", "--frames", "4", "--shape", "8", "8",
                        "--fault", "stall_mid_frame"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "cannot inject 'stall_mid_frame'" in p.stderr


def test_cli_write_dump(tmp_path):
    out = tmp_path / "cli.dump"
    p = subprocess.run(
        [sys.executable, "-m", "libertem_live_dectris.sim", "--write-dump", str(out),
         "--frames", "16", "--shape", "16", "16"],
        capture_output=True, text=True, timeout=60, env={**__import__("os").environ},
    )
    assert p.returncode == 0, p.stderr
    from libertem_live_dectris.sim.dump import DumpFile

    with DumpFile(out) as d:
        assert len(d.series.images) == 16 and d.series.has_end
