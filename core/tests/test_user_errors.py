"""Errors a user at the microscope meets first, and what they say."""
from __future__ import annotations

import numpy as np
import pytest

from libertem_live.api import LiveContext
from libertem_live.errors import AcquisitionTimeoutError, UnknownDetectorError


@pytest.fixture(scope="module")
def ctx():
    ctx = LiveContext(executor="inline")
    yield ctx
    ctx.close()


def test_a_timed_out_wait_is_not_active_mode(ctx) -> None:
    data = np.zeros((2, 2, 4, 4), dtype=np.uint8)
    with ctx.make_connection("memory").open(data=data, passive_count=0) as conn:
        pending = conn.wait_for_acquisition(timeout=0.1)
        assert pending is None
        with pytest.raises(AcquisitionTimeoutError) as info:
            ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=(2, 2))
        msg = str(info.value)
        assert "wait_for_acquisition" in msg and "leave pending_aq out" in msg
        aq = ctx.make_acquisition(conn=conn, nav_shape=(2, 2))
        assert aq.mode == "active"


@pytest.mark.parametrize("typo", ["MEMORY", "Memory", "memroy", "mem-ory"])
def test_did_you_mean_ignores_case_and_spelling(ctx, typo: str) -> None:
    with pytest.raises(UnknownDetectorError, match="Did you mean 'memory'"):
        ctx.make_connection(typo)


def test_an_unknown_name_invents_no_distribution(ctx) -> None:
    with pytest.raises(UnknownDetectorError) as info:
        ctx.make_connection("zzyzx")
    msg = str(info.value)
    assert "libertem-live-zzyzx" not in msg and "Did you mean" not in msg
    assert "memory" in msg and "libertem_live.detectors" in msg


def test_recording_sidecar_names_series_and_versions(ctx, tmp_path) -> None:
    import json

    from libertem_live.udf.record import RecordUDF
    data = np.arange(2 * 2 * 4 * 4, dtype=np.uint16).reshape(2, 2, 4, 4)
    with ctx.make_connection("memory").open(data=data) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(2, 2))
        ctx.run_udf(dataset=aq, udf=RecordUDF(tmp_path / "a.npy"))
        ctx.run_udf(dataset=aq, udf=RecordUDF(tmp_path / "b.npy"))
    first = json.loads((tmp_path / "a.json").read_text())
    second = json.loads((tmp_path / "b.json").read_text())
    assert (first["series"], second["series"]) == (1, 2)
    assert {"libertem", "libertem-live-core", "numpy", "python"} <= set(first["versions"])
    assert np.array_equal(np.load(tmp_path / "b.npy"), data)


def test_record_udf_refuses_a_roi(ctx, tmp_path) -> None:
    """A ROI would put the selected frames at the wrong positions of a file
    shaped for the whole scan: refused, and no complete file appears."""
    from libertem_live.udf.record import RecordUDF
    data = np.arange(2 * 3 * 4 * 4, dtype=np.uint16).reshape(2, 3, 4, 4)
    roi = np.zeros((2, 3), dtype=bool)
    roi[1, 1:] = True
    with ctx.make_connection("memory").open(data=data) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(2, 3))
        with pytest.raises(Exception, match="without roi="):
            ctx.run_udf(dataset=aq, udf=RecordUDF(tmp_path / "r.npy"), roi=roi)
        ctx.run_udf(dataset=aq, udf=RecordUDF(tmp_path / "ok.npy"))
    assert not (tmp_path / "r.npy").exists()
    assert np.array_equal(np.load(tmp_path / "ok.npy"), data)


def test_record_udf_keeps_a_big_endian_dtype(ctx, tmp_path) -> None:
    from libertem_live.udf.record import RecordUDF
    data = (np.arange(2 * 3 * 4 * 4, dtype=np.uint16) * 257).reshape(2, 3, 4, 4).astype(">u2")
    with ctx.make_connection("memory").open(data=data) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=(2, 3))
        ctx.run_udf(dataset=aq, udf=RecordUDF(tmp_path / "be.npy"))
    got = np.load(tmp_path / "be.npy")
    assert got.dtype == np.dtype(">u2") and np.array_equal(got, data)
