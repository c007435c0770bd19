"""Client for the Merlin control port: ``GET``/``SET``/``CMD`` as MPX messages.

Requests go out in the plain form (``GET,NAME``); real detectors driven by
LT-live received ``GET,NAME,0``: pass ``dummy_suffix=True`` to send that
instead.  Replies are read as whole MPX messages (through the core's
:class:`~libertem_live.driver.TcpReader`, never one ``recv``) and checked
to echo our verb and name, so a reply that belongs to another request is
caught instead of silently misread.  Non-zero status codes become
:class:`~.errors.MerlinControlError` subclasses that say what to do.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Optional, Union

from libertem_live.driver import (
    DetectorConnectionError, IdleTimeout, PeerClosed, Stalled, TcpReader, Truncated,
)

from .errors import MerlinControlTimeout, MerlinProtocolError, control_error
from .wire import PREFIX_LEN, build_message, parse_prefix

log = logging.getLogger(__name__)

Value = Union[str, int, float]
MAX_REPLY = 1 << 20  # a control reply longer than this is garbage
_HINT = "Is the Merlin software running and the control port right (default 6341)?"


class ControlClient:
    """A connection to the control port; usable as a context manager.

    ``timeout`` bounds connecting and each reply (seconds).  Thread-safe: one
    request/reply exchange at a time.  ``connect`` tries once (a refused
    connection fails at once); see :class:`ReconnectingControl` for a client
    that waits for a restarting Merlin.
    """

    reconnect_timeout = 0.0

    def __init__(self, host: str = "127.0.0.1", port: int = 6341, timeout: float = 5.0,
                 dummy_suffix: bool = False, short_replies: bool = False):
        self.host = host
        self.port = int(port)
        self.timeout = float(timeout)
        self.dummy_suffix = dummy_suffix
        # upstream's CameraSim announces reply lengths one byte short (no +1 for
        # the comma), cutting off the status digit: read it separately
        self.short_replies = short_replies
        self._reader = TcpReader(host, self.port, where=self.where, hint=_HINT,
                                 stall_timeout=self.timeout, connect_timeout=self.timeout)
        self._lock = threading.Lock()
        self._last_request = ""

    @property
    def where(self) -> str:
        return f"the Merlin control port tcp://{self.host}:{self.port}"

    # -- connection ----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._reader.connected

    def connect(self) -> ControlClient:
        if not self._reader.connected:
            self._reader.connect(timeout=self.reconnect_timeout)
        return self

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> ControlClient:
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
            self._last_request = text
            reply = self._exchange(text).decode("latin-1")
        fields = reply.split(",")
        if len(fields) < 2 or fields[0].strip() != verb or fields[1].strip().upper() != name.upper():
            raise MerlinProtocolError(
                f"reply {reply!r} does not answer request {text!r}")
        return [f.strip() for f in fields]

    def _exchange(self, text: str) -> bytes:
        """Send one request, read its reply; a connection that failed half-way
        is closed (the next request starts on a fresh one)."""
        r = self._reader
        assert r.sock is not None
        try:
            r.sock.sendall(build_message(text.encode("latin-1")))
            deadline = time.monotonic() + self.timeout
            start = r.offset
            prefix = r.read_exactly(PREFIX_LEN, deadline=deadline, what="a reply's MPX prefix")
            n = parse_prefix(prefix, start)
            if n > MAX_REPLY:
                raise MerlinProtocolError(
                    f"{self.where}: the reply to {text!r} announces {n} bytes, more than "
                    f"the limit of {MAX_REPLY} (prefix {bytes(prefix)!r})")
            raw = bytes(r.read_exactly(n, at_boundary=False, what=f"the reply to {text!r}"))
            if self.short_replies and raw.endswith(b","):
                raw += bytes(r.read_exactly(1, at_boundary=False,
                                            what="the cut-off status digit"))
            return raw
        except (IdleTimeout, Stalled) as e:
            r.close()
            raise MerlinControlTimeout(
                f"no reply to {text!r} from {self.where} within {self.timeout:g} s ({e}); "
                "is the Merlin software responding?") from None
        except (PeerClosed, Truncated, OSError) as e:
            r.close()
            raise DetectorConnectionError(
                f"{self.where} closed the connection during {text!r} ({e}); the Merlin "
                "software stopped or restarted") from None
        except MerlinProtocolError:
            r.close()
            raise

    def _check_status(self, verb: str, name: str, value: Optional[str], status: str,
                      fields: list[str]) -> None:
        if not status.isdigit():
            raise MerlinProtocolError(
                f"{verb} {name}: status field {status!r} of reply {','.join(fields)!r} "
                f"is not a number")
        code = int(status)
        if code != 0:
            raise control_error(verb, name, value, code, self._last_request)


class ReconnectingControl(ControlClient):
    """A :class:`ControlClient` that survives a restart of the Merlin software:
    connecting retries with back-off for ``reconnect_timeout`` s, and a request
    that fails because the connection is gone is retried once on a fresh
    connection.  Time-outs and status errors (busy, unknown, out of range)
    are never retried: they are answers, or the lack of one."""

    def __init__(self, host: str, port: int, timeout: float = 5.0,
                 reconnect_timeout: float = 10.0, dummy_suffix: bool = False,
                 short_replies: bool = False):
        super().__init__(host, port, timeout=timeout, dummy_suffix=dummy_suffix,
                         short_replies=short_replies)
        self.reconnect_timeout = float(reconnect_timeout)

    def _request(self, verb: str, name: str, value: Optional[str]) -> list[str]:
        try:
            return super()._request(verb, name, value)
        except MerlinControlTimeout:
            raise
        except DetectorConnectionError as e:
            log.warning("%s: %s %s failed (%s); reconnecting and retrying once",
                        self.where, verb, name, e)
            self.close()
        return super()._request(verb, name, value)

    def detector_idle(self) -> Optional[bool]:
        """Whether ``DETECTORSTATUS`` says idle (0), asked only on a connection
        that is already open and never retried; None when it cannot tell.
        For the receiver, which must not block on reconnecting."""
        if not self.connected or not self._lock.acquire(timeout=0.5):
            return None
        try:
            if not self.connected:
                return None
            self._last_request = "GET,DETECTORSTATUS"
            reply = self._exchange(self._last_request).decode("latin-1").split(",")
        except Exception as e:  # noqa: BLE001 - a failed probe only means "cannot tell"
            log.debug("%s: DETECTORSTATUS probe failed: %s", self.where, e)
            return None
        finally:
            self._lock.release()
        if len(reply) != 4 or reply[0] != "GET" or reply[3].strip() != "0":
            return None
        return reply[2].strip() == "0"


__all__ = ["ControlClient", "ReconnectingControl", "Value"]
