"""Reading a detector's TCP stream: exact byte counts, with every way a read
can end told apart.

Why here: each TCP detector (Merlin's data port, the TPX3 stream, a
vendor's own) needs the same reader: connect with back-off, read exactly N
bytes, notice a stop request within a poll interval, tell "nothing came"
(fine, try again) from "the peer hung up between messages" from "the
connection died half-way through a frame" from "the frame stalled".  The
answers are the signals of :mod:`libertem_live.sdk.signals`, which the
receive loop turns into the user's error.
"""
from __future__ import annotations

import logging
import math
import socket
import struct
import threading
import time
from typing import Any

from libertem_live.errors import DetectorConnectionError
from libertem_live.reconnect import connect_with_backoff
from libertem_live.sdk.signals import IdleTimeout, PeerClosed, Stalled, Stopped, Truncated

log = logging.getLogger(__name__)

POLL_S = 0.05
"""How long one blocking ``recv`` waits: how late a stop request is seen."""


class TcpReader:
    """One TCP connection to a detector and where it stands in the stream.

    ``stall_timeout``: seconds without a byte, once a message started,
    before :class:`Stalled`.  ``reconnect_timeout``: how long connecting
    retries with back-off before
    :class:`~libertem_live.errors.DetectorConnectionError`, whose message
    ends with ``hint`` (what to check).

    After a stop in the middle of a message the rest of that message is
    remembered (:attr:`skip`) and discarded before the next read, so the next
    acquisition starts on a message boundary without reconnecting.  Bytes a
    parser read too far can be given back with :meth:`push_back`.
    """

    def __init__(self, host: str, port: int, *, where: str | None = None, hint: str = "",
                 stall_timeout: float = 30.0, reconnect_timeout: float = 10.0,
                 connect_timeout: float = 5.0, rcvbuf: int | None = None,
                 poll: float = POLL_S):
        self.host, self.port = host, int(port)
        self.where = where or f"tcp://{host}:{port}"
        self.hint = hint
        self.stall_timeout = float(stall_timeout)
        self.reconnect_timeout = float(reconnect_timeout)
        self.connect_timeout = float(connect_timeout)
        self.rcvbuf = rcvbuf
        self.poll = float(poll)
        self.sock: socket.socket | None = None
        self.broken: str | None = None
        """Why the position in the stream is lost (None: it is not)."""
        self.skip = 0
        self._pushback = bytearray()
        self.connects = 0
        self.offset = 0
        """Bytes read on this connection (for error messages)."""

    # --- connecting ----------------------------------------------------------------
    def _connect_once(self) -> socket.socket:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        try:
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.rcvbuf:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
            sec = int(self.poll)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                            struct.pack("ll", sec, int((self.poll - sec) * 1e6)))
        except BaseException:
            sock.close()
            raise
        return sock

    def connect(self, stop: threading.Event | None = None, timeout: float | None = None,
                max_pause: float = 1.0) -> TcpReader:
        """(Re)connect, retrying with back-off (pauses doubling up to
        ``max_pause`` s) for ``timeout`` (default ``reconnect_timeout``) seconds."""
        self.close()
        self.sock = connect_with_backoff(
            self._connect_once, where=self.where,
            timeout=self.reconnect_timeout if timeout is None else timeout,
            hint=self.hint, stop=stop, max_pause=max_pause)
        if self.connects:
            log.warning("reconnected to %s (connection %d)", self.where, self.connects + 1)
        self.connects += 1
        self.broken = None
        self.skip = 0
        self.offset = 0
        self._pushback = bytearray()
        return self

    def try_connect(self) -> bool:
        """One attempt, no back-off: whether it worked."""
        try:
            sock = self._connect_once()
        except OSError:
            return False
        self.close()
        self.sock = sock
        self.connects += 1
        self.broken = None
        self.skip = 0
        self.offset = 0
        self._pushback = bytearray()
        return True

    def ensure(self, stop: threading.Event | None = None) -> socket.socket:
        """The socket, reconnected first if the stream position was lost."""
        if self.sock is None or self.broken is not None:
            if self.broken is not None:
                log.info("reconnecting to %s: %s", self.where, self.broken)
            self.connect(stop)
        assert self.sock is not None
        return self.sock

    @property
    def connected(self) -> bool:
        return self.sock is not None and self.broken is None

    def mark_broken(self, reason: str) -> None:
        self.broken = reason

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass

    # --- reading ---------------------------------------------------------------------
    @property
    def pushed_back(self) -> int:
        """Bytes given back with :meth:`push_back` and not read again yet (a
        batch reader that reads the socket directly must not run while any are)."""
        return len(self._pushback)

    def push_back(self, data: Any) -> None:
        """Bytes read ahead: they are returned first by the next read."""
        self._pushback[:0] = bytes(data)

    def read_into(self, view: Any, *, stop: threading.Event | None = None,
                  deadline: float | None = None, at_boundary: bool = True,
                  what: str = "a message", after: int = 0) -> None:
        """Fill ``view`` completely.

        Before the first byte of a message (``at_boundary``), waits until
        ``deadline`` (``time.monotonic()`` seconds; None: one poll interval;
        ``math.inf``: until stopped) and then raises :class:`IdleTimeout`
        with nothing consumed.  Once bytes came, :class:`Stalled` after
        ``stall_timeout`` s without progress.  EOF: :class:`PeerClosed`
        between messages, :class:`Truncated` inside one.  ``stop`` raises
        :class:`Stopped`; inside a message, the rest of it (the view's
        remainder plus ``after`` bytes) is skipped before the next read.
        """
        if self.skip:
            self._finish_skip(stop)
        mv = memoryview(view).cast("B")
        total = len(mv)
        got = 0
        if self._pushback:
            k = min(total, len(self._pushback))
            mv[:k] = self._pushback[:k]
            del self._pushback[:k]
            got = k
        sock = self.sock
        if sock is None:
            raise DetectorConnectionError(f"{self.where}: not connected")
        if deadline is None:
            deadline = time.monotonic() + self.poll
        last = time.monotonic()
        while got < total:
            try:
                n = sock.recv_into(mv[got:], total - got, socket.MSG_WAITALL)
            except (BlockingIOError, socket.timeout):
                started = got > 0 or not at_boundary
                if stop is not None and stop.is_set():
                    if started:
                        self.skip += total - got + after
                    raise Stopped(f"stopped while reading {what}") from None
                now = time.monotonic()
                if not started:
                    if now >= deadline:
                        raise IdleTimeout(f"nothing arrived while waiting for {what}") from None
                elif now - last >= self.stall_timeout:
                    self.mark_broken(f"stalled in the middle of {what}")
                    raise Stalled(f"no byte for {self.stall_timeout:g} s while reading {what}, "
                                  f"{got} of {total} bytes in") from None
                continue
            except OSError as e:
                self.mark_broken(f"socket error: {e}")
                if got == 0 and at_boundary:
                    raise PeerClosed(f"{e}") from None
                raise Truncated(f"{e} while reading {what}, {got} of {total} bytes in") from None
            if n == 0:
                self.mark_broken("connection closed by the detector")
                if got == 0 and at_boundary:
                    raise PeerClosed("between messages")
                raise Truncated(f"while reading {what}, {got} of {total} bytes in")
            got += n
            self.offset += n
            last = time.monotonic()

    def read_exactly(self, n: int, **kw: Any) -> bytearray:
        """``n`` bytes as a new bytearray; same rules as :meth:`read_into`."""
        buf = bytearray(n)
        self.read_into(buf, **kw)
        return buf

    def read_some(self, view: Any, *, stop: threading.Event | None = None) -> int:
        """Whatever arrived, up to ``len(view)`` bytes, waiting at most one
        poll interval: for batch readers that parse many frames per call.
        Returns 0 when nothing came; EOF raises :class:`PeerClosed`."""
        mv = memoryview(view).cast("B")
        if self._pushback:
            k = min(len(mv), len(self._pushback))
            mv[:k] = self._pushback[:k]
            del self._pushback[:k]
            return k
        sock = self.sock
        if sock is None:
            raise DetectorConnectionError(f"{self.where}: not connected")
        if stop is not None and stop.is_set():
            raise Stopped("stopped")
        try:
            n = sock.recv_into(mv)
        except (BlockingIOError, socket.timeout):
            return 0
        except OSError as e:
            self.mark_broken(f"socket error: {e}")
            raise PeerClosed(str(e)) from None
        if n == 0:
            self.mark_broken("connection closed by the detector")
            raise PeerClosed("end of stream")
        self.offset += n
        return n

    def discard(self, n: int, stop: threading.Event | None = None) -> None:
        """Drop ``n`` bytes (the rest of a message nobody wants)."""
        buf = bytearray(min(n, 1 << 20))
        while n > 0:
            k = min(n, len(buf))
            self.read_into(memoryview(buf)[:k], stop=stop, at_boundary=False,
                           what="a skipped message")
            n -= k

    def _finish_skip(self, stop: threading.Event | None) -> None:
        n, self.skip = self.skip, 0
        try:
            self.discard(n, stop)
        except Stopped:
            self.mark_broken("stopped while skipping an abandoned message")
            raise


FOREVER = math.inf
"""``deadline=FOREVER``: wait at a message boundary until stopped."""
