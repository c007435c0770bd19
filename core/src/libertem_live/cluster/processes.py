"""A dask.distributed cluster of real processes on this machine.

Starts ``dask scheduler`` and ``dask worker`` exactly as one would on the
machines of a real cluster (the same programs, over TCP on loopback), for
trying the cluster path on one machine, for the tests and for the
benchmark.  Every wait is bounded and :meth:`ProcessCluster.close` always
leaves no process behind.  A cluster across machines is started by hand
(see the docs page on clusters); nothing here is needed for it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

#: Seconds the scheduler and the workers may take to come up (imports on a
#: busy machine are slow).
START_TIMEOUT_S = 60.0


class ClusterStartError(RuntimeError):
    """The scheduler or a worker did not come up in time."""


class ProcessCluster:
    """``with ProcessCluster(workers=2) as cluster:`` ... ``cluster.address``.

    Workers run without a nanny by default, one process and one thread each,
    so that a worker process is exactly one ``subprocess.Popen`` (a test may
    kill it).  ``env`` is added to the processes' environment.
    """

    def __init__(self, workers: int = 1, *, nthreads: int = 1, nanny: bool = False,
                 env: dict[str, str] | None = None,
                 start_timeout: float = START_TIMEOUT_S):
        self._want = workers
        self.nthreads = nthreads
        self.nanny = nanny
        self.start_timeout = start_timeout
        self._env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                     "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", **(env or {})}
        self._dir = tempfile.mkdtemp(prefix="libertem-live-cluster-")
        self.scheduler: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.address = ""

    def __enter__(self) -> ProcessCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(os.path.join(self._dir, log_name), "wb")
        try:
            return subprocess.Popen([sys.executable, "-m", *args], env=self._env,
                                    stdout=log, stderr=subprocess.STDOUT,
                                    cwd=self._dir, start_new_session=True)
        finally:
            log.close()

    def log(self, name: str) -> str:
        """The output of ``scheduler`` or ``worker-<i>`` so far (for messages)."""
        try:
            with open(os.path.join(self._dir, f"{name}.log"), "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def start(self) -> None:
        file = os.path.join(self._dir, "scheduler.json")
        self.scheduler = self._spawn(
            ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", file], "scheduler.log")
        deadline = time.monotonic() + self.start_timeout
        while not os.path.exists(file):
            if self.scheduler.poll() is not None:
                raise ClusterStartError(f"dask scheduler exited with status "
                                        f"{self.scheduler.returncode}:\n{self.log('scheduler')}")
            if time.monotonic() > deadline:
                raise ClusterStartError(f"dask scheduler did not start within "
                                        f"{self.start_timeout:g} s:\n{self.log('scheduler')}")
            time.sleep(0.05)
        for _ in range(20):  # the file may be seen before it is written completely
            try:
                with open(file) as f:
                    self.address = json.load(f)["address"]
                break
            except (ValueError, KeyError):
                time.sleep(0.05)
        for _ in range(self._want):
            self.add_worker(wait=False)
        self.wait_for_workers(self._want, deadline - time.monotonic())

    def add_worker(self, wait: bool = True) -> subprocess.Popen[bytes]:
        """Start one more worker process (and, with ``wait``, until it joined)."""
        i = len(self.workers)
        proc = self._spawn(
            ["distributed.cli.dask_worker", self.address, "--nworkers", "1",
             "--nthreads", str(self.nthreads), "--host", "127.0.0.1", "--no-dashboard",
             "--name", f"worker-{i}", "--nanny" if self.nanny else "--no-nanny",
             "--local-directory", os.path.join(self._dir, f"worker-{i}")],
            f"worker-{i}.log")
        self.workers.append(proc)
        if wait:
            self.wait_for_workers(len(self.alive_workers()), self.start_timeout)
        return proc

    def alive_workers(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.workers if p.poll() is None]

    def wait_for_workers(self, n: int, timeout: float) -> None:
        """Until the scheduler knows ``n`` workers (or ClusterStartError)."""
        if n < 1:
            return
        from distributed import Client
        with Client(self.address, timeout=max(timeout, 1.0), set_as_default=False) as client:
            try:
                client.wait_for_workers(n, timeout=max(timeout, 1.0))
            except TimeoutError:
                logs = "\n".join(self.log(f"worker-{i}") for i in range(len(self.workers)))
                raise ClusterStartError(
                    f"{n} dask worker(s) did not join the scheduler at {self.address} within "
                    f"{timeout:.0f} s:\n{logs}") from None

    def kill_worker(self, i: int) -> int:
        """SIGKILL worker process ``i``; returns its pid."""
        proc = self.workers[i]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        return proc.pid

    def pids(self) -> list[int]:
        procs = ([self.scheduler] if self.scheduler is not None else []) + self.workers
        return [p.pid for p in procs]

    def close(self, grace: float = 3.0) -> None:
        """Stop the workers and the scheduler: SIGTERM, then SIGKILL (the whole
        process group) for those still running after ``grace`` seconds in all
        (a worker busy in compiled code can take long to stop cleanly, and a
        cluster of this machine holds nothing worth waiting for)."""
        procs = list(self.workers) + ([self.scheduler] if self.scheduler is not None else [])
        for p in procs:
            if p.poll() is None:
                try:
                    p.terminate()
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for p in procs:
            try:
                p.wait(max(deadline - time.monotonic(), 0.01))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(10)
        shutil.rmtree(self._dir, ignore_errors=True)
