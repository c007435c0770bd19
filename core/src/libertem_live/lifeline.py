"""Worker processes end with the process that started them.

A worker of the pipelined executor waits on its task queue for as long as
it lives.  When the main process dies without closing its pool (SIGKILL, a
crash, a notebook kernel killed from outside), nothing tells the workers:
they stay, each holding its memory, until someone finds and kills them.  So
every worker runs a daemon thread that looks at its parent's pid once a
second and ends the worker when the parent is gone (the worker was handed
to another process).
"""
from __future__ import annotations

import os
import threading

CHECK_S = 1.0


def exit_with_parent(check_s: float = CHECK_S) -> None:
    """Start the watch in this (worker) process."""
    parent = os.getppid()
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(check_s):
            if os.getppid() != parent:
                os._exit(1)  # nothing of this process is worth saving: the run is gone

    threading.Thread(target=watch, name="libertem-live-lifeline", daemon=True).start()
