"""Connection to a Quantum Detectors Merlin (control port + data port).

The data socket is connected when the connection opens, before anything is
armed, and kept for the connection's lifetime (passive mode: one socket
across acquisitions, as the Merlin software expects).  Stale frames of an
acquisition nobody consumed are skipped message by message while looking
for the next acquisition header; a lost connection (Merlin software
restarted) is re-established with back-off.  One acquisition receives on
the socket at a time.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any, Optional

from libertem_live.errors import AcquisitionStateError, NavShapeError
from libertem_live.pending import PendingStream
from libertem_live.protocols import FrameFormat
from libertem_live.reconnect import connect_with_backoff
from libertem_live.transport.pool import RingPool
from libertem_live.transport.stream import FrameStream, RingConfig
from libertem_live.transport.thread import ReceiverThread

from .control import MerlinControl, Value
from .controller import MerlinActiveController
from .decode import MerlinDecoder
from .errors import MerlinConnectionClosed, MerlinTruncatedError
from .headers import AcquisitionHeader, FrameHeader
from .receiver import DataChannel, FrameReceiver, frame_format_for

log = logging.getLogger(__name__)


class ReconnectingControl(MerlinControl):
    """A :class:`MerlinControl` that survives a restart of the Merlin software:
    a request that fails because the connection is gone is retried once on a
    fresh connection (connecting retries with back-off for
    ``reconnect_timeout`` s).  Status errors (busy, unknown, out of range) are
    never retried: they are answers, not connection failures."""

    def __init__(self, host: str, port: int, timeout: float = 5.0,
                 reconnect_timeout: float = 10.0, dummy_suffix: bool = False,
                 short_replies: bool = False):
        super().__init__(host, port, timeout=timeout, dummy_suffix=dummy_suffix,
                         short_replies=short_replies)
        self.reconnect_timeout = reconnect_timeout

    @property
    def where(self) -> str:
        return f"the Merlin control port tcp://{self.host}:{self.port}"

    def connect(self) -> ReconnectingControl:
        if self._sock is None:
            connect_with_backoff(
                super().connect, where=self.where, timeout=self.reconnect_timeout,
                hint="Is the Merlin software running and the control port right "
                     "(default 6341)?")
        return self

    def _request(self, verb: str, name: str, value: Optional[str]) -> list[str]:
        try:
            return super()._request(verb, name, value)
        except (OSError, MerlinConnectionClosed, MerlinTruncatedError) as e:
            if isinstance(e, TimeoutError) and not isinstance(e, ConnectionError):
                raise
            log.warning("%s: %s %s failed (%s); reconnecting and retrying once",
                        self.where, verb, name, e)
            self.close()
        return super()._request(verb, name, value)


class MerlinPending(PendingStream):
    """An acquisition the Merlin announced (passive mode); frames are being
    received into its stream from the moment it was found."""

    def __init__(self, conn: MerlinConnection, hdr: AcquisitionHeader,
                 first: tuple[bytes, FrameHeader], fmt: FrameFormat):
        self._conn = conn
        self.header = hdr
        self.acquisition_header = dict(hdr.raw)
        self.nimages = hdr.frames_in_acquisition
        nav = hdr.nav_shape
        if nav is not None and nav[0] * nav[1] != self.nimages:
            log.warning("ScanY x ScanX = %s does not match the %d frames announced; "
                        "ignoring the scan shape", nav, self.nimages)
            nav = None
        self.nav_shape: tuple[int, ...] | None = nav
        self.format = fmt
        self._stream: FrameStream | None = conn._start_receiver(hdr, self.nimages, first,
                                                                None)



    def __repr__(self) -> str:
        return f"<MerlinPending nimages={self.nimages} nav_shape={self.nav_shape}>"


class MerlinConnection:
    """``ctx.make_connection('merlin').open(api_host=..., api_port=6341,
    data_host=..., data_port=6342)``.

    ``timeout`` (s): without data for that long a running acquisition fails
    (AcquisitionTimeoutError saying how many frames came), also the wait for
    the first frame after arming.  ``reconnect_timeout`` (s): how long a lost
    control or data connection is retried before DetectorConnectionError.
    ``drain`` (s): discard what arrives on the data port for that long after
    connecting (old Merlin versions send garbage first; never with internal
    triggering, which may already be sending).  ``dummy_suffix``: send
    ``GET,NAME,0`` like upstream instead of ``GET,NAME``.  ``short_replies``:
    talk to upstream's simulator, whose reply length fields are one byte short.
    """

    detector_name = "merlin"

    def __init__(self, api_host: str = "127.0.0.1", api_port: int = 6341,
                 data_host: str = "127.0.0.1", data_port: int = 6342, *,
                 timeout: float = 30.0, reconnect_timeout: float = 10.0,
                 control_timeout: float = 5.0, drain: float | None = None,
                 ring: RingConfig | None = None, rcvbuf: int | None = None,
                 dummy_suffix: bool = False, short_replies: bool = False):
        self.api_host, self.api_port = api_host, int(api_port)
        self.data_host, self.data_port = data_host, int(data_port)
        self.timeout = timeout
        self.reconnect_timeout = reconnect_timeout
        self.control_timeout = control_timeout
        self.drain = drain
        self.ring = ring or RingConfig()
        self.dummy_suffix = dummy_suffix
        self.short_replies = short_replies
        self._channel = DataChannel(data_host, data_port, timeout=timeout,
                                    reconnect_timeout=reconnect_timeout, rcvbuf=rcvbuf)
        self._control: Optional[ReconnectingControl] = None
        self._lock = threading.Lock()
        self._active: FrameStream | None = None
        self._streams: list[FrameStream] = []
        self._rings: RingPool | None = None
        self._open = False
        #: shared-memory names of the last rings this connection's streams used
        #: (diagnostics: each must be gone from /dev/shm once its run ended)
        self.ring_names: list[str] = []
        self.open()

    @property
    def where(self) -> str:
        return self._channel.where

    # --- lifecycle ---------------------------------------------------------------
    def open(self) -> MerlinConnection:
        if self._open:
            return self
        self._channel.connect()
        self._rings = RingPool()
        self._rings.prepare(self.ring)
        self._open = True
        if self.drain:
            self._drain_for(self.drain)
        return self

    def _drain_for(self, seconds: float) -> None:
        ch = self._channel
        buf = bytearray(65536)
        deadline = time.monotonic() + seconds
        assert ch.sock is not None
        n = 0
        while time.monotonic() < deadline:
            try:
                k = ch.sock.recv_into(buf)
            except BlockingIOError:
                continue
            if k == 0:
                ch.mark_broken("closed while draining")
                break
            n += k
        if n:
            log.info("drained %d bytes from %s after connecting", n, self.where)

    def close(self) -> None:
        with self._lock:
            streams, self._streams = self._streams, []
        for s in streams:
            s.close()
        if self._rings is not None:
            self._rings.close()
            self._rings = None
        self._active = None
        self._channel.close()
        if self._control is not None:
            self._control.close()
            self._control = None
        self._open = False

    @property
    def closed(self) -> bool:
        return not self._open

    def __enter__(self) -> MerlinConnection:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- control plane -------------------------------------------------------------
    def get_control(self) -> MerlinControl:
        """The connected control client (``get``/``set``/``cmd``); it reconnects
        by itself when the Merlin software was restarted."""
        if not self._open:
            raise AcquisitionStateError(
                "this Merlin connection is closed; open a new one or use `with conn:`")
        if self._control is None:
            self._control = ReconnectingControl(
                self.api_host, self.api_port, timeout=self.control_timeout,
                reconnect_timeout=self.reconnect_timeout, dummy_suffix=self.dummy_suffix,
                short_replies=self.short_replies)
        return self._control.connect()

    def get_active_controller(self, **settings: Any) -> MerlinActiveController:
        """An active controller; see :class:`MerlinActiveController` for the settings."""
        return MerlinActiveController(**settings)

    # --- data plane ---------------------------------------------------------------------
    def _check_idle(self) -> DataChannel:
        if not self._open:
            raise AcquisitionStateError(
                "this Merlin connection is closed; open a new one or use `with conn:`")
        active = self._active
        if active is not None and not active.closed:
            raise AcquisitionStateError(
                "an acquisition is still receiving on this Merlin connection; run it (or "
                "cancel the pending acquisition) before starting the next one")
        return self._channel

    def _start_receiver(self, hdr: AcquisitionHeader, nimages: int,
                        first: Optional[tuple[bytes, FrameHeader]],
                        expect: Optional[MerlinDecoder]) -> FrameStream:
        ch = self._check_idle()
        # the receiver's idle timeout fires first, with the better message
        stream = FrameStream(nimages, ring=self.ring, timeout=self.timeout * 1.5 + 2.0,
                             source="Merlin detector", pool=self._rings)
        receiver = FrameReceiver(ch, hdr, nimages, peeked=first, expect=expect)
        ReceiverThread(stream, receiver, name="libertem-live-merlin-receiver").start()
        with self._lock:
            self._streams = [s for s in self._streams if not s.closed] + [stream]
            self._active = stream
            self.ring_names = (self.ring_names + [stream.spec.name])[-16:]
        return stream

    def wait_for_acquisition(self, timeout: float | None = None) -> MerlinPending | None:
        """Wait for an acquisition started by other software; None after ``timeout`` s.

        Returns once its header *and first frame* arrived (the first frame
        defines the format, so this waits for the trigger).  A header whose
        first frame does not come in time is kept, and the next call goes on
        waiting for that frame.
        """
        ch = self._check_idle()
        deadline = None if timeout is None else time.monotonic() + timeout
        hdr = ch.find_header(deadline)
        if hdr is None:
            return None
        if hdr.frames_in_acquisition <= 0:
            ch.pending_hdr = None
            raise NavShapeError(
                f"{self.where} announced a continuous acquisition (Frames in Acquisition "
                f"{hdr.frames_in_acquisition}); LiberTEM needs a fixed frame count: set "
                "NUMFRAMESTOACQUIRE to the scan size")
        first = ch.peek_first_frame(deadline)
        if first is None:
            return None
        fmt = frame_format_for(first[1], hdr)
        hdr, first = ch.take_acquisition()
        assert first is not None
        return MerlinPending(self, hdr, first, fmt)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (f"<MerlinConnection {state} control=tcp://{self.api_host}:{self.api_port} "
                f"data=tcp://{self.data_host}:{self.data_port}>")


def open_connection(**params: Any) -> MerlinConnection:
    return MerlinConnection(**params)


__all__ = ["MerlinConnection", "MerlinPending", "ReconnectingControl", "open_connection",
           "Value"]
