"""Start a DECTRIS simulator in its own process group and read its ports.

``upstream``: upstream's Rust-backed simulator from the anchor venv
(``$ANCHOR_VENV``, default /tmp/anchor-venv, with ``shared/anchor-bench``);
``ours``: ``libertem_live_dectris.sim.DectrisSim`` replaying the same dump.
"""
from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ANCHOR_VENV = Path(os.environ.get("ANCHOR_VENV", "/tmp/anchor-venv"))
SHARED = Path(os.environ.get("LIBERTEM_LIVE_SHARED",
                             Path(__file__).resolve().parents[2] / "shared"))
ANCHOR_BENCH = SHARED / "anchor-bench"

OURS = r"""
import json, os, signal, sys, threading
from libertem_live_dectris.sim import DectrisSim
sim = DectrisSim(path=sys.argv[1], send_timeout=60.0).start()
sim.wait_for_listen()
print(json.dumps({"api_port": sim.port, "zmq_port": sim.zmqport, "v2_port": sim.v2_port,
                  "pid": os.getpid()}), flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: done.set())
done.wait()
sim.stop()
"""


def upstream_available() -> bool:
    return (ANCHOR_VENV / "bin" / "python").exists() and (ANCHOR_BENCH / "sim_dectris.py").exists()


def start(kind: str, dump: str) -> tuple[subprocess.Popen, dict]:
    if kind == "upstream":
        cmd = [str(ANCHOR_VENV / "bin" / "python"), str(ANCHOR_BENCH / "sim_dectris.py"),
               "--file", dump]
    else:
        cmd = [sys.executable, "-c", OURS, dump]
    return start_cmd(cmd)


try:
    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl  # looked up before any fork
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the bench dies, however it
    dies (SIGKILL included), so that no simulator outlives its bench."""
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def popen(cmd: list[str], **kw: Any) -> subprocess.Popen:
    """A simulator process in its own process group (a Ctrl-C at the terminal
    reaches the bench, which then stops it in order) that ends with the bench."""
    return subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent, **kw)


def start_cmd(cmd: list[str]) -> tuple[subprocess.Popen, dict]:
    """Run a simulator command in its own process group; its first stdout line
    is a JSON object with its ports."""
    proc = popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError(f"simulator did not start: {' '.join(cmd)}")
    return proc, json.loads(line)


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)
