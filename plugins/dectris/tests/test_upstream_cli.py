"""``libertem-live-dectris-sim`` in upstream's form (a dump PATH as positional
argument, ``--verbose BOOL``) and ``libertem-live sim dectris``, run as the
installed scripts."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from libertem_live_dectris.client import SimplonClient
from libertem_live_dectris.sim import write_dump
from libertem_live_testing.processes import console_script as _script
from libertem_live_testing.processes import free_port as _free_port
from libertem_live_testing.processes import stop as _stop


def _wait_listening(port: int, p: subprocess.Popen, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if p.poll() is not None:
            pytest.fail(f"simulator exited with {p.returncode}: {p.stderr.read()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"simulator not listening on {port} within {within} s")


@pytest.mark.parametrize("command,prog", [
    (["libertem-live", "sim", "dectris"], "libertem-live sim dectris"),
    (["libertem-live-dectris-sim"], "libertem-live-dectris-sim"),
])
def test_help_shows_defaults_and_prog(command: list[str], prog: str) -> None:
    out = subprocess.run([_script(command[0]), *command[1:], "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: {prog} ")
    assert "(default: 8910)" in out.stdout and "--fault KIND[@FRAME]" in out.stdout


def test_upstream_form_replays_a_dump(tmp_path: Path, receiver_factory) -> None:
    dump = tmp_path / "zmqdump.dat"
    total = write_dump(dump, frames=4, shape=(16, 24), pool_size=4, series=34)
    port, zmqport = _free_port(), _free_port()
    sim = subprocess.Popen(
        [_script("libertem-live-dectris-sim"), str(dump), "--port", str(port),
         "--zmqport", str(zmqport), "--v2-port", "0", "--dwelltime", "10", "--verbose", "false"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_listening(port, sim)
        rx = receiver_factory(zmqport)
        assert SimplonClient("127.0.0.1", port).sendDetectorCommand("arm")["sequence id"] == 34
        r = rx.series()
        assert r.frames == [(34, k) for k in range(4)]
        np.testing.assert_array_equal(r.decoded().sum(axis=0, dtype=np.float64), total)
    finally:
        _stop(sim)
    assert sim.returncode == 0, sim.stderr.read()


def test_verbose_needs_a_boolean() -> None:
    out = subprocess.run([_script("libertem-live-dectris-sim"), "--verbose=maybe"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--verbose: 'maybe' is not a boolean" in out.stderr
