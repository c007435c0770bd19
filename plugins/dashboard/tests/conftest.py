"""A dashboard following a memory-driver acquisition loop, on real sockets."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Iterator

import pytest

from libertem_live.api import LiveContext
from libertem_live_dashboard import Dashboard, demo_data
from libertem_live_dashboard.runner import Runner

NAV = (32, 32)
SIG = (64, 64)


@pytest.fixture(scope="session")
def data():
    return demo_data(NAV, SIG)


@pytest.fixture(scope="session")
def ctx() -> Iterator[LiveContext]:
    c = LiveContext(executor="inline")
    yield c
    c.close()


class Live:
    """A running dashboard and the acquisitions it follows."""

    def __init__(self, ctx, data, *, continuous: bool = True, pause_s: float = 0.05,
                 max_fps: float = 60.0, history: int = 5, host: str = "127.0.0.1",
                 token: str | None = None):
        self.dash = Dashboard(host=host, port=0, history=history, max_fps=max_fps,
                              token=token, quiet=True).start()
        self.conn = ctx.make_connection("memory").open(data=data)
        self.runner = Runner(ctx, self.conn, self.dash.state, mode="active", nav_shape=NAV,
                             continuous=continuous, frames_per_partition=64, pause_s=pause_s)
        self.thread = threading.Thread(target=self.runner.run, daemon=True)

    @property
    def port(self) -> int:
        return self.dash.server.port

    def ws_url(self, token: str | None = None) -> str:
        q = f"?token={token}" if token else ""
        return f"ws://127.0.0.1:{self.port}/ws{q}"

    def start(self) -> "Live":
        self.thread.start()
        return self

    def close(self) -> None:
        self.runner.stop()
        if self.thread.is_alive():
            self.thread.join(60)
        self.conn.close()
        self.dash.stop()


@pytest.fixture
def live(ctx, data) -> Iterator[Live]:
    lv = Live(ctx, data).start()
    yield lv
    lv.close()


class SyntheticRun:
    """The result hooks of a scan processing ``fps`` frames a second, called
    from a thread of its own, with ``backlog`` frames received but not yet
    decoded: a state the server must treat as behind the detector or not,
    without a machine that is really overloaded."""

    def __init__(self, state, fps: float = 1000.0, backlog: int = 0):
        from libertem_live.ledger import LedgerSnapshot
        self._snapshot = LedgerSnapshot
        self.state = state
        self.fps = fps
        self.backlog = backlog
        self.env = SimpleNamespace(aq=None, run_id=1, detector="memory", mode="active",
                                   nav_shape=(8, 8), sig_shape=(4, 4), udfs=[], buffers=[],
                                   damage=None, elapsed_s=1.0, ledger=None)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        processed, t0, tick = 0, time.monotonic(), 0.01
        while not self._stop.is_set():
            processed += int(self.fps * tick)
            self.env.elapsed_s = time.monotonic() - t0 + 1.0
            self.env.ledger = self._snapshot(
                expected=None, received=processed + self.backlog, dispatched=processed,
                decoded=processed, processed=processed, missing=0, first_missing=None,
                discarded_stale=0, blocked_s=0.0)
            self.state.partial(self.env)
            time.sleep(tick)

    def start(self) -> "SyntheticRun":
        self.state.started(self.env)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(5)
        self.env.outcome, self.env.error = "complete", None
        self.state.ended(self.env)
