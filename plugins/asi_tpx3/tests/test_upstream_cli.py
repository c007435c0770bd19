"""``libertem-live-asi-tpx-sim`` (upstream's command name and options) and
``libertem-live sim asi_tpx3``, run as the installed console scripts."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from libertem_live_asi_tpx3.sim import write_capture
from libertem_live_testing.processes import console_script as _script
from libertem_live_testing.processes import free_port as _free_port
from libertem_live_testing.processes import stop as _stop


def _start(args: list[str]) -> subprocess.Popen:
    p = subprocess.Popen([_script("libertem-live-asi-tpx-sim"), *args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if "listening" not in line:
        _stop(p)
        pytest.fail(f"simulator did not start: {line!r} {p.stderr.read()}")
    return p


def _read(port: int, n: int, within: float = 20.0) -> bytes:
    buf = bytearray()
    deadline = time.monotonic() + within
    with socket.create_connection(("127.0.0.1", port), timeout=within) as s:
        while len(buf) < n and time.monotonic() < deadline:
            chunk = s.recv(min(1 << 20, n - len(buf)))
            if not chunk:
                break
            buf += chunk
    return bytes(buf)


def test_sim_asi_tpx3_help_shows_defaults_and_prog() -> None:
    out = subprocess.run([_script("libertem-live"), "sim", "asi_tpx3", "--help"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: libertem-live sim asi_tpx3")
    assert "(default: 8283)" in out.stdout


def test_capture_path_is_replayed_pass_after_pass(tmp_path: Path) -> None:
    capture = tmp_path / "scan.tpx3"
    write_capture(capture, nav_shape=(2, 3), sig_shape=(16, 16), events_per_frame=5)
    data = capture.read_bytes()
    port = _free_port()
    p = _start([str(capture), "--port", str(port), "--sleep", "0.05"])
    try:
        assert _read(port, 2 * len(data)) == data + data
    finally:
        _stop(p)


def test_mock_nav_shape_serves_synthetic_data_and_says_so() -> None:
    port = _free_port()
    p = _start(["--mock-nav-shape", "2", "3", "--port", str(port), "--cached", "memfd"])
    try:
        assert len(_read(port, 4096)) == 4096
    finally:
        stderr = _stop(p)
    assert "--mock-nav-shape: serving this simulator's synthetic events" in stderr
    assert "--cached MEMFD" in stderr


@pytest.mark.parametrize("args,message", [
    ([], "need PATH (a capture file) or --mock-nav-shape"),
    (["a", "b"], "2 capture files given"),
])
def test_refused_forms(args: list[str], message: str) -> None:
    out = subprocess.run([_script("libertem-live-asi-tpx-sim"), *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and message in out.stderr
