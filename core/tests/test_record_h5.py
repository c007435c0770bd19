"""``LiveContext.record``: an acquisition written to HDF5 as the frames arrive,
through the public API with the memory driver (plain pixels: stored as
uncompressed chunks as they came, or decoded where a decoder has no chunk
form); complete files under the requested name only, failures kept and
marked, nothing overwritten."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np
import pytest

from libertem_live.api import LiveContext
from libertem_live.driver import FrameFormat, FrameGapError

DATA = np.arange(4 * 6 * 5 * 7, dtype=np.uint16).reshape(4, 6, 5, 7) * 3


@pytest.fixture(scope="module")
def ctx() -> Iterator[LiveContext]:
    c = LiveContext(executor="inline")
    try:
        yield c
    finally:
        c.close()


def _open(ctx: LiveContext, data: np.ndarray = DATA, **kw: Any) -> Any:
    kw.setdefault("frames_per_stack", 5)
    return ctx.make_connection("memory").open(data=data, **kw)


def _attrs(path: Path) -> dict[str, Any]:
    with h5py.File(path, "r") as f:
        return dict(f.attrs)


@pytest.mark.parametrize("data", [
    DATA,
    np.arange(3 * 5 * 4, dtype=np.int64).reshape(15, 4) - 7,  # 1-D nav, 1-D sig
    np.linspace(0, 1, 2 * 3 * 2 * 4 * 5, dtype=np.float32).reshape(2, 3, 2, 4, 5),  # 3-D nav
], ids=["u16-2d-nav", "i64-1d-sig", "f32-3d-nav"])
def test_plain_pixels_are_stored_as_they_came(ctx: LiveContext, tmp_path: Path,
                                              data: np.ndarray) -> None:
    sig_dims = 1 if data.ndim == 2 else 2
    out = tmp_path / "scan.h5"
    with _open(ctx, data, sig_dims=sig_dims) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=data.shape[:-sig_dims])
        summary = ctx.record(aq, out)
    assert (summary.path, summary.frames, summary.decoded) == (str(out), aq.nimages, 0)
    assert summary.stored_as == "uncompressed" and summary.nbytes == data.nbytes
    with h5py.File(out, "r") as f:
        ds = f["data"]
        assert ds.dtype == data.dtype and ds.chunks == (1,) * (data.ndim - sig_dims) + \
            data.shape[-sig_dims:]
        np.testing.assert_array_equal(ds[()], data)
        info = json.loads(f.attrs["libertem_live"])
        assert f.attrs["complete"] and f.attrs["frames_written"] == aq.nimages
    assert info["complete"] and info["detector"] == "memory"
    assert info["nav_shape"] == list(data.shape[:-sig_dims])
    assert info["ledger"]["received"] == aq.nimages and info["ledger"]["missing"] == 0
    assert {"h5py", "hdf5", "libertem-live-core"} <= set(info["versions"])
    assert os.listdir(tmp_path) == ["scan.h5"]
    s, n = aq.ledger.snapshot(), aq.nimages
    assert (s.received, s.dispatched, s.decoded, s.processed, s.missing) == (n, n, n, n, 0)


class _DecodeOnly:
    """A decoder without a chunk form (as Merlin's and ASI TPX3's): the
    recorder has to decode every frame."""

    def __init__(self, inner: Any):
        self.inner = inner

    def decode(self, *args: Any) -> None:
        self.inner.decode(*args)


class _DecodeOnlyController:
    def __init__(self, conn: Any):
        self.inner = conn.get_active_controller()

    def frame_format(self, conn: Any) -> FrameFormat:
        fmt = self.inner.frame_format(conn)
        return FrameFormat(sig_shape=fmt.sig_shape, dtype=fmt.dtype,
                           decoder=_DecodeOnly(fmt.decoder), metadata=fmt.metadata)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_frames_without_a_chunk_form_are_decoded_and_stored(ctx: LiveContext,
                                                            tmp_path: Path) -> None:
    with _open(ctx) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 6),
                                  controller=_DecodeOnlyController(conn))
        summary = ctx.record(aq, tmp_path / "decoded.h5")
    assert summary.decoded == 24 and summary.stored_as == "uncompressed"
    with h5py.File(tmp_path / "decoded.h5", "r") as f:
        np.testing.assert_array_equal(f["data"][()], DATA)


def test_a_failed_run_keeps_what_arrived_marked_incomplete(ctx: LiveContext,
                                                          tmp_path: Path) -> None:
    out = tmp_path / "scan.h5"
    for run in range(2):  # a second failure does not replace the first one's file
        with _open(ctx, fault="frame_gap@7", frames_per_stack=1) as conn:
            aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 6))
            with pytest.raises(FrameGapError) as info:
                ctx.record(aq, out)
        assert not out.exists()
        kept = tmp_path / ("scan.incomplete.h5" if run == 0 else "scan.incomplete.2.h5")
        assert str(kept) in "\n".join(getattr(info.value, "__notes__", []))
    for kept in ("scan.incomplete.h5", "scan.incomplete.2.h5"):
        attrs = _attrs(tmp_path / kept)
        assert not attrs["complete"] and attrs["frames_written"] == 7
        assert attrs["frames_expected"] == 24
        assert "FrameGapError" in attrs["error"] and "frames 7..23" in attrs["missing"]
        meta = json.loads(attrs["libertem_live"])
        assert meta["complete"] is False and meta["ledger"]["first_missing"] == 7
        with h5py.File(tmp_path / kept, "r") as f:
            got = f["data"][()].reshape(24, 5, 7)
        np.testing.assert_array_equal(got[:7], DATA.reshape(24, 5, 7)[:7])
        assert not got[7:].any()
    with _open(ctx) as conn:  # the connection of a failed recording is not needed again,
        aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 6))  # but a new one records
        ctx.record(aq, out)
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["data"][()], DATA)


def test_refuses_to_overwrite_before_arming(ctx: LiveContext, tmp_path: Path) -> None:
    out = tmp_path / "scan.h5"
    out.write_bytes(b"precious")
    with _open(ctx) as conn:
        controller = conn.get_active_controller()
        aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 6), controller=controller)
        with pytest.raises(FileExistsError, match="refuses to overwrite"):
            ctx.record(aq, out)
        assert controller.armed == 0
        assert out.read_bytes() == b"precious"
        assert os.listdir(tmp_path) == ["scan.h5"]
        summary = ctx.record(aq, out, overwrite=True)
    assert summary.frames == 24
    with h5py.File(out, "r") as f:
        np.testing.assert_array_equal(f["data"][()], DATA)


def test_passive_mode(ctx: LiveContext, tmp_path: Path) -> None:
    with _open(ctx) as conn:
        pending = conn.wait_for_acquisition(timeout=5)
        assert pending is not None
        aq = ctx.make_acquisition(conn=conn, pending_aq=pending)
        ctx.record(aq, tmp_path / "passive.h5")
    with h5py.File(tmp_path / "passive.h5", "r") as f:
        np.testing.assert_array_equal(f["data"][()], DATA)


def test_only_live_acquisitions(ctx: LiveContext, tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", DATA)
    ds = ctx.load("npy", path=str(tmp_path / "x.npy"))
    with pytest.raises(TypeError, match="records a live acquisition"):
        ctx.record(ds, tmp_path / "x.h5")


def test_the_recording_opens_as_a_libertem_dataset(ctx: LiveContext, tmp_path: Path) -> None:
    from libertem.udf.sum import SumUDF
    with _open(ctx) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(4, 6))
        ctx.record(aq, tmp_path / "scan.h5")
    ds = ctx.load("hdf5", path=str(tmp_path / "scan.h5"), ds_path="data")
    assert tuple(ds.shape) == DATA.shape
    got = ctx.run_udf(dataset=ds, udf=SumUDF())["intensity"].data
    np.testing.assert_array_equal(got, DATA.sum(axis=(0, 1), dtype=np.float64))


def _command() -> list[str]:
    exe = shutil.which("libertem-live", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("the libertem-live console script is not installed in this environment")
    return [exe]


def test_command_records_h5_by_the_file_name(tmp_path: Path) -> None:
    out_file = tmp_path / "rec.h5"
    out = subprocess.run(
        _command() + ["record", "memory", "--nav-shape", "4", "6", "--out", str(out_file),
                      "--executor", "inline", "--no-progress",
                      "--param", f"data={DATA.tolist()!r}", "--param", "frames_per_stack=5"],
        capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "expected=24, received=24" in out.stdout and "missing=0" in out.stdout
    assert f"wrote {out_file} ((4, 6, 5, 7), uncompressed" in out.stdout
    with h5py.File(out_file, "r") as f:
        assert f.attrs["complete"]
        np.testing.assert_array_equal(f["data"][()], DATA.astype(np.int64))
    assert os.listdir(tmp_path) == ["rec.h5"]


def test_a_killed_recorder_leaves_a_file_that_opens(tmp_path: Path) -> None:
    """SIGKILL while the recorder waits for the rest of a scan (a detector that
    stopped sending after 10 frames): the .incomplete.h5 opens, says it is
    not complete, and holds the 10 frames that were stored."""
    import signal
    import time
    out_file = tmp_path / "rec.h5"
    partial = tmp_path / "rec.incomplete.h5"
    proc = subprocess.Popen(
        _command() + ["record", "memory", "--nav-shape", "4", "6", "--out", str(out_file),
                      "--executor", "inline", "--no-progress",
                      "--param", f"data={DATA.tolist()!r}", "--param", "frames_per_stack=5",
                      "--param", "truncate_after=10", "--param", "fault=never_ends",
                      "--param", "timeout=120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def checkpointed() -> bool:  # read beside the writer, without its lock
        try:
            with h5py.File(partial, "r", locking=False) as f:
                return int(f.attrs["frames_written"]) == 10
        except (OSError, KeyError):
            return False
    try:
        deadline = time.monotonic() + 120
        while not checkpointed():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint of the 10 frames"
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    with h5py.File(partial, "r") as f:
        assert not f.attrs["complete"] and f.attrs["frames_written"] == 10
        frames = f["data"][()].reshape(24, 5, 7)
    np.testing.assert_array_equal(frames[:10], DATA.reshape(24, 5, 7)[:10])
    assert not frames[10:].any()
    assert not out_file.exists()
