"""A per-test time limit: pytest has none built in, and a driver that hangs
must fail its test, not the whole CI job hours later."""
from __future__ import annotations

import contextlib
import faulthandler
import signal
import sys
import threading
from typing import Iterator

import pytest


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Dump every thread's stack after ``seconds`` (faulthandler, into the
    test's captured stderr), then fail the test in the main thread
    (SIGALRM).  Where there is no SIGALRM or this is not the main thread,
    the dump ends the process instead: better than hanging."""
    if seconds <= 0:
        yield
        return
    stream = sys.__stderr__ if sys.__stderr__ is not None else sys.stderr
    alarm = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    faulthandler.dump_traceback_later(seconds, exit=not alarm, file=stream)
    old = None
    if alarm:
        def on_alarm(signum: int, frame: object) -> None:
            pytest.fail(f"{what} did not finish within {seconds:g} s (ini option "
                        "live_test_timeout); the stacks of all threads were dumped to its "
                        "stderr", pytrace=False)
        old = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds + 0.5)
    try:
        yield
    finally:
        if alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        faulthandler.cancel_dump_traceback_later()
