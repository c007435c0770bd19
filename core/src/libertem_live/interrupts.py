"""Ctrl-C that arrives where a half-done step would break the next run.

A few steps of a live run must either happen completely or not at all:
telling a worker that a task is over, and taking an answer off the response
queue.  A ``KeyboardInterrupt`` raised in the middle of one leaves a worker
waiting for the rest of a task, or an answer nobody counts, and the *next*
run fails or hangs.  :func:`held` postpones SIGINT for the length of such a
step; a SIGINT that came meanwhile is raised as ``KeyboardInterrupt`` as soon
as the step is done.  A step that may wait long (for the detector's next
frames) passes a ``wake`` callback, called from the signal handler, that
makes the wait end now; it must be safe to call from a signal handler (e.g.
``queue.SimpleQueue.put``).

Outside the main thread there are no signal handlers and nothing is held.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any


class _Holding:
    def __init__(self, wake: Callable[[], None] | None):
        self.pending = False
        self.wake = wake

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        first = not self.pending
        self.pending = True
        if first and self.wake is not None:
            self.wake()


@contextmanager
def held(wake: Callable[[], None] | None = None) -> Iterator[None]:
    """SIGINT waits until the block is done, then raises ``KeyboardInterrupt``;
    also when the block ends with an exception (then the interrupt names it as
    its cause), since a user's Ctrl-C must never be lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: Any = signal.getsignal(signal.SIGINT)
    if isinstance(previous, _Holding):  # nested: the outer block decides
        yield
        return
    holding = _Holding(wake)
    signal.signal(signal.SIGINT, holding)
    try:
        yield
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        if holding.pending and previous != signal.SIG_IGN:
            raise KeyboardInterrupt from e
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if holding.pending:
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt


def ignore_in_worker() -> None:
    """Worker processes leave SIGINT to the main process.

    A terminal's Ctrl-C (and Jupyter's interrupt button) signals the whole
    process group, the workers included; a worker that dies of it takes its
    queues down with it, while the main process can stop the run cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
