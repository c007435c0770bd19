"""Every fault kind the simulator can inject ends in the class the core
prescribes, with a balanced ledger, in bounded time; the next acquisition on
the same connection object gives the exact ground truth."""
from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.driver import (
    AcquisitionError, DecodeError, DetectorConnectionError, Fault, FaultKind, FrameFormatError,
    FrameOrderError, MissingEndWarning, StalledError, StreamTruncatedError,
)
from libertem_live_asi_tpx3.sim import SUPPORTED_FAULTS, Tpx3Sim

from _udfs import receiver_threads

NAV = (4, 8)
TIMEOUT = 3.0
#: a failing run ends within the connection timeout plus this
BOUND_S = TIMEOUT + 12.0

#: kind -> the class the run must end in (None: it succeeds)
EXPECTED: dict[FaultKind, type[BaseException] | None] = {
    FaultKind.DUPLICATE_FRAME: FrameOrderError,
    FaultKind.TRUNCATED_PAYLOAD: DecodeError,
    FaultKind.CORRUPT_PAYLOAD: DecodeError,
    FaultKind.WRONG_FORMAT: FrameFormatError,
    FaultKind.ENDS_SHORT: StreamTruncatedError,
    FaultKind.NEVER_ENDS: None,
    FaultKind.STALL_MID_FRAME: StalledError,
    FaultKind.DISCONNECT_MID_STREAM: DetectorConnectionError,
    FaultKind.RESTART_BETWEEN: None,
}


def test_every_supported_kind_is_tested() -> None:
    assert set(EXPECTED) == set(SUPPORTED_FAULTS)


@pytest.mark.parametrize("kind", [k for k in FaultKind if k not in SUPPORTED_FAULTS],
                         ids=lambda k: k.value)
def test_inexpressible_kinds_are_refused(kind: FaultKind) -> None:
    with pytest.raises(ValueError, match="no scan position"):
        Tpx3Sim(nav_shape=NAV, sig_shape=(16, 16), fault=kind.value)


def _run(ctx: Any, conn: Any, sim: Tpx3Sim) -> tuple[Any, Any]:
    sim.trigger()
    pending = conn.wait_for_acquisition(timeout=20)
    assert pending is not None
    aq = ctx.make_acquisition(conn=conn, pending_aq=pending)
    return aq, ctx.run_udf(dataset=aq, udf=SumUDF())


@pytest.mark.parametrize("kind", sorted(SUPPORTED_FAULTS, key=lambda k: k.value),
                         ids=lambda k: k.value)
def test_fault_kind(live_ctx: Any, kind: FaultKind) -> None:
    expected = EXPECTED[kind]
    n = NAV[0] * NAV[1]
    fault = Fault(kind, 13)  # inside the second chunk, not on a chunk boundary
    with Tpx3Sim(nav_shape=NAV, sig_shape=(16, 16), events_per_frame=8, frames_per_chunk=8,
                 wait_for_trigger=True, acquisitions_per_connection=None, seed=3,
                 fault=fault) as sim:
        truth = sim.expected_sum()
        with live_ctx.make_connection("asi_tpx3").open(data_port=sim.port,
                                                       timeout=TIMEOUT) as conn:
            t0 = time.monotonic()
            if expected is None:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    aq, res = _run(live_ctx, conn, sim)
                np.testing.assert_array_equal(res["intensity"].data, truth)
                missing_end = [w for w in caught if issubclass(w.category, MissingEndWarning)]
                assert bool(missing_end) == (kind is FaultKind.NEVER_ENDS), caught
                snap = aq.ledger.snapshot()
                assert (snap.received, snap.missing) == (n, 0), snap
            else:
                with pytest.raises(AcquisitionError) as info:
                    _run(live_ctx, conn, sim)
                err = info.value
                assert isinstance(err, expected), f"{type(err).__name__}: {err}"
                assert err.ledger is not None, "the error must carry the ledger"
                snap = err.ledger.snapshot()
                assert snap.expected == n and snap.received + snap.missing == n, snap
                if kind is not FaultKind.DUPLICATE_FRAME:  # seen only when the rows overflow
                    assert snap.received <= 13, snap
                assert str(err).strip()
            assert time.monotonic() - t0 < BOUND_S
            assert receiver_threads() == []
            aq, res = _run(live_ctx, conn, sim)
            np.testing.assert_array_equal(res["intensity"].data, truth)
            snap = aq.ledger.snapshot()
            assert (snap.received, snap.missing) == (n, 0), snap
            if kind is FaultKind.RESTART_BETWEEN:
                assert sim.restarts == 1 and sim.connections == 2
    assert receiver_threads() == []
