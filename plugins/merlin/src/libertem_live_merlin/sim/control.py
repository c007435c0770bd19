"""Control-port server of the simulator: MPX-framed GET/SET/CMD requests.

MPX-framed, with the **correct** MPX length (+1, unlike
upstream's simulator). Both request forms are accepted: plain
(``GET,IMAGEX``) and with LT-live's dummy suffix (``GET,IMAGEX,0``). Replies:
``GET,NAME,VALUE,STATUS``, ``SET,NAME,STATUS``, ``CMD,NAME,STATUS``; a
request with an unknown verb or field count gets its own text echoed with
status 2. The meaning of names and values lives in the backend (the
simulator); this module only speaks the protocol and handles connections
(any number of control clients, one thread each).
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import Optional, Protocol

from ..errors import MerlinProtocolError
from ..wire import PREFIX_LEN, build_message, parse_prefix
from .net import Waker, make_listener, wait_readable

log = logging.getLogger(__name__)

STATUS_OK, STATUS_BUSY, STATUS_UNKNOWN, STATUS_RANGE = 0, 1, 2, 3


class ControlBackend(Protocol):
    def control_get(self, name: str) -> tuple[str, int]: ...

    def control_set(self, name: str, value: str) -> int: ...

    def control_cmd(self, name: str) -> int: ...


def handle_request(payload: bytes | bytearray, backend: ControlBackend) -> bytes:
    """Turn one request payload into the reply payload."""
    text = bytes(payload).decode("latin-1")
    parts = [p.strip() for p in text.split(",")]
    verb = parts[0].upper()
    # ",0" dummy suffix (LT-live) is accepted on GET and CMD
    if verb in ("GET", "CMD") and len(parts) == 3 and parts[2] == "0":
        parts = parts[:2]
    if verb == "GET" and len(parts) == 2 and parts[1]:
        name = parts[1].upper()
        value, status = backend.control_get(name)
        return f"GET,{name},{value},{status}".encode("latin-1")
    if verb == "SET" and len(parts) == 3 and parts[1]:
        name = parts[1].upper()
        status = backend.control_set(name, parts[2])
        return f"SET,{name},{status}".encode("latin-1")
    if verb == "CMD" and len(parts) == 2 and parts[1]:
        name = parts[1].upper()
        status = backend.control_cmd(name)
        return f"CMD,{name},{status}".encode("latin-1")
    return f"{text},{STATUS_UNKNOWN}".encode("latin-1")


class ControlServer:
    """Listens on the control port and answers requests via ``backend``."""

    def __init__(self, backend: ControlBackend, host: str, port: int):
        self.backend = backend
        self._listener = make_listener(host, port)
        self.port: int = self._listener.getsockname()[1]
        self._waker = Waker()
        self._stopping = False
        self._lock = threading.Lock()
        # held while a request is answered: a restart (drop_clients) drops
        # connections between requests, never between a command and its reply
        self._answering = threading.Lock()
        self._generation = 0  # drop_clients() counts up; older clients are gone
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name=f"merlin-sim-control:{self.port}")

    def start(self) -> None:
        self._thread.start()

    def _accept_loop(self) -> None:
        try:
            while True:
                ready = wait_readable([self._listener, self._waker])
                with self._lock:
                    if self._stopping:
                        return
                if self._listener not in ready:
                    continue
                try:
                    conn, _ = self._listener.accept()
                except OSError:
                    continue
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t = threading.Thread(target=self._serve, args=(conn,), daemon=True,
                                     name=f"merlin-sim-control-client:{self.port}")
                with self._lock:  # register + start atomically w.r.t. stop()
                    if self._stopping:
                        conn.close()
                        return
                    self._clients[conn] = t
                    t.start()
        finally:
            self._listener.close()

    def _serve(self, conn: socket.socket) -> None:
        stream = conn.makefile("rb")  # buffered: read(n) returns n bytes, or fewer at EOF
        generation = self._generation
        try:
            while True:
                prefix = stream.read(PREFIX_LEN)
                if len(prefix) < PREFIX_LEN:
                    return
                request = stream.read(parse_prefix(prefix))
                with self._answering:
                    if generation != self._generation:
                        return  # dropped by a restart: the request never ran
                    reply = handle_request(request, self.backend)
                    conn.sendall(build_message(reply))
        except (MerlinProtocolError, OSError, ValueError) as e:
            log.debug("control client done: %r", e)
        finally:
            with self._lock:
                self._clients.pop(conn, None)
            stream.close()
            conn.close()

    def stop(self, timeout: Optional[float] = 5.0) -> None:
        """Close the listener and every client connection; join all threads."""
        with self._lock:
            self._stopping = True
            clients = list(self._clients.items())
        self._waker.wake()
        for conn, _ in clients:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv
            except OSError:
                pass
        for _, t in clients:
            t.join(timeout)
        if self._thread.ident is not None:
            self._thread.join(timeout)
        else:  # never started: the accept loop would have closed it
            self._listener.close()
        self._waker.close()

    def drop_clients(self) -> None:
        """Close every client connection (a restart of the Merlin software);
        the port keeps listening.  Never between a command and its reply."""
        with self._answering:
            self._generation += 1
            with self._lock:
                clients = list(self._clients)
            for conn in clients:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def threads(self) -> list[threading.Thread]:
        with self._lock:
            return [self._thread, *self._clients.values()]


__all__ = ["ControlServer", "handle_request", "STATUS_OK", "STATUS_BUSY",
           "STATUS_UNKNOWN", "STATUS_RANGE"]
