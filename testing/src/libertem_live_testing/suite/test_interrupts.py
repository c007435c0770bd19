"""Ctrl-C and dead workers, as they happen at the microscope: real signals
sent to a real process that runs the driver the way a user's session does.

The session (:mod:`libertem_live_testing.interrupt_runner`) runs in its own
process group, so that "Ctrl-C at a terminal" (SIGINT to the whole group,
workers included) can be told from "interrupt the kernel" (SIGINT to the
main process only).  After each interruption the next run in the same
context and connection must give the exact ground truth, and closing must
leave nothing behind.
"""
from __future__ import annotations

import os
import pickle
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from libertem_live_testing.checks import assert_sum_equal

#: seconds per frame the session's UDF sleeps: runs last ~2 s on two workers
DELAY_S = 0.004
NAV_SHAPE = (32, 32)
#: how long an interrupted or broken run may take to end
END_BOUND_S = 10.0


class Session:
    """The user's process; commands in, one answer line each out."""

    def __init__(self, setup: dict[str, Any], tmp: Path):
        path = tmp / "setup.pickle"
        path.write_bytes(pickle.dumps(setup))
        self.stderr = open(tmp / "session.stderr", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "libertem_live_testing.interrupt_runner", str(path)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
            start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("EOF")

    def expect(self, timeout: float, *words: str) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"the session said nothing within {timeout} s, waiting for {words}; "
                f"its stderr:\n{self._stderr()}") from None
        assert line.split(" ", 1)[0] in words, (
            f"the session said {line!r}, expected one of {words}; stderr:\n{self._stderr()}")
        return line

    def _stderr(self) -> str:
        self.stderr.flush()
        self.stderr.seek(0)
        return self.stderr.read()[-4000:]

    def send(self, cmd: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    arm: Any = None
    """For passive runs: starts an acquisition on the simulator."""

    def start(self) -> None:
        """Start a run and wait until it runs."""
        if self.arm is None:
            self.send("run")
        else:
            self.send("passive-run")
            self.expect(60, "WAIT")
            self.arm()
        self.expect(180, "START")  # after a killed worker: the pool restarts first

    def run(self, expected: np.ndarray, what: str) -> None:
        self.start()
        line = self.expect(120, "DONE")
        assert_sum_equal(np.load(line.split(" ", 1)[1]), expected, what)

    def worker_pids(self) -> list[int]:
        self.send("pids")
        return [int(p) for p in self.expect(30, "PIDS").split()[1:]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(30)
        # the pipe ends when the session's last process (workers too) is gone,
        # a moment after the session itself: the reader ends then, before the
        # test's thread check (one still reading means a process survived)
        self._reader.join(10)
        self.stderr.close()


def _interrupt(session: Session, expected: np.ndarray, deliver: Any, what: str) -> float:
    """Start a run, deliver the signal while it runs, check it ends within
    the bound; return the seconds it took.  A run that ended before the
    signal landed is tried again (the signal then hit an idle session)."""
    for _ in range(3):
        session.start()
        time.sleep(random.uniform(0.2, 0.8))
        sent = time.monotonic()
        deliver()
        line = session.expect(END_BOUND_S + 5, "INTERRUPTED", "DONE", "ERROR")
        took = time.monotonic() - sent
        if line.startswith("DONE"):
            session.expect(10, "IDLE-INTERRUPT")
            continue
        assert line.startswith("INTERRUPTED"), f"{what}: {line}"
        assert took < END_BOUND_S, f"{what}: the run took {took:.1f} s to stop"
        session.run(expected, f"the run after {what}")
        return took
    pytest.fail(f"{what}: every run ended before the signal arrived; make the runs longer")


def _session_survives(live_driver: Any, tmp_path: Path, passive: bool) -> None:
    with live_driver.scenario(NAV_SHAPE) as sc:
        setup = {"driver": live_driver.name, "params": sc.connection_params(),
                 "controller": {} if passive else sc.active_controller_params(),
                 "nav_shape": NAV_SHAPE, "delay_s": DELAY_S}
        expected = sc.expected_sum()
        session = Session(setup, tmp_path)
        if passive:
            session.arm = lambda: sc.arm_passive(None)
        try:
            session.expect(120, "READY")
            session.run(expected, "the first run")
            pid = session.proc.pid
            _interrupt(session, expected, lambda: os.kill(pid, signal.SIGINT),
                       "SIGINT to the main process (a notebook's interrupt)")
            _interrupt(session, expected, lambda: os.killpg(pid, signal.SIGINT),
                       "SIGINT to the process group (Ctrl-C at a terminal)")

            victim = session.worker_pids()[0]
            session.start()
            time.sleep(random.uniform(0.2, 0.8))
            sent = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            line = session.expect(END_BOUND_S + 5, "ERROR", "DONE")
            took = time.monotonic() - sent
            assert line.startswith("ERROR WorkerDiedError"), line
            assert "SIGKILL" in line and f"pid {victim}" in line, line
            assert took < END_BOUND_S, f"a killed worker took {took:.1f} s to end the run"
            session.run(expected, "the run after a worker was killed")
            assert victim not in session.worker_pids(), "the dead worker was not replaced"

            session.send("close")
            left = session.expect(60, "LEFT")
            assert left == 'LEFT {"threads": [], "children": [], "shm": []}', left
            assert session.proc.wait(30) == 0
        finally:
            session.stop()


class TestInterrupts:
    @pytest.mark.live_requires("active")
    def test_ctrl_c_and_killed_worker_leave_the_session_usable(
            self, live_driver: Any, tmp_path: Path) -> None:
        _session_survives(live_driver, tmp_path, passive=False)

    @pytest.mark.live_requires("passive")
    def test_ctrl_c_and_killed_worker_in_passive_mode(
            self, live_driver: Any, tmp_path: Path) -> None:
        """For drivers that have no active mode.  The simulator starts each
        acquisition: the scenario's ``arm_passive(None)``, called without a
        connection because the session's connection lives in another process."""
        if live_driver.capabilities.active:
            pytest.skip("the interrupt path is the same in both modes; checked in active mode")
        _session_survives(live_driver, tmp_path, passive=True)
