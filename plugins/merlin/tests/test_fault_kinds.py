"""Every fault kind the Merlin simulator can inject, through the public API:
the first acquisition ends in the error the fault calls for (with a balanced
ledger, within a bounded time), and the next acquisition on the same
connection object gives the exact ground truth."""
from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.driver import FaultKind
from libertem_live.errors import (DecodeError, DetectorConnectionError, FrameFormatError,
                                  FrameGapError, FrameOrderError, StalledError,
                                  StreamTruncatedError)

from libertem_live_merlin.sim import SUPPORTED_FAULTS, MerlinSim

N = 16
NAV = (4, 4)
AT = 6
TIMEOUT = 3.0

#: what each kind must end in (None: no error)
OUTCOMES: dict[FaultKind, type[BaseException] | None] = {
    FaultKind.FRAME_GAP: FrameGapError,
    FaultKind.DUPLICATE_FRAME: FrameOrderError,
    FaultKind.OUT_OF_ORDER: FrameOrderError,
    FaultKind.TRUNCATED_PAYLOAD: DecodeError,
    FaultKind.CORRUPT_PAYLOAD: DecodeError,
    FaultKind.WRONG_FORMAT: FrameFormatError,
    FaultKind.ENDS_SHORT: StreamTruncatedError,
    FaultKind.STALL_MID_FRAME: StalledError,
    FaultKind.DISCONNECT_MID_STREAM: DetectorConnectionError,
    FaultKind.RESTART_BETWEEN: None,
}


def test_every_supported_kind_has_an_outcome() -> None:
    assert set(OUTCOMES) == set(SUPPORTED_FAULTS)
    assert FaultKind.NEVER_ENDS not in SUPPORTED_FAULTS


@pytest.fixture(params=sorted(SUPPORTED_FAULTS, key=lambda k: k.value), ids=lambda k: k.value)
def faulty(request: Any) -> Iterator[tuple[FaultKind, MerlinSim]]:
    kind = request.param
    with MerlinSim(frames=N, scan_shape=NAV, counter_depth=12, raw=True, pool_size=8,
                   fault=f"{kind.value}@{AT}") as sim:
        yield kind, sim


def _run(ctx: Any, conn: Any, sim: MerlinSim) -> Any:
    assert sim.wait_idle(10)
    conn.get_control().cmd("STARTACQUISITION")
    pending = conn.wait_for_acquisition(10.0)
    assert pending is not None
    aq = ctx.make_acquisition(conn=conn, pending_aq=pending, frames_per_partition=4)
    return ctx.run_udf(dataset=aq, udf=SumUDF())


def test_fault_kind(live_ctx: Any, faulty: tuple[FaultKind, MerlinSim]) -> None:
    kind, sim = faulty
    expected = OUTCOMES[kind]
    conn = live_ctx.make_connection("merlin").open(
        api_host="127.0.0.1", api_port=sim.control_port, data_host="127.0.0.1",
        data_port=sim.data_port, timeout=TIMEOUT, reconnect_timeout=5.0)
    with conn:
        start = time.monotonic()
        if expected is None:
            res = _run(live_ctx, conn, sim)
            assert np.array_equal(res["intensity"].data, sim.expected_sum(N))
        else:
            with pytest.raises(expected) as info:
                _run(live_ctx, conn, sim)
            took = time.monotonic() - start
            err = info.value
            assert str(err), "the error must say what happened"
            ledger = err.ledger
            assert ledger is not None, f"{kind.value}: the error carries no ledger"
            snap = ledger.snapshot()
            surplus = 1 if kind is FaultKind.DUPLICATE_FRAME else 0
            assert N <= snap.received + snap.missing <= N + surplus, snap
            if kind is FaultKind.FRAME_GAP:
                assert snap.missing >= 1 and snap.first_missing == AT, snap
            if kind is FaultKind.ENDS_SHORT:
                assert snap.received == AT and f"after {AT} of {N} frames" in str(err)
            assert took < TIMEOUT + 5.0, f"{kind.value}: the error took {took:.1f} s"
        res = _run(live_ctx, conn, sim)
        assert np.array_equal(res["intensity"].data, sim.expected_sum(N)), (
            f"the acquisition after {kind.value} is not exact")
