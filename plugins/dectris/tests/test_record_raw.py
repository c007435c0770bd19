"""Recording DECTRIS frames as they came (``LiveContext.record``), against the
simulator over real sockets: bslz4 payloads stored as chunks of the HDF5
bitshuffle filter, lz4 as chunks of the LZ4 filter, raw pixels as they are;
read back with h5py + hdf5plugin and as a LiberTEM dataset, pixel for pixel
the simulator's ground truth.  A fault leaves a clearly marked incomplete
file, never the requested name."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import h5py
import hdf5plugin  # noqa: F401  (registers the filters for reading)
import numpy as np
import pytest

from libertem_live.driver import DetectorConnectionError, StreamTruncatedError
from libertem_live_dectris.client import SimplonClient
from libertem_live_dectris.sim import DectrisSim

TIMEOUT = 10.0
SHAPE = (40, 56)  # not square: a (width, height) mix-up shows
FILTERS = {"bslz4": ("bitshuffle+lz4", 32008), "lz4": ("lz4", 32004),
           "none": ("uncompressed", None)}


@pytest.fixture
def make_sim(start_sim: Callable[..., DectrisSim]) -> Callable[..., DectrisSim]:
    return lambda **kw: start_sim(**{"pool_size": 16, "shape": SHAPE, **kw})


def connect(ctx: Any, sim: DectrisSim, **kw: Any) -> Any:
    return ctx.make_connection("dectris").open(
        api_host="127.0.0.1", api_port=sim.port, data_host="127.0.0.1",
        data_port=sim.zmqport, timeout=TIMEOUT, **kw)


def truth(sim: DectrisSim, nav: tuple[int, ...], channel: int = 0) -> np.ndarray:
    n = math.prod(nav)
    return np.stack([sim.frame(k, channel) for k in range(n)]).reshape(nav + sim.frame(0).shape)


def stored(path: Path) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    with h5py.File(path, "r") as f:
        ds = f["data"]
        return ds[()], dict(ds._filters), dict(f.attrs)


@pytest.mark.parametrize("compression", ["bslz4", "lz4", "none"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32"])
def test_stored_as_sent_and_read_back_exactly(ctx: Any, make_sim: Any, tmp_path: Path,
                                              dtype: str, compression: str) -> None:
    nav = (6, 8)
    sim = make_sim(frames=48, dtype=dtype, compression=compression)
    out = tmp_path / "scan.h5"
    with connect(ctx, sim) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=nav,
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        summary = ctx.record(aq, out)
        assert conn.get_api_client().detectorStatus("state")["value"] == "idle"
    name, filter_id = FILTERS[compression]
    assert (summary.frames, summary.decoded, summary.stored_as) == (48, 0, name)
    data, filters, attrs = stored(out)
    assert data.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(data, truth(sim, nav))
    assert list(filters) == ([] if filter_id is None else [str(filter_id)])
    assert attrs["complete"] and attrs["frames_written"] == 48
    info = json.loads(attrs["libertem_live"])
    assert info["detector"] == "dectris" and info["series"] == aq.run_info["series"]
    assert info["nav_shape"] == list(nav) and info["sig_shape"] == list(SHAPE)
    assert info["dtype"] == dtype and info["stored_as"] == name
    assert "libertem-live-dectris" in info["versions"]
    assert info["ledger"]["received"] == 48 and info["ledger"]["missing"] == 0
    if compression != "none":  # the chunks are the detector's compressed bytes
        assert summary.nbytes < data.nbytes


def test_bslz4_chunks_are_the_payloads_byte_for_byte(ctx: Any, make_sim: Any,
                                                     tmp_path: Path) -> None:
    from libertem_live_dectris.sim.encode import encode
    sim = make_sim(frames=12, dtype="uint16", compression="bslz4")
    with connect(ctx, sim) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(12,),
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        ctx.record(aq, tmp_path / "scan.h5")
    with h5py.File(tmp_path / "scan.h5", "r") as f:
        dsid = f["data"].id
        for k in range(12):
            mask, chunk = dsid.read_direct_chunk((k, 0, 0))
            assert mask == 0 and chunk == encode(sim.frame(k), "bslz4")


@pytest.mark.parametrize("compression", ["bslz4", "lz4", "none"])
def test_stream_v2_passive(ctx: Any, make_sim: Any, tmp_path: Path, compression: str) -> None:
    nav = (6, 8)
    sim = make_sim(frames=48, dtype="uint16", compression=compression, stream="v2")
    with ctx.make_connection("dectris").open(
            api_host="127.0.0.1", api_port=sim.port, data_host="127.0.0.1", stream="v2",
            data_port=sim.v2_port, timeout=TIMEOUT) as conn:
        SimplonClient("127.0.0.1", sim.port).sendDetectorCommand("arm")
        pending = conn.wait_for_acquisition(TIMEOUT)
        assert pending is not None
        aq = ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=nav)
        summary = ctx.record(aq, tmp_path / "v2.h5")
    assert (summary.stored_as, summary.decoded) == (FILTERS[compression][0], 0)
    data, _, attrs = stored(tmp_path / "v2.h5")
    np.testing.assert_array_equal(data, truth(sim, nav))
    assert attrs["complete"]


def test_the_recording_is_a_libertem_dataset(ctx: Any, make_sim: Any, tmp_path: Path) -> None:
    """The pipelined executor's workers read the bitshuffle chunks (LiberTEM
    loads hdf5plugin in them); SumUDF equals the simulator's sum."""
    from libertem.udf.sum import SumUDF
    nav = (16, 16)
    sim = make_sim(frames=256, shape=(96, 96), dtype="uint16", compression="bslz4")
    with connect(ctx, sim) as conn:
        conn.get_api_client().sendDetectorCommand("arm")
        pending = conn.wait_for_acquisition(TIMEOUT)
        assert pending is not None
        aq = ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=nav)
        ctx.record(aq, tmp_path / "scan.h5")
    ds = ctx.load("hdf5", path=str(tmp_path / "scan.h5"), ds_path="data")
    assert tuple(ds.shape) == nav + (96, 96)
    got = ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data.astype(np.float64)
    assert np.array_equal(got, sim.expected_sum(256))


@pytest.mark.parametrize("fault, error", [
    ("ends_short@20", StreamTruncatedError),
    ("disconnect_mid_stream@20", DetectorConnectionError),
])
def test_a_fault_leaves_a_marked_incomplete_file(ctx: Any, make_sim: Any, tmp_path: Path,
                                                 fault: str, error: type) -> None:
    nav = (6, 8)
    sim = make_sim(frames=48, dtype="uint16", compression="bslz4", fault=fault)
    out = tmp_path / "scan.h5"
    with connect(ctx, sim) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=nav,
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        with pytest.raises(error):
            ctx.record(aq, out)
        assert not out.exists()
        assert sorted(os.listdir(tmp_path)) == ["scan.incomplete.h5"]
        data, _, attrs = stored(tmp_path / "scan.incomplete.h5")
        k = int(attrs["frames_written"])
        assert not attrs["complete"] and 0 < k < 48 and attrs["frames_expected"] == 48
        assert error.__name__ in attrs["error"] and f"frames {k}..47" in attrs["missing"]
        flat, expected = data.reshape(48, *SHAPE), truth(sim, nav).reshape(48, *SHAPE)
        np.testing.assert_array_equal(flat[:k], expected[:k])
        assert not flat[k:].any()
        assert json.loads(attrs["libertem_live"])["complete"] is False
        # the same connection records the next acquisition completely
        summary = ctx.record(aq, out)
    assert summary.frames == 48
    np.testing.assert_array_equal(stored(out)[0], truth(sim, nav))


def test_refuses_to_overwrite_and_leaves_the_detector_alone(ctx: Any, make_sim: Any,
                                                            tmp_path: Path) -> None:
    sim = make_sim(frames=16, dtype="uint16", compression="bslz4")
    out = tmp_path / "scan.h5"
    out.write_bytes(b"an earlier scan")
    with connect(ctx, sim) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 4),
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        with pytest.raises(FileExistsError, match="overwrite"):
            ctx.record(aq, out)
        assert conn.get_api_client().detectorStatus("state")["value"] == "idle"
    assert out.read_bytes() == b"an earlier scan"
    assert os.listdir(tmp_path) == ["scan.h5"]


def test_written_without_hdf5plugin(make_sim: Any, tmp_path: Path) -> None:
    """The recorder needs only h5py (the chunks are compressed already);
    the filter is needed to read."""
    sim = make_sim(frames=16, dtype="uint16", compression="bslz4")
    script = f"""
import sys
sys.modules["hdf5plugin"] = None  # any import of it fails
import h5py
from libertem_live.api import LiveContext
ctx = LiveContext(executor="inline")
with ctx.make_connection("dectris").open(api_port={sim.port}, data_port={sim.zmqport}) as conn:
    aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 4),
                              controller=conn.get_active_controller(trigger_mode="exte"))
    ctx.record(aq, {str(tmp_path / 'plain.h5')!r})
ctx.close()
assert not h5py.h5z.filter_avail(32008), "the bitshuffle filter is registered"
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    data, filters, _ = stored(tmp_path / "plain.h5")
    assert list(filters) == ["32008"]
    np.testing.assert_array_equal(data, truth(sim, (4, 4)))
