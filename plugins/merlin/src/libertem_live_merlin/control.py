"""Control client for the Merlin control port (protocols.md 2.3).

Requests go out in the plain form (``GET,NAME``); real detectors driven by
LT-live received ``GET,NAME,0`` — pass ``dummy_suffix=True`` to send that
instead. Replies are read as whole MPX messages (never one ``recv``) and
checked to echo our verb and name, so a reply that belongs to another request
is caught instead of silently misread. Non-zero status codes become
:class:`MerlinControlError` subclasses that say what to do.
"""
from __future__ import annotations

import socket
import threading
from typing import Optional, Union

from .errors import MerlinProtocolError, control_error
from .mpx import MpxReader, build_message

Value = Union[str, int, float]


class MerlinControl:
    """A connection to the control port; usable as a context manager.

    ``timeout`` bounds connecting and each reply (seconds). Thread-safe: one
    request/reply exchange at a time.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 6341, timeout: float = 5.0,
                 dummy_suffix: bool = False, short_replies: bool = False):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.dummy_suffix = dummy_suffix
        # upstream's CameraSim announces reply lengths one byte short (no +1 for
        # the comma), cutting off the status digit: read it separately
        self.short_replies = short_replies
        self._sock: Optional[socket.socket] = None
        self._reader: Optional[MpxReader] = None
        self._lock = threading.Lock()

    # -- connection ----------------------------------------------------------------

    def connect(self) -> "MerlinControl":
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._reader = MpxReader(sock, timeout=self.timeout)
        return self

    def close(self) -> None:
        sock, self._sock, self._reader = self._sock, None, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> "MerlinControl":
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests --------------------------------------------------------------------

    def get(self, name: str) -> str:
        """Value of parameter ``name`` as text."""
        fields = self._request("GET", name, None)
        if len(fields) < 4:
            raise MerlinProtocolError(
                f"GET {name}: reply {','.join(fields)!r} has {len(fields)} fields, "
                f"expected GET,NAME,VALUE,STATUS")
        value = ",".join(fields[2:-1])
        self._check_status("GET", name, None, fields[-1], fields)
        return value

    def get_int(self, name: str) -> int:
        v = self.get(name)
        try:
            return int(v)
        except ValueError:
            raise MerlinProtocolError(f"GET {name}: value {v!r} is not an integer") from None

    def set(self, name: str, value: Value) -> None:
        """Set parameter ``name``; raises on a non-zero status."""
        text = str(value)
        fields = self._request("SET", name, text)
        if len(fields) != 3:
            raise MerlinProtocolError(
                f"SET {name}={text}: reply {','.join(fields)!r} has {len(fields)} "
                f"fields, expected SET,NAME,STATUS")
        self._check_status("SET", name, text, fields[2], fields)

    def cmd(self, name: str) -> None:
        """Run command ``name`` (STARTACQUISITION, SOFTTRIGGER, ...)."""
        fields = self._request("CMD", name, None)
        if len(fields) != 3:
            raise MerlinProtocolError(
                f"CMD {name}: reply {','.join(fields)!r} has {len(fields)} fields, "
                f"expected CMD,NAME,STATUS")
        self._check_status("CMD", name, None, fields[2], fields)

    # -- internals -------------------------------------------------------------------

    def _request(self, verb: str, name: str, value: Optional[str]) -> list[str]:
        if "," in name or (value is not None and "," in value):
            raise ValueError(f"{verb} {name}: names and values cannot contain ','")
        text = f"{verb},{name}"
        if value is not None:
            text += f",{value}"
        elif self.dummy_suffix:
            text += ",0"
        with self._lock:
            self.connect()
            assert self._sock is not None and self._reader is not None
            self._last_request = text
            self._sock.sendall(build_message(text.encode("latin-1")))
            raw = bytes(self._reader.read_message())
            if self.short_replies and raw.endswith(b","):
                raw += bytes(self._reader.recv_exactly(1, what="the cut-off status digit"))
            reply = raw.decode("latin-1")
        fields = reply.split(",")
        if len(fields) < 2 or fields[0].strip() != verb or fields[1].strip().upper() != name.upper():
            raise MerlinProtocolError(
                f"reply {reply!r} does not answer request {text!r}")
        return [f.strip() for f in fields]

    def _check_status(self, verb: str, name: str, value: Optional[str], status: str,
                      fields: list[str]) -> None:
        if not status.isdigit():
            raise MerlinProtocolError(
                f"{verb} {name}: status field {status!r} of reply {','.join(fields)!r} "
                f"is not a number")
        code = int(status)
        if code != 0:
            raise control_error(verb, name, value, code, self._last_request)
