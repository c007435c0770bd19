"""A user's session in a process of its own, for tests that send it real signals.

``python -m libertem_live_testing.interrupt_runner SETUP.pickle`` opens a
LiveContext and a connection, prints ``READY``, then reads commands from
stdin, one per line, and answers on stdout (one line each, flushed):

* ``run``: one active acquisition with :class:`SlowSumUDF`; prints
  ``START`` when the run begins, then ``DONE <path.npy>`` (the sum),
  ``INTERRUPTED <seconds>`` (a ``KeyboardInterrupt``: seconds from
  ``START``) or ``ERROR <class> <message>``;
* ``passive-run``: the same in passive mode: prints ``WAIT``, waits for an
  acquisition that someone else starts, then as ``run``;
* ``pids``: ``PIDS <pid> ...`` of the context's worker processes;
* ``close``: closes connection and context, prints ``LEFT <json>`` with
  what is still alive (threads, child processes, shared-memory segments of
  this process) and exits.

A session in a notebook or at a terminal is exactly this: one process, one
context, runs one after the other, and Ctrl-C at any moment.
"""
from __future__ import annotations

import json
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
from typing import Any

import numpy as np
from libertem.udf.base import UDF
from libertem.udf.sum import SumUDF


class SlowSumUDF(SumUDF):
    """SumUDF that takes ``delay_s`` per frame, so a run lasts long enough to
    be interrupted while the workers are busy."""

    def __init__(self, delay_s: float = 0.0, dtype: str = "float64"):
        UDF.__init__(self, delay_s=delay_s, dtype=dtype)

    def process_tile(self, tile: Any) -> None:
        if self.params.delay_s:
            time.sleep(self.params.delay_s * tile.shape[0])
        super().process_tile(tile)


def _shm_of_this_process() -> list[str]:
    """Shared-memory segments (``psm_*``: rings) this process still maps or
    holds open; multiprocessing's semaphores are LiberTEM's, not ours."""
    found = set()
    fd_dir = "/proc/self/fd"
    for fd in os.listdir(fd_dir) if os.path.isdir(fd_dir) else []:
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("/dev/shm/psm_"):
            found.add(target)
    try:
        with open("/proc/self/maps") as maps:
            found |= {line.split(None, 5)[-1].strip() for line in maps
                      if "/dev/shm/psm_" in line}
    except OSError:
        pass
    return sorted(found)


def _left() -> dict[str, Any]:
    import multiprocessing
    deadline = time.monotonic() + 10
    while True:
        threads = [t.name for t in threading.enumerate()
                   if t is not threading.main_thread() and t.is_alive()]
        children = [p.pid for p in multiprocessing.active_children()]
        shm = _shm_of_this_process()
        if not (threads or children or shm) or time.monotonic() > deadline:
            return {"threads": threads, "children": children, "shm": shm}
        time.sleep(0.1)


def main(setup_path: str) -> int:
    from libertem_live.api import LiveContext

    # Ctrl-C raises KeyboardInterrupt, as at a terminal or in a notebook, also
    # when the tests run as a background job (which starts with SIGINT ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with open(setup_path, "rb") as f:
        setup = pickle.load(f)
    out_dir = tempfile.mkdtemp(prefix="libertem-live-interrupt-")
    ctx = LiveContext()
    conn = ctx.make_connection(setup["driver"]).open(**setup["params"])
    say = sys.stdout
    print("READY", file=say, flush=True)
    runs = 0
    while True:
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:  # came just after a run ended
            print("IDLE-INTERRUPT", file=say, flush=True)
            continue
        if not line:
            return 1
        cmd = line.strip()
        if cmd in ("run", "passive-run"):
            runs += 1
            t0 = time.monotonic()
            try:
                if cmd == "run":
                    aq = ctx.make_acquisition(
                        conn=conn, nav_shape=tuple(setup["nav_shape"]),
                        controller=conn.get_active_controller(**setup["controller"]))
                else:
                    print("WAIT", file=say, flush=True)
                    pending = conn.wait_for_acquisition(60.0)
                    if pending is None:
                        raise TimeoutError("no acquisition started within 60 s")
                    aq = ctx.make_acquisition(conn=conn, nav_shape=tuple(setup["nav_shape"]),
                                              pending_aq=pending)
                print("START", file=say, flush=True)
                t0 = time.monotonic()
                res = ctx.run_udf(dataset=aq, udf=SlowSumUDF(delay_s=setup["delay_s"]))
                path = os.path.join(out_dir, f"sum-{runs}.npy")
                np.save(path, np.asarray(res["intensity"].data, dtype=np.float64))
                print(f"DONE {path}", file=say, flush=True)
            except KeyboardInterrupt:
                print(f"INTERRUPTED {time.monotonic() - t0:.3f}", file=say, flush=True)
            except Exception as e:
                text = " ".join(str(e).split())
                print(f"ERROR {type(e).__name__} {text}", file=say, flush=True)
        elif cmd == "pids":
            pids = [w.process.pid for w in ctx.executor._pool.workers]
            print("PIDS " + " ".join(map(str, pids)), file=say, flush=True)
        elif cmd == "close":
            conn.close()
            ctx.close()
            print("LEFT " + json.dumps(_left()), file=say, flush=True)
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
