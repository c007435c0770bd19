"""Connecting to a detector that may be restarting.

Why here: every TCP driver has to survive the detector PC's software coming
back after a restart, and has to fail with the same kind of message when the
address is simply wrong.  One loop, with back-off, serves them all.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, TypeVar

from libertem_live.errors import DetectorConnectionError

log = logging.getLogger(__name__)

T = TypeVar("T")


def connect_with_backoff(connect_once: Callable[[], T], *, where: str, timeout: float,
                         hint: str, stop: threading.Event | None = None,
                         first_pause: float = 0.05, max_pause: float = 1.0) -> T:
    """``connect_once()`` until it returns; an ``OSError`` (refused, unreachable,
    timed out) is retried after a pause that doubles from ``first_pause`` to
    ``max_pause``, for ``timeout`` seconds or until ``stop`` is set.  Then a
    :class:`DetectorConnectionError` says where, the last error, how often it
    was tried, and ``hint`` (what to check)."""
    deadline = time.monotonic() + timeout
    pause = first_pause
    attempt = 0
    while True:
        attempt += 1
        try:
            return connect_once()
        except OSError as e:
            left = deadline - time.monotonic()
            if left <= 0 or (stop is not None and stop.is_set()):
                raise DetectorConnectionError(
                    f"cannot connect to {where} ({e}); tried {attempt} times over "
                    f"{timeout:g} s. {hint}") from None
            log.warning("connecting to %s failed (%s); retry %d in %.2f s",
                        where, e, attempt, min(pause, left))
            time.sleep(min(pause, left))
            pause = min(pause * 2, max_pause)
