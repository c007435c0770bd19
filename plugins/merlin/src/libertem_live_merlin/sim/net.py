"""Socket plumbing for the simulator: listeners, wake-ups, gathered sends.

Every blocking wait in the simulator is a ``select`` on the socket it cares
about plus a wake-up socket; ``stop()`` and state changes write one byte to
the wake-up socket, so waits end on conditions, never on sleeps or polls.
"""
from __future__ import annotations

import select
import socket
from typing import Iterable, Optional, Sequence, Union

Buffer = Union[bytes, bytearray, memoryview]
IOV_BATCH = 64  # buffers per sendmsg call (well below IOV_MAX = 1024)


def make_listener(host: str, port: int, backlog: int = 4) -> socket.socket:
    """A listening TCP socket; SO_REUSEADDR allows restarting on the same port."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, port))
        s.listen(backlog)
    except OSError:
        s.close()
        raise
    return s


class Waker:
    """A socketpair used to interrupt ``select`` calls from other threads."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def fileno(self) -> int:
        return self._r.fileno()

    def wake(self) -> None:
        try:
            self._w.send(b"!")
        except (BlockingIOError, OSError):
            pass  # already pending (buffer full) or closed: either way, a wake-up is due

    def drain(self) -> None:
        try:
            while self._r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self) -> None:
        self._r.close()
        self._w.close()


def wait_readable(socks: Sequence[socket.socket | Waker],
                  timeout: Optional[float] = None) -> list:
    """``select`` for readability; returns the ready objects ([] on timeout)."""
    r, _, _ = select.select(list(socks), [], [], timeout)
    return r


def sendmsg_all(sock: socket.socket, buffers: Iterable[Buffer]) -> int:
    """Send all buffers with as few ``sendmsg`` calls as possible (no copies).

    Handles partial sends by resuming inside the buffer where the kernel
    stopped. Returns the number of bytes sent.
    """
    pending = [memoryview(b).cast("B") for b in buffers if len(b)]
    total = 0
    while pending:
        batch = pending[:IOV_BATCH]
        n = sock.sendmsg(batch)
        total += n
        i = 0
        while i < len(batch) and n >= batch[i].nbytes:
            n -= batch[i].nbytes
            i += 1
        rest = pending[i:]
        if n and rest:
            rest[0] = rest[0][n:]
        pending = rest
    return total


def shutdown_quietly(sock: Optional[socket.socket]) -> None:
    """Shut down and close ``sock``, ignoring errors (the peer may be gone).

    ``shutdown`` first wakes any thread blocked in send/recv on it.
    """
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
