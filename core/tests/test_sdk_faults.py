"""The core's receive loop and stream, seen through the memory driver's
injected faults: each ends in its own error class with a balanced ledger,
and the connection works again for the next acquisition."""
from __future__ import annotations

import gc
import os
import warnings

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.driver import (
    DecodeError, DuplicateFrameError, FrameGapError, MissingEndWarning, StreamTruncatedError,
    parse_fault,
)

NAV = (6, 10)


@pytest.fixture(scope="session")
def ctx(live_ctx):
    return live_ctx


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return np.random.default_rng(7).integers(0, 1000, size=NAV + (8, 8), dtype=np.uint16)


def _balanced(aq) -> None:
    snap = aq.ledger.snapshot()
    assert snap.received + snap.missing >= snap.expected == 60, snap


@pytest.mark.parametrize("fault, error, words", [
    ("frame_gap@20", FrameGapError, "frames 20..20 never came"),
    ("duplicate_frame@20", DuplicateFrameError, "frame 20 came"),
    ("out_of_order@20", FrameGapError, "frames 20..20 never came"),
    ("ends_short@33", StreamTruncatedError, "after 33 frames, but 60"),
    ("truncated_payload@20", DecodeError, "20"),
])
def test_fault_ends_in_its_error_and_the_next_run_works(ctx, data, fault, error, words) -> None:
    with ctx.make_connection("memory").open(data=data, fault=fault, frames_per_stack=8,
                                            timeout=5.0) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=NAV, frames_per_partition=10)
        with pytest.raises(error) as info:
            ctx.run_udf(dataset=aq, udf=SumUDF())
        assert words in str(info.value)
        assert info.value.ledger is not None
        _balanced(aq)
        if error is FrameGapError:
            assert aq.ledger.snapshot().first_missing == 20
        res = ctx.run_udf(dataset=aq, udf=SumUDF())
        assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))


def test_missing_end_marker_warns_but_keeps_the_result(ctx, data) -> None:
    with ctx.make_connection("memory").open(data=data, fault="never_ends",
                                            timeout=1.0) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=NAV)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            res = ctx.run_udf(dataset=aq, udf=SumUDF())
        assert np.array_equal(res["intensity"].data, data.sum(axis=(0, 1)))
        assert any(issubclass(w.category, MissingEndWarning) for w in seen), seen
        assert "no end-of-series marker" in " ".join(aq.ledger.snapshot().notes)


def test_unknown_fault_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="frame_gap"):
        parse_fault("frame_gpa")
    assert str(parse_fault("Frame-Gap@3")) == "frame_gap@3"


def _segments() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")}


def test_open_allocates_no_shared_memory_until_asked_to_acquire(ctx, data) -> None:
    before = _segments()
    conn = ctx.make_connection("memory").open(data=data)
    try:
        assert _segments() == before, "open() alone must not allocate the ring"
        conn.wait_for_acquisition(1.0)
        assert len(_segments() - before) == 1, "the first acquisition prepares one ring"
    finally:
        conn.close()
    assert _segments() == before


def test_dropped_connection_frees_its_shared_memory(ctx, data) -> None:
    conn = ctx.make_connection("memory").open(data=data)
    aq = ctx.make_acquisition(conn=conn, nav_shape=(6, 10))
    ctx.run_udf(dataset=aq, udf=SumUDF())
    names = _segments()
    del conn, aq
    gc.collect()
    left = _segments()
    assert len(left) < len(names), "a dropped connection must free its ring"


def test_buffer_size_sizes_the_ring_in_mib() -> None:
    from libertem_live.driver import BaseConnection, RingConfig

    assert BaseConnection().ring.nbytes == 128 << 20
    assert BaseConnection(buffer_size=40).ring.nbytes == 40 << 20
    assert BaseConnection(buffer_size=0.5).ring.num_slots == 2  # never fewer than two slots
    with pytest.raises(ValueError, match="not both"):
        BaseConnection(buffer_size=8, ring=RingConfig())
    with pytest.raises(ValueError, match="positive"):
        BaseConnection(buffer_size=-1)
