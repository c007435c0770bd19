"""Every stream fault the DECTRIS simulator can inject ends the way the core's
fault model says, through the public API only.

For each kind: the acquisition ends in the listed exception (or succeeds,
for ``never_ends`` with a :class:`MissingEndWarning`, and for
``restart_between``), within a bounded time, with a balanced ledger
(received + missing == expected), and the next acquisition on the same
connection object gives the exact ground truth.  Both receive loops (compiled
and Python) are run.
"""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import math  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from libertem.udf.sum import SumUDF  # noqa: E402

from libertem_live.driver import (  # noqa: E402
    AcquisitionError, DecodeError, DetectorConnectionError, FaultKind, FrameFormatError,
    FrameGapError, FrameOrderError, MissingEndWarning, StreamTruncatedError,
)
from libertem_live_dectris.sim import DectrisSim  # noqa: E402
from libertem_live_dectris.sim.faults import SUPPORTED_FAULTS  # noqa: E402

NAV = (6, 8)
N = math.prod(NAV)
SIG = (16, 24)
TIMEOUT = 3.0
BOUND_S = TIMEOUT + 5.0

#: what each kind must end in (None: the run succeeds)
OUTCOME: dict[FaultKind, type[BaseException] | None] = {
    FaultKind.FRAME_GAP: FrameGapError,
    FaultKind.DUPLICATE_FRAME: FrameOrderError,
    FaultKind.OUT_OF_ORDER: FrameOrderError,
    FaultKind.TRUNCATED_PAYLOAD: DecodeError,
    FaultKind.CORRUPT_PAYLOAD: DecodeError,
    FaultKind.WRONG_FORMAT: FrameFormatError,
    FaultKind.ENDS_SHORT: StreamTruncatedError,
    FaultKind.NEVER_ENDS: None,
    FaultKind.DISCONNECT_MID_STREAM: DetectorConnectionError,
    FaultKind.RESTART_BETWEEN: None,
}


def test_every_kind_is_supported_or_refused() -> None:
    assert set(OUTCOME) == set(SUPPORTED_FAULTS)
    for kind in FaultKind:
        if kind not in SUPPORTED_FAULTS:
            with pytest.raises(ValueError, match=f"cannot inject {kind.value!r}"):
                DectrisSim(frames=N, shape=SIG, fault=kind)


@pytest.fixture(scope="module", autouse=True)
def warm(ctx: Any) -> None:
    """One clean run first: the workers start and compile the decoder once,
    outside the time bound of the fault cases."""
    with DectrisSim(frames=N, shape=SIG, pool_size=8) as sim:
        sim.wait_for_listen()
        with ctx.make_connection("dectris").open(
                api_host="127.0.0.1", api_port=sim.port, data_host="127.0.0.1",
                data_port=sim.zmqport, timeout=30.0) as conn:
            _run(ctx, conn)


@pytest.fixture
def sim_for(start_sim: Callable[..., DectrisSim]) -> Callable[[FaultKind], DectrisSim]:
    return lambda kind: start_sim(frames=N, shape=SIG, pool_size=8, send_timeout=5.0, fault=kind)


def _run(ctx: Any, conn: Any) -> tuple[Any, np.ndarray]:
    aq = ctx.make_acquisition(conn=conn, nav_shape=NAV,
                              controller=conn.get_active_controller(trigger_mode="exte"))
    res = ctx.run_udf(dataset=aq, udf=SumUDF())
    return aq, res["intensity"].data.astype(np.float64)


@pytest.mark.parametrize("kind", sorted(SUPPORTED_FAULTS, key=lambda k: k.value),
                         ids=lambda k: k.value)
def test_fault_kind(ctx, sim_for, receive_loop, kind: FaultKind) -> None:
    sim = sim_for(kind)
    truth = sim.expected_sum(N)
    with ctx.make_connection("dectris").open(
            api_host="127.0.0.1", api_port=sim.port, data_host="127.0.0.1",
            data_port=sim.zmqport, timeout=TIMEOUT) as conn:
        expected = OUTCOME[kind]
        t0 = time.monotonic()
        if expected is None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                aq, result = _run(ctx, conn)
            assert np.array_equal(result, truth)
            missing_end = [w for w in caught if issubclass(w.category, MissingEndWarning)]
            if kind is FaultKind.NEVER_ENDS:
                assert missing_end, "no MissingEndWarning for a series without its end"
                assert "end-of-series" in str(missing_end[0].message)
            else:
                assert not missing_end, [str(w.message) for w in missing_end]
            s = aq.ledger.snapshot()
            assert (s.received, s.missing) == (N, 0), s
        else:
            with pytest.raises(expected) as info:
                _run(ctx, conn)
            err = info.value
            assert str(err)
            assert isinstance(err, AcquisitionError) and err.ledger is not None
            led = err.ledger.as_dict()
            assert led["received"] + led["missing"] == led["expected"] == N, led
            if kind is FaultKind.FRAME_GAP:
                assert led["missing"] >= 1
        assert time.monotonic() - t0 < BOUND_S
        # the fault is over: the same connection gives the exact result
        aq, result = _run(ctx, conn)
        assert np.array_equal(result, truth)
        s = aq.ledger.snapshot()
        assert (s.expected, s.received, s.processed, s.missing) == (N, N, N, 0), s
