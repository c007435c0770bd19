"""Stream faults: every kind the simulator can inject must end the way the
kit's table (``libertem_live_testing.faults``) says, and the next
acquisition on the same connection must give the exact ground truth."""
from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
from libertem.udf.sum import SumUDF

from libertem_live.driver import (
    AcquisitionTimeoutError, Fault, FaultKind, StreamTruncatedError,
)

from libertem_live_testing.checks import assert_checksums_equal, assert_sum_equal
from libertem_live_testing.faults import Outcome, fault_frame, outcome
from libertem_live_testing.suite._util import (
    Run, conn_timeout, describe, make_acquisition, open_conn, run_once,
)
from libertem_live_testing.udfs import ChecksumUDF, checksums

NAV = (8, 8)


def _message(error: BaseException) -> str:
    """The message without the ledger line that AcquisitionError appends
    (its counts would name any frame number)."""
    return str(getattr(error, "message", None) or error)


def _names_frame(message: str, frame: int) -> bool:
    for a, b in re.findall(r"(\d+)\s*(?:\.\.|-|to)\s*(\d+)", message):
        if int(a) <= frame <= int(b):
            return True
    return any(abs(int(n) - frame) <= 1 for n in re.findall(r"\d+", message))


def _check_ledger(error: BaseException, expected: int, rule: Outcome, at: int,
                  where: str) -> None:
    ledger = getattr(error, "ledger", None)
    assert ledger is not None, f"{where}: the error carries no ledger: {describe(error)}"
    s = ledger.snapshot()
    assert s.expected == expected, f"{where}: ledger expects {s.expected} frames, not {expected}: {s}"
    total = s.received + s.missing
    assert expected <= total <= expected + rule.surplus, (
        f"{where}: the ledger does not balance: received {s.received} + missing {s.missing} "
        f"= {total}, expected {expected}"
        + (f" (+ at most {rule.surplus} counted twice)" if rule.surplus else "") + f": {s}")
    assert s.missing >= rule.min_missing, (
        f"{where}: the ledger books {s.missing} missing frames, at least {rule.min_missing} "
        f"never came: {s}")
    if rule.first_missing_at_fault:
        assert s.first_missing == at, (
            f"{where}: the ledger's first missing frame is {s.first_missing}, the simulator "
            f"left out frame {at}: {s}")


def _check_exact(run: Run, sc: Any, where: str) -> None:
    assert run.error is None, f"{where}: {describe(run.error)}"
    assert_sum_equal(run.results[0]["intensity"].data, sc.expected_sum(), f"{where}: SumUDF")
    if len(run.results) > 1:
        assert_checksums_equal(run.results[1]["checksum"].data, checksums(sc.frames()))


def _udfs(harness: Any) -> list[Any]:
    return [SumUDF(), ChecksumUDF()] if harness.capabilities.frames else [SumUDF()]


class TestFaults:
    @pytest.mark.live_requires("short_stream")
    def test_short_stream_is_reported(self, live_driver: Any, live_ctx: Any,
                                      live_mode: str) -> None:
        with live_driver.scenario(NAV, short_by=20) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                run = run_once(live_ctx, sc, conn, live_mode, [SumUDF()],
                               frames_per_partition=16)
                timeout = conn_timeout(conn, sc, live_driver.fault_time_bound)
        where = f"short_stream ({live_mode}, 44 of 64 frames, then the end marker)"
        assert run.error is not None, (
            f"{where}: the run succeeded although the simulator ended the series after 44 "
            "of 64 frames; the driver must raise StreamTruncatedError")
        err = run.error
        assert isinstance(err, StreamTruncatedError), (
            f"{where}: expected StreamTruncatedError, the driver raised {describe(err)}"
            + ("; a time-out means the driver missed the end of the series"
               if isinstance(err, AcquisitionTimeoutError) else ""))
        assert run.seconds < 0.8 * timeout, (
            f"{where}: the error came after {run.seconds:.1f} s, near the connection's "
            f"{timeout:g} s timeout; the end marker must end the run at once")
        ledger = err.ledger
        assert ledger is not None, "the error must carry the acquisition's ledger"
        snap = ledger.snapshot()
        assert snap.expected == 64 and snap.received == 44, f"ledger: {snap}"
        assert snap.missing == 20 and snap.first_missing == 44, f"ledger: {snap}"
        assert "44" in _message(err) and "64" in _message(err), (
            f"the message should say how many frames came: {err}")

    @pytest.mark.live_requires("short_stream")
    def test_connection_usable_after_failure(self, live_driver: Any, live_ctx: Any,
                                             live_mode: str) -> None:
        from libertem_live.errors import AcquisitionError
        with live_driver.scenario(NAV, short_by=20) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                with pytest.raises(AcquisitionError):
                    live_ctx.run_udf(dataset=make_acquisition(live_ctx, sc, conn, live_mode),
                                     udf=SumUDF())
        with live_driver.scenario(NAV) as sc:
            with open_conn(live_ctx, live_driver, sc) as conn:
                res = live_ctx.run_udf(dataset=make_acquisition(live_ctx, sc, conn, live_mode),
                                       udf=SumUDF())
                assert_sum_equal(res["intensity"].data, sc.expected_sum())

    @pytest.mark.parametrize("fault_kind", list(FaultKind), ids=lambda k: k.value)
    def test_fault(self, live_driver: Any, live_ctx: Any, live_mode: str,
                   fault_kind: FaultKind) -> None:
        rule = outcome(fault_kind)
        nimages = int(np.prod(NAV))
        fault = Fault(fault_kind, fault_frame(nimages))
        bound = float(live_driver.fault_time_bound)
        with live_driver.scenario(NAV, fault=fault) as sc:
            at = sc.fault_frame if sc.fault_frame is not None else fault.frame
            where = f"fault {fault} ({live_mode})"
            with open_conn(live_ctx, live_driver, sc) as conn:
                first = run_once(live_ctx, sc, conn, live_mode, _udfs(live_driver),
                                 frames_per_partition=16)
                timeout = conn_timeout(conn, sc, bound)
                if rule.error is None:
                    _check_exact(first, sc, f"{where}: {rule.says}; first acquisition")
                    if rule.warning is not None:
                        assert first.warned(rule.warning), (
                            f"{where}: no {rule.warning.__name__}; expected {rule.says}")
                else:
                    self._check_error(first, rule, nimages, at, timeout, where)
                assert first.seconds <= bound, (
                    f"{where}: the first acquisition took {first.seconds:.1f} s, more than "
                    f"the harness's fault_time_bound of {bound:g} s")
                second = run_once(live_ctx, sc, conn, live_mode, _udfs(live_driver))
                _check_exact(second, sc, f"{where}: the next acquisition on the same connection")

    @staticmethod
    def _check_error(run: Run, rule: Outcome, nimages: int, at: int, timeout: float,
                     where: str) -> None:
        assert rule.error is not None
        assert run.error is not None, (
            f"{where}: the run succeeded; expected {rule.says}")
        err = run.error
        assert isinstance(err, rule.error), (
            f"{where}: expected {rule.says}; the driver raised {describe(err)}")
        if not issubclass(rule.error, AcquisitionTimeoutError):
            assert not isinstance(err, AcquisitionTimeoutError), (
                f"{where}: expected {rule.says}, not a time-out: {describe(err)}")
        else:
            assert run.seconds <= timeout + 5.0, (
                f"{where}: {type(err).__name__} after {run.seconds:.1f} s; it must come "
                f"within the connection's {timeout:g} s timeout and a few seconds")
        message = _message(err)
        assert message.strip(), f"{where}: {type(err).__name__} has an empty message"
        if rule.names_frame:
            assert _names_frame(message, at), (
                f"{where}: the message does not name frame {at} (where the fault was) or a "
                f"neighbour: {message!r}")
        _check_ledger(err, nimages, rule, at, where)
