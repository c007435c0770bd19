"""Connection to a Quantum Detectors Merlin (control port + data port).

The data socket is connected when the connection opens, before anything is
armed, and kept for the connection's lifetime (passive mode: one socket
across acquisitions, as the Merlin software expects).  Stale frames of an
acquisition nobody consumed are skipped message by message while looking
for the next acquisition header; a lost connection (Merlin software
restarted) is re-established with back-off.  Open/close, the ring and "one
acquisition at a time" are the core's :class:`BaseConnection`.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Optional

from libertem_live.driver import (
    AcquisitionTimeoutError, BaseConnection, DetectorConnectionError, FrameFormat,
    FrameStream, NavShapeError, PeerClosed, PendingStream, RingConfig, Stalled, Truncated,
)

from .client import ControlClient, ReconnectingControl
from .controller import MerlinActiveController
from .decode import MerlinDecoder
from .headers import AcquisitionHeader
from .receiver import DataPort, MerlinFraming, Peeked
from .wire import frame_format_for

log = logging.getLogger(__name__)


class MerlinPending(PendingStream):
    """An acquisition the Merlin announced (passive mode); frames are being
    received into its stream from the moment it was found."""

    def __init__(self, stream: FrameStream, hdr: AcquisitionHeader, fmt: FrameFormat):
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
        self._stream: FrameStream | None = stream

    def __repr__(self) -> str:
        return f"<MerlinPending nimages={self.nimages} nav_shape={self.nav_shape}>"


class MerlinConnection(BaseConnection):
    """``ctx.make_connection('merlin').open(api_host=..., api_port=6341,
    data_host=..., data_port=6342)``.

    ``timeout`` (s): without data for that long a running acquisition fails
    (AcquisitionTimeoutError saying how many frames came), also the wait for
    the first frame after arming and for the rest of a frame that stalled.
    ``reconnect_timeout`` (s): how long a lost control or data connection is
    retried before DetectorConnectionError.  ``drain`` (s): discard what
    arrives on the data port for that long after connecting (old Merlin
    versions send garbage first; never with internal triggering, which may
    already be sending).  ``dummy_suffix``: send ``GET,NAME,0`` like upstream
    instead of ``GET,NAME``.  ``short_replies``: talk to upstream's simulator,
    whose reply length fields are one byte short.  ``buffer_size``: MiB of
    shared memory each acquisition receives into (default 128), allocated at
    the first acquisition and kept until ``close()``.
    """

    detector_name = "merlin"

    def __init__(self, api_host: str = "127.0.0.1", api_port: int = 6341,
                 data_host: str = "127.0.0.1", data_port: int = 6342, *,
                 timeout: float = 30.0, reconnect_timeout: float = 10.0,
                 control_timeout: float = 5.0, drain: float | None = None,
                 ring: RingConfig | None = None, rcvbuf: int | None = None,
                 dummy_suffix: bool = False, short_replies: bool = False,
                 buffer_size: float | None = None):
        super().__init__(timeout=timeout, ring=ring, buffer_size=buffer_size)
        self.api_host, self.api_port = api_host, int(api_port)
        self.data_host, self.data_port = data_host, int(data_port)
        self.reconnect_timeout = reconnect_timeout
        self.control_timeout = control_timeout
        self.drain = drain
        self.dummy_suffix = dummy_suffix
        self.short_replies = short_replies
        self._port = DataPort(data_host, data_port, timeout=timeout,
                              reconnect_timeout=reconnect_timeout, rcvbuf=rcvbuf)
        self._control: Optional[ReconnectingControl] = None
        #: shared-memory names of the last rings this connection's streams used
        #: (diagnostics: each must be gone from /dev/shm once its run ended)
        self.ring_names: list[str] = []
        self.open()

    @property
    def source(self) -> str:
        return f"Merlin detector at tcp://{self.data_host}:{self.data_port}"

    @property
    def where(self) -> str:
        return self._port.where

    # --- lifecycle -------------------------------------------------------------------
    def _connect(self) -> None:
        self._port.connect()
        if self.drain:
            self._drain_for(self.drain)

    def _disconnect(self) -> None:
        self._port.close()
        if self._control is not None:
            self._control.close()
            self._control = None

    def _drain_for(self, seconds: float) -> None:
        sock = self._port.reader.sock
        assert sock is not None
        buf = bytearray(65536)
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            try:
                k = sock.recv_into(buf)
            except (BlockingIOError, TimeoutError):
                continue
            if k == 0:
                self._port.reader.mark_broken("closed while draining")
                break
            n += k
        if n:
            log.info("drained %d bytes from %s after connecting", n, self.where)

    # --- control plane -------------------------------------------------------------
    def get_control(self) -> ControlClient:
        """The connected control client (``get``/``set``/``cmd``); it reconnects
        by itself when the Merlin software was restarted."""
        self.check_open()
        if self._control is None:
            self._control = ReconnectingControl(
                self.api_host, self.api_port, timeout=self.control_timeout,
                reconnect_timeout=self.reconnect_timeout, dummy_suffix=self.dummy_suffix,
                short_replies=self.short_replies)
        return self._control.connect()

    def check_open(self) -> None:
        """Raise unless the connection is open."""
        if self.closed:
            self.check_idle()  # raises the core's "connection is closed" error

    def _detector_idle(self) -> Optional[bool]:
        """For the receiver: DETECTORSTATUS over a control connection that
        is open already (a receiver never opens one: in passive mode another
        program may own the control port)."""
        control = self._control
        return None if control is None else control.detector_idle()

    def get_active_controller(self, **settings: Any) -> MerlinActiveController:
        """An active controller; see :class:`MerlinActiveController` for the settings."""
        return MerlinActiveController(**settings)

    # --- data plane ------------------------------------------------------------------
    def _start(self, hdr: AcquisitionHeader, nimages: int, first: Optional[Peeked],
               expect: Optional[MerlinDecoder]) -> FrameStream:
        framing = MerlinFraming(self._port, hdr, nimages, peeked=first, expect=expect,
                                probe=self._detector_idle)
        stream = self.start_stream(nimages, framing)
        stream.on_close(framing.release)
        self.ring_names = (self.ring_names + [stream.spec.name])[-16:]
        return stream

    def discard_stale(self) -> int:
        """Discard what is buffered on the data port (frames or headers of
        acquisitions nobody consumed), without waiting; how many messages."""
        self.check_idle()
        return self._port.drain_available()

    def receive_next(self, nimages: int, *, expect: Optional[MerlinDecoder] = None,
                     header_timeout: float = 10.0) -> FrameStream:
        """Active mode: wait for the acquisition header that the detector
        sends on ``CMD STARTACQUISITION``, then receive its ``nimages``
        frames (the first must match ``expect``, the format the settings
        predicted) in the background."""
        self.check_idle()
        hdr = self._find_header(time.monotonic() + header_timeout)
        if hdr is None:
            raise AcquisitionTimeoutError(
                f"CMD STARTACQUISITION was accepted, but no acquisition header came on "
                f"{self.where} within {header_timeout:g} s: is the data port right, "
                "and is no other client connected to it?")
        if hdr.frames_in_acquisition != nimages:
            self._port.pending_hdr = None
            raise NavShapeError(
                f"the Merlin announced {hdr.frames_in_acquisition} frames after "
                f"NUMFRAMESTOACQUIRE was set to {nimages} (the scan size); check the "
                "detector settings")
        hdr, _ = self._port.take_acquisition()
        return self._start(hdr, nimages, None, expect)

    def _find_header(self, deadline: Optional[float]) -> Optional[AcquisitionHeader]:
        return self._port.find_header(deadline)

    def wait_for_acquisition(self, timeout: float | None = None) -> MerlinPending | None:
        """Wait for an acquisition started by other software; None after ``timeout`` s.

        Returns once its header *and first frame* arrived (the first frame
        defines the format, so this waits for the trigger).  A header whose
        first frame does not come in time is kept, and the next call goes on
        waiting for that frame.
        """
        self.check_idle()
        deadline = None if timeout is None else time.monotonic() + timeout
        port = self._port
        hdr = self._find_header(deadline)
        if hdr is None:
            return None
        if hdr.frames_in_acquisition <= 0:
            port.pending_hdr = None
            raise NavShapeError(
                f"{self.where} announced a continuous acquisition (Frames in Acquisition "
                f"{hdr.frames_in_acquisition}); LiberTEM needs a fixed frame count: set "
                "NUMFRAMESTOACQUIRE to the scan size")
        try:
            first = port.peek_first_frame(float("inf") if deadline is None else deadline)
        except Stalled:
            raise AcquisitionTimeoutError(
                f"{self.where} stopped sending in the middle of the first frame's header "
                f"for {self.timeout:g} s") from None
        except (PeerClosed, Truncated) as e:
            raise DetectorConnectionError(
                f"{self.where} closed the connection before the first frame ({e}); the "
                "Merlin software stopped or restarted. Start the acquisition again") from None
        if first is None:
            return None
        fmt = frame_format_for(first[1], hdr)
        hdr, first = port.take_acquisition()
        assert first is not None
        stream = self._start(hdr, hdr.frames_in_acquisition, first, None)
        return MerlinPending(stream, hdr, fmt)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (f"<MerlinConnection {state} control=tcp://{self.api_host}:{self.api_port} "
                f"data=tcp://{self.data_host}:{self.data_port}>")


def open_connection(**params: Any) -> MerlinConnection:
    return MerlinConnection(**params)


__all__ = ["MerlinConnection", "MerlinPending", "open_connection"]
