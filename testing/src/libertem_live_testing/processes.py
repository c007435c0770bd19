"""Helpers for tests that run a driver's commands (its simulator, say) as the
user does: the installed console script, in a process of its own."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest


def console_script(name: str) -> str:
    """The path of console script ``name`` installed beside this Python;
    skips the test when it is not installed."""
    exe = shutil.which(name, path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip(f"the {name} console script is not installed in this environment")
    return exe


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(process: subprocess.Popen, within: float = 10.0) -> str:
    """End ``process`` as Ctrl-C would (SIGINT), killing it if it does not end
    ``within`` seconds; returns what it wrote on stderr when that was a pipe."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.stderr.read() if process.stderr is not None else ""
