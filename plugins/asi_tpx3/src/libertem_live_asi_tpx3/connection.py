"""The ASI TPX3 DetectorConnection (passive mode).

One TCP connection to the ASI software carries acquisition after
acquisition (protocols.md 3.4). ``wait_for_acquisition`` reads it in the
caller's thread until a scan starts (AcquisitionStart, then ScanStart), then
hands the rest of the scan to a :class:`~.receiver.ScanReceiver` thread and
returns a pending acquisition whose stream is already filling. When that
scan is over, the next ``wait_for_acquisition`` continues on the same
socket. One pending acquisition is one *scan*: an acquisition with several
scans is announced once per scan (every scan has ``prod(nav_shape)``
positions).

The connection survives servers that are not up yet or restart between
acquisitions: it (re)connects with a bounded back-off while waiting, and
drops the socket after any error that loses the stream position. Between
``wait_for_acquisition`` calls nobody reads the socket; the server's data
waits in the kernel's buffers (and the server blocks), which is why a
pending acquisition should be started promptly.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

import numpy as np

from libertem_live.errors import AcquisitionStateError
from libertem_live.pending import PendingStream
from libertem_live.protocols import FrameFormat
from libertem_live.transport.pool import RingPool
from libertem_live.transport.stream import FrameStream, RingConfig

from .controller import active_mode_error
from .decode import Tpx3Decoder
from .errors import (
    Tpx3Closed, Tpx3IdleTimeout, Tpx3ProtocolError, Tpx3Stopped, Tpx3StreamError,
)
from .headers import AcquisitionEnd, AcquisitionStart, ArrayChunk, ScanEnd, ScanStart
from .receiver import ScanReceiver, describe
from .stream import Tpx3Reader

__all__ = ["Tpx3Connection", "Tpx3PendingAcquisition", "open_connection", "DEFAULT_PORT"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8283
#: dtype of decoded frames: counts and ToT are unsigned integers, uint32
#: holds any per-pixel value a frame can carry (the wire's value dtype is
#: chosen per chunk, so it cannot be used). LiberTEM then computes in
#: float64 for UDFs that prefer float32, which keeps sums exact.
FRAME_DTYPE = np.dtype(np.uint32)
#: ring size, MiB. The connection keeps its ring between scans and prepares
#: it (pages faulted in) while waiting for the first one. 64 MiB (16 slots of
#: 4 MiB) keeps both workers fed at 1000 events/frame (2048-frame partitions
#: of ~16 MB); 32 MiB made the receiver wait for slots there and halved the
#: rate. See DECODE_NOTES.md.
DEFAULT_BUFFER_MIB = 64


class Tpx3PendingAcquisition(PendingStream):
    """A scan the ASI software started; its frames are being received already."""

    def __init__(self, conn: "Tpx3Connection", acq: AcquisitionStart, stream: FrameStream,
                 receiver: ScanReceiver, frame_format: FrameFormat) -> None:
        self._conn = conn
        self._stream: FrameStream | None = stream
        self._receiver = receiver
        self.header = acq
        self.nimages = acq.nframes
        self.nav_shape: tuple[int, ...] | None = tuple(acq.nav_shape)
        self.format = frame_format
        self.taken = False

    def take_stream(self) -> FrameStream:
        stream = super().take_stream()
        self.taken = True
        return stream

    def __repr__(self) -> str:
        return (f"<Tpx3PendingAcquisition nav_shape={self.nav_shape} "
                f"sig_shape={self.format.sig_shape} sequence={self.header.sequence}>")


class Tpx3Connection:
    """Connection to the ASI software's TPX3 data stream; see the module docstring.

    ``timeout``: seconds without data inside a scan before the acquisition
    fails (AcquisitionTimeoutError). ``buffer_size`` (MiB, default 64) and
    ``bytes_per_chunk`` (bytes per ring slot) size the shared-memory ring of
    each acquisition, as in upstream's ``open``; ``ring`` overrides both.
    ``chunks_per_stack`` and ``huge_pages`` are accepted for upstream
    compatibility and have no effect (slots fill with as many chunks as fit).
    ``reconnect_interval`` caps the back-off between connection attempts.
    """

    detector_name = "asi_tpx3"

    def __init__(self, data_host: str = "127.0.0.1", data_port: int = DEFAULT_PORT, *,
                 buffer_size: int = DEFAULT_BUFFER_MIB, bytes_per_chunk: int | None = None,
                 chunks_per_stack: int | None = None, huge_pages: bool = False,
                 timeout: float = 10.0, ring: RingConfig | None = None,
                 max_frames_per_slot: int = 16384, reconnect_interval: float = 1.0,
                 connect_timeout: float = 2.0, csr_dtype: Any = np.float64) -> None:
        self.data_host = data_host
        self.data_port = int(data_port)
        self.timeout = float(timeout)
        self.reconnect_interval = float(reconnect_interval)
        self.connect_timeout = float(connect_timeout)
        self.csr_dtype = np.dtype(csr_dtype)
        if ring is None:
            slot = int(bytes_per_chunk or 4 << 20)
            slots = max(4, int(buffer_size) * (1 << 20) // slot)
            ring = RingConfig(num_slots=slots, slot_bytes=slot, max_frames=max_frames_per_slot)
        self.ring = ring
        if huge_pages or chunks_per_stack is not None:
            log.debug("asi_tpx3: huge_pages / chunks_per_stack are accepted for upstream "
                      "compatibility and ignored")
        self._sock: socket.socket | None = None
        self._reader: Tpx3Reader | None = None
        self._receiver: ScanReceiver | None = None
        self._pending: Tpx3PendingAcquisition | None = None
        self._streams: list[FrameStream] = []
        self._rings = RingPool()
        self._acq: AcquisitionStart | None = None
        self._closing = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._failures = 0
        self.connects = 0
        self._try_connect()

    @property
    def source(self) -> str:
        return f"ASI TPX3 server at {self.data_host}:{self.data_port}"

    # --- socket ------------------------------------------------------------
    def _try_connect(self) -> bool:
        """One connection attempt; logs the first failure of a series at WARNING."""
        try:
            sock = socket.create_connection((self.data_host, self.data_port),
                                            timeout=self.connect_timeout)
        except OSError as e:
            self._failures += 1
            level = logging.WARNING if self._failures == 1 else logging.DEBUG
            log.log(level, "asi_tpx3: cannot connect to %s (%s, attempt %d); retrying "
                    "while waiting for an acquisition", self.source, e, self._failures)
            return False
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        except OSError:
            pass
        if self._failures:
            log.info("asi_tpx3: connected to %s after %d failed attempts", self.source,
                     self._failures)
        self._failures = 0
        self.connects += 1
        self._sock = sock
        self._reader = Tpx3Reader(sock, stall_timeout=self.timeout, poll_interval=0.1,
                                  should_stop=self._closing.is_set, check_frame_count=False)
        self._acq = None
        return True

    def _drop_socket(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
        self._sock = None
        self._reader = None
        self._acq = None

    def _connected_reader(self, deadline: float | None) -> Tpx3Reader | None:
        """The reader, connecting with back-off until ``deadline`` (None: forever)."""
        pause = 0.05
        while self._reader is None:
            if self._closing.is_set():
                return None
            if self._try_connect():
                break
            wait = pause if deadline is None else min(pause, deadline - time.monotonic())
            if wait <= 0 or self._closing.wait(wait):
                return None
            pause = min(pause * 2, self.reconnect_interval)
        return self._reader

    # --- passive mode ------------------------------------------------------------
    def _release_previous(self, deadline: float | None) -> None:
        """Make sure no receiver thread uses the reader any more."""
        rec, pending = self._receiver, self._pending
        if rec is None:
            return
        if not rec.done.is_set() and pending is not None and not pending.taken:
            log.warning("asi_tpx3: the previous pending acquisition was never started; "
                        "cancelling it to wait for the next one")
            pending.cancel()
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not rec.done.wait(wait):
            raise AcquisitionStateError(
                "the previous ASI TPX3 acquisition is still being received; let its UDF run "
                "finish (or close its result iterator) before waiting for the next one")
        self._receiver = None
        self._pending = None
        if rec.reconnect or (self._reader is not None and self._reader.broken):
            log.info("asi_tpx3: dropping the connection to %s after a failed acquisition; "
                     "reconnecting", self.source)
            self._drop_socket()

    def _next_scan(self, reader: Tpx3Reader, deadline: float | None) -> bool:
        """Read until a ScanStart (True) or the deadline (False).

        Skips what is left of a scan that was stopped or cancelled on our
        side, so that the connection stays in step with the server.
        """
        skipped = 0
        reader.should_stop = self._closing.is_set
        if reader.pending_payload:
            reader.skip_payload()
            skipped += 1
        try:
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                try:
                    hdr = reader.read_header(timeout=left)
                except Tpx3IdleTimeout:
                    return False
                if isinstance(hdr, AcquisitionStart):
                    self._acq = hdr
                elif isinstance(hdr, ScanStart):
                    if self._acq is None:
                        raise Tpx3ProtocolError("ScanStart without AcquisitionStart")
                    return True
                elif isinstance(hdr, ArrayChunk):
                    reader.skip_payload()
                    skipped += 1
                elif isinstance(hdr, AcquisitionEnd):
                    self._acq = None
                elif isinstance(hdr, ScanEnd):
                    pass
        finally:
            if skipped:
                log.info("asi_tpx3: skipped %d chunks of an abandoned scan", skipped)

    def wait_for_acquisition(self, timeout: float | None = None
                             ) -> Tpx3PendingAcquisition | None:
        """The next scan the ASI software starts, or None after ``timeout`` seconds.

        ``timeout=None`` waits until a scan starts or the connection is closed.
        """
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        self._release_previous(deadline)
        self._rings.prepare(self.ring)
        while True:
            reader = self._connected_reader(deadline)
            if reader is None:
                return None
            try:
                if not self._next_scan(reader, deadline):
                    return None
            except Tpx3Stopped:
                return None
            except Tpx3Closed:
                log.info("asi_tpx3: %s closed the connection while idle; reconnecting",
                         self.source)
                self._drop_socket()
                continue
            except (Tpx3ProtocolError, Tpx3StreamError) as e:
                log.warning("asi_tpx3: %s between acquisitions: %s; reconnecting",
                            self.source, e)
                self._drop_socket()
                continue
            return self._announce(reader)

    def _frame_format(self, acq: AcquisitionStart) -> FrameFormat:
        decoder = Tpx3Decoder(acq.sig_shape, acq.indptr_dtype, acq.indices_dtype,
                              csr_dtype=self.csr_dtype)
        meta = describe(acq)
        if self._reader is not None and self._reader.scan_metadata:
            meta["scan_metadata"] = bytes(self._reader.scan_metadata)
        return FrameFormat(sig_shape=tuple(acq.sig_shape), dtype=FRAME_DTYPE, decoder=decoder,
                           sparse=True, metadata=meta)

    def _new_stream(self, expected: int) -> FrameStream:
        # the consumer's own timeout is a fallback; the receiver's message is more precise
        stream = FrameStream(expected, ring=self.ring, timeout=self.timeout * 1.5 + 1.0,
                             source=self.source, pool=self._rings)
        with self._lock:
            self._streams = [s for s in self._streams if not s.closed] + [stream]
        return stream

    def _announce(self, reader: Tpx3Reader) -> Tpx3PendingAcquisition:
        acq = self._acq
        assert acq is not None
        fmt = self._frame_format(acq)
        stream = self._new_stream(acq.nframes)
        receiver = ScanReceiver(reader, acq, stream, source=self.source, timeout=self.timeout)
        pending = Tpx3PendingAcquisition(self, acq, stream, receiver, fmt)
        self._receiver, self._pending = receiver, pending
        receiver.start()
        return pending

    def get_active_controller(self, **params: Any) -> Any:
        raise active_mode_error(params)

    # --- lifecycle -------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise AcquisitionStateError(
                "this ASI TPX3 connection is closed; open a new one or use `with conn:`")

    def open(self) -> "Tpx3Connection":
        if self._closed:
            self._closed = False
            self._rings = RingPool()
            self._closing.clear()
            self._try_connect()
        return self

    def close(self) -> None:
        """Stop any receiver, free its ring and close the socket. Idempotent."""
        self._closing.set()
        with self._lock:
            streams, self._streams = self._streams, []
        for s in streams:
            s.close()
        self._rings.close()
        self._receiver = None
        self._pending = None
        self._drop_socket()
        self._closed = True

    def __enter__(self) -> "Tpx3Connection":
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("connected" if self._sock else "connecting")
        return f"<Tpx3Connection {self.data_host}:{self.data_port} {state}>"


def open_connection(data_host: str = "127.0.0.1", data_port: int = DEFAULT_PORT,
                    **params: Any) -> Tpx3Connection:
    """``ctx.make_connection('asi_tpx3').open(...)``; parameters as :class:`Tpx3Connection`."""
    return Tpx3Connection(data_host, data_port, **params)
