"""The lifecycle every driver's connection shares.

Why a base class: open, idempotent close, re-open with ``with conn:``, the
ring kept between acquisitions, one acquisition receiving at a time, and
freeing shared memory when a connection is dropped without ``close()`` are
the same for every detector; a driver that writes them itself gets one of
them wrong.  A driver subclass fills in :meth:`BaseConnection._connect` /
:meth:`BaseConnection._disconnect` (its sockets), ``wait_for_acquisition``
(passive mode), ``get_active_controller`` (active mode, if it has one), and
starts each acquisition's receiver with :meth:`BaseConnection.start_stream`.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any

from libertem_live.errors import AcquisitionStateError, PassiveOnlyError
from libertem_live.sdk.receiver import Framing, ReceiveLoop
from libertem_live.transport.pool import RingPool
from libertem_live.transport.ring import RingConfig
from libertem_live.transport.stream import FrameStream


class _Resources:
    """What a connection must free even if nobody calls ``close()``: its
    streams (each stops its receiver thread) and its kept rings.  Held
    apart from the connection so that a finaliser can free them after the
    connection itself was garbage-collected."""

    def __init__(self) -> None:
        self.rings = RingPool()
        self.streams: list[FrameStream] = []
        self.active: FrameStream | None = None
        self.lock = threading.Lock()

    def track(self, stream: FrameStream) -> None:
        with self.lock:
            self.streams = [s for s in self.streams if not s.closed] + [stream]
            self.active = stream

    def close(self) -> None:
        with self.lock:
            streams, self.streams = self.streams, []
            self.active = None
        try:
            for s in streams:
                s.close()
        finally:
            self.rings.close()


class BaseConnection:
    """A connection to one detector; see the module docstring.

    ``timeout``: seconds without a frame before a running acquisition fails
    (also the wait for the first frame after arming).

    Memory: each acquisition receives into a ring of shared memory,
    ``buffer_size`` MiB (default: :attr:`default_ring`, 128 MiB), or exactly
    as ``ring`` says.  Nothing is allocated when the connection opens; the
    ring is made (and its pages faulted in, in the background) when the
    connection is first asked to acquire (:meth:`check_idle`, which every
    driver calls before waiting or arming), and kept until :meth:`close` so
    that later acquisitions start at full speed.  A connection that is
    garbage-collected without ``close()`` frees it too.
    """

    detector_name: str = "detector"
    default_ring: RingConfig = RingConfig()

    def __init__(self, *, timeout: float = 30.0, ring: RingConfig | None = None,
                 buffer_size: float | None = None) -> None:
        self.timeout = float(timeout)
        if ring is not None and buffer_size is not None:
            raise ValueError("pass either ring= or buffer_size= (MiB), not both")
        if ring is None and buffer_size is not None:
            ring = self.default_ring.resized(buffer_size)
        self.ring = ring or self.default_ring
        self._res: _Resources | None = None
        self._finalizer: weakref.finalize | None = None

    # --- what a driver fills in --------------------------------------------------------
    @property
    def source(self) -> str:
        """Names the detector in error messages ("the ... at tcp://host:port")."""
        return f"{self.detector_name} detector"

    def _connect(self) -> None:
        """Open the driver's sockets (called by :meth:`open`)."""

    def _disconnect(self) -> None:
        """Close the driver's sockets (called by :meth:`close`, after every
        receiver stopped)."""

    def wait_for_acquisition(self, timeout: float | None = None) -> Any:
        raise NotImplementedError(f"{type(self).__name__} has no passive mode")

    def get_active_controller(self, **params: Any) -> Any:
        extra = f" (got parameters {sorted(params)})" if params else ""
        raise PassiveOnlyError(
            f"the {self.detector_name} driver supports passive mode only: the detector is "
            f"armed from its own software{extra}. Use `pending = "
            "conn.wait_for_acquisition(timeout)` and `ctx.make_acquisition(conn=conn, "
            "pending_aq=pending)`")

    # --- lifecycle -------------------------------------------------------------------------
    def open(self) -> BaseConnection:
        """Connect (again, after :meth:`close`); does nothing when open."""
        if self._res is not None:
            return self
        res = _Resources()
        self._res = res
        self._finalizer = weakref.finalize(self, res.close)
        try:
            self._connect()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every receiver, free the rings, close the sockets.  Idempotent."""
        res, self._res = self._res, None
        if res is None:
            return
        try:
            res.close()
        finally:
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
            self._disconnect()

    @property
    def closed(self) -> bool:
        return self._res is None

    def __enter__(self) -> Any:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- acquisitions ------------------------------------------------------------------------
    def check_idle(self) -> None:
        """Raise unless the connection is open and no acquisition is still
        receiving on it (a driver calls this before touching its socket).
        An acquisition is about to start, so the ring for it is prepared."""
        res = self._res
        if res is None:
            raise AcquisitionStateError(
                f"this {self.detector_name} connection is closed; open a new one or use "
                "`with conn:`")
        active = res.active
        if active is not None and not active.closed:
            raise AcquisitionStateError(
                f"an acquisition is still receiving on this {self.detector_name} connection; "
                "run it (or cancel the pending acquisition) before starting the next one")
        res.rings.prepare(self.ring)

    def start_stream(self, expected: int | None, framing: Framing, *,
                     name: str | None = None, info: dict[str, Any] | None = None,
                     **loop_options: Any) -> FrameStream:
        """A new stream of ``expected`` frames, with the receive loop running
        ``framing`` in its own thread already.  ``info``: what the detector
        told about the series (``{"series": 17}``); it ends up in recordings.
        ``loop_options`` go to :class:`~libertem_live.sdk.receiver.ReceiveLoop`
        (``flush_latency``, ``end_timeout``)."""
        self.check_idle()
        res = self._res
        assert res is not None
        # the consumer's own wait is a fallback: the loop reports first and better
        stream = FrameStream(expected, ring=self.ring,
                             timeout=self.timeout + max(2.0, 0.5 * self.timeout),
                             source=self.source, pool=res.rings)
        stream.info.update(info or {})
        loop = ReceiveLoop(stream, framing, timeout=self.timeout, source=self.source,
                           name=name or f"libertem-live-{self.detector_name}-receiver",
                           **loop_options)
        res.track(stream)
        loop.start()
        return stream

    @property
    def active_stream(self) -> FrameStream | None:
        """The stream of the acquisition receiving now, if any."""
        res = self._res
        if res is None or res.active is None or res.active.closed:
            return None
        return res.active
