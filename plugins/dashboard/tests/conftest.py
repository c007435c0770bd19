"""A dashboard following a memory-driver acquisition loop, on real sockets."""
from __future__ import annotations

import threading
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
