"""ZeroMQ pieces for drivers whose detector pushes over ZeroMQ (DECTRIS):
a PULL socket set up the way a live stream needs, and waiting for one
message part in a way that notices stop requests and deadlines."""
from __future__ import annotations

import threading
import time

import zmq

POLL_MS = 100
"""How long one poll waits: how late a stop request is seen."""


def pull_socket(ctx: zmq.Context, endpoint: str, *, rcvhwm: int = 8192) -> zmq.Socket:
    """A connected PULL socket.  Connect it when the connection opens, before
    anything is armed: a PUSH socket drops nothing while a peer is
    connected, so no image can be lost between arming and receiving."""
    sock = ctx.socket(zmq.PULL)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def recv_part(sock: zmq.Socket, deadline: float | None,
              stop: threading.Event | None = None, poll_ms: int = POLL_MS) -> zmq.Frame | None:
    """One message part, or None once ``deadline`` (``time.monotonic()``
    seconds; None: never) passed or ``stop`` is set."""
    while True:
        if sock.poll(poll_ms, zmq.POLLIN):
            return sock.recv(copy=False)
        if stop is not None and stop.is_set():
            return None
        if deadline is not None and time.monotonic() >= deadline:
            return None


def drain_rest(sock: zmq.Socket) -> int:
    """Receive and drop the remaining parts of the current message; how many."""
    n = 0
    while sock.getsockopt(zmq.RCVMORE):
        sock.recv(copy=False)
        n += 1
    return n
