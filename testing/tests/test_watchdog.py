"""The per-test time limit fails a hanging test instead of the whole run."""
from __future__ import annotations

import signal
import threading
import time

import pytest

from libertem_live_testing.watchdog import time_limit


def test_hanging_code_fails_after_the_limit() -> None:
    start = time.monotonic()
    with pytest.raises(pytest.fail.Exception, match="did not finish within 0.5 s"):
        with time_limit(0.5, "the hanging test"):
            threading.Event().wait(30)
    assert time.monotonic() - start < 5


def test_code_within_the_limit_is_untouched() -> None:
    with time_limit(5, "a quick test"):
        pass
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0), "the alarm must be cancelled"
