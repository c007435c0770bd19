"""Dropping big arrays off the acquisition's thread.

The last reference to a scan's thumbnails (tens of MiB) dropped in a
result hook would make the acquisition's thread return the memory to the
system (milliseconds).  The hooks hand such references to one daemon
thread instead; handing over is a C-level queue put that neither blocks
nor releases the GIL.
"""
from __future__ import annotations

import queue
import threading
from typing import Any

_queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
_lock = threading.Lock()
_thread: threading.Thread | None = None


def start() -> None:
    """Start the releasing thread (once per process; call it outside hooks)."""
    global _thread
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_run, name="libertem-live-dashboard-release",
                                       daemon=True)
            _thread.start()


def later(obj: Any) -> None:
    """Drop ``obj`` in the releasing thread (here, if it was never started)."""
    if _thread is not None:
        _queue.put(obj)


def _run() -> None:
    while True:
        obj = _queue.get()
        del obj
