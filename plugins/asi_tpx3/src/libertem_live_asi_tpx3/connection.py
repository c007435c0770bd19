"""The ASI TPX3 connection (passive mode).

One TCP connection to the ASI software carries acquisition after
acquisition.  ``wait_for_acquisition`` reads it in the caller's thread until
a scan starts (AcquisitionStart, then ScanStart), then hands the rest of the
scan to the core's receive loop (:class:`~.receiver.Tpx3Framing`) and
returns a pending acquisition whose stream is already filling.  When that
scan is over, the next ``wait_for_acquisition`` continues on the same
socket.  One pending acquisition is one *scan*: an acquisition with several
scans is announced once per scan (every scan has ``prod(nav_shape)``
positions).

The connection survives servers that are not up yet or restart between
acquisitions: it (re)connects with back-off while waiting, and reconnects
after any error that lost the stream position (a hang-up, a stall, invalid
bytes).  After an error that kept it (a scan that ended short, a corrupt
chunk, too many rows) or a scan stopped from our side, it skips the rest of
that scan.  Between ``wait_for_acquisition`` calls nobody reads the socket;
the server's data waits in the kernel's buffers (and the server blocks),
which is why a pending acquisition should be started promptly.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Optional

import numpy as np

from libertem_live.driver import (
    FOREVER, BaseConnection, DetectorConnectionError, FrameFormat, FrameStream, IdleTimeout,
    PeerClosed, PendingStream, RingConfig, Stalled, Stopped, TcpReader, Truncated,
)

from .decode import Tpx3Decoder
from .errors import Tpx3ProtocolError, passive_only_error
from .headers import AcquisitionStart, ArrayChunk, ScanStart, numpy_dtype
from .receiver import RECEIVER_THREAD, Tpx3Framing, Tpx3Messages

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
#: socket receive buffer: a scan row of chunks, so that the server does not
#: block while the receiver waits for a free ring slot
RCVBUF = 8 << 20


class Tpx3PendingAcquisition(PendingStream):
    """A scan the ASI software started; its frames are being received already."""

    def __init__(self, acq: AcquisitionStart, stream: FrameStream,
                 frame_format: FrameFormat) -> None:
        self._stream: FrameStream | None = stream
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


def describe(acq: AcquisitionStart) -> dict[str, Any]:
    """Metadata of an acquisition for the FrameFormat (shown to UDFs and in the ledger)."""
    return {
        "detector": "asi_tpx3",
        "format_type": "tot" if int(acq.format_type) == 1 else "counts",
        "sequence": acq.sequence,
        "version": acq.version,
        "indptr_dtype": str(numpy_dtype(acq.indptr_dtype)),
        "indices_dtype": str(numpy_dtype(acq.indices_dtype)),
    }


class Tpx3Connection(BaseConnection):
    """Connection to the ASI software's TPX3 data stream; see the module docstring.

    ``timeout``: seconds without data inside a scan before the acquisition
    fails (AcquisitionTimeoutError; StalledError in the middle of a chunk).
    ``buffer_size`` (MiB, default 64) and ``bytes_per_chunk`` (bytes per
    ring slot) size the shared-memory ring of each acquisition, as in
    upstream's ``open``; ``ring`` overrides both.  ``chunks_per_stack``,
    ``huge_pages`` and ``reconnect_interval`` are accepted for upstream
    compatibility and have no effect (slots fill with as many chunks as fit;
    reconnecting backs off from 50 ms to 1 s).
    """

    detector_name = "asi_tpx3"

    def __init__(self, data_host: str = "127.0.0.1", data_port: int = DEFAULT_PORT, *,
                 buffer_size: int = DEFAULT_BUFFER_MIB, bytes_per_chunk: int | None = None,
                 chunks_per_stack: int | None = None, huge_pages: bool = False,
                 timeout: float = 10.0, ring: RingConfig | None = None,
                 max_frames_per_slot: int = 16384, reconnect_interval: float | None = None,
                 connect_timeout: float = 2.0, csr_dtype: Any = np.float64) -> None:
        self.data_host = data_host
        self.data_port = int(data_port)
        self.csr_dtype = np.dtype(csr_dtype)
        if ring is None:
            slot = int(bytes_per_chunk or 4 << 20)
            slots = max(4, int(buffer_size) * (1 << 20) // slot)
            ring = RingConfig(num_slots=slots, slot_bytes=slot, max_frames=max_frames_per_slot)
        if huge_pages or chunks_per_stack is not None or reconnect_interval is not None:
            log.debug("asi_tpx3: huge_pages / chunks_per_stack / reconnect_interval are "
                      "accepted for upstream compatibility and ignored")
        super().__init__(timeout=timeout, ring=ring)
        self._reader = TcpReader(
            self.data_host, self.data_port, where=f"tcp://{self.data_host}:{self.data_port}",
            hint="Is the ASI software running and streaming to this host and port?",
            stall_timeout=self.timeout, connect_timeout=connect_timeout, rcvbuf=RCVBUF)
        self._msgs = Tpx3Messages(self._reader)
        self._pending: Tpx3PendingAcquisition | None = None
        self._closing = threading.Event()
        self.open()

    @property
    def source(self) -> str:
        return f"ASI TPX3 server at {self.data_host}:{self.data_port}"

    @property
    def connects(self) -> int:
        """TCP connections made so far (reconnects included)."""
        return self._reader.connects

    # --- sockets ---------------------------------------------------------------------
    def _connect(self) -> None:
        """One attempt: a server that is not up yet is waited for in
        ``wait_for_acquisition``, with back-off."""
        self._closing.clear()
        if self._reader.try_connect():
            self._msgs.reset()
        else:
            log.warning("asi_tpx3: cannot connect to %s yet; retrying while waiting for an "
                        "acquisition", self.source)

    def _disconnect(self) -> None:
        self._reader.close()
        self._msgs.reset()
        self._pending = None

    def close(self) -> None:
        """Stop any receiver, free the ring and close the socket (also wakes a
        ``wait_for_acquisition`` in another thread).  Idempotent."""
        self._closing.set()
        super().close()

    def reconnect(self) -> None:
        """Drop the data connection and connect again (upstream's name): the
        server then starts a fresh acquisition stream for us."""
        self.close()
        self.open()

    def _ensure_connected(self, deadline: Optional[float]) -> bool:
        reader = self._reader
        if reader.connected:
            return True
        if reader.broken is not None:
            log.info("asi_tpx3: reconnecting to %s: %s", self.source, reader.broken)
        left = math.inf if deadline is None else deadline - time.monotonic()
        if left <= 0:
            if not reader.try_connect():
                raise self._unreachable(0.0)
        else:
            try:
                reader.connect(self._closing, timeout=left)
            except DetectorConnectionError as e:
                if self._closing.is_set():
                    return False
                raise self._unreachable(left) from e
        self._msgs.reset()
        return True

    def _unreachable(self, waited: float) -> DetectorConnectionError:
        """Nothing listens: not the same as a server with no scan to send,
        which is what ``None`` from :meth:`wait_for_acquisition` means."""
        return DetectorConnectionError(
            f"cannot reach the ASI TPX3 server at tcp://{self.data_host}:{self.data_port}"
            + (f" (tried for {waited:.3g} s)" if waited > 0 else "")
            + ": is the ASI software running and serving its TPX3 stream on that host and "
            "port? (None from wait_for_acquisition means: connected, but no scan started)")

    # --- passive mode ------------------------------------------------------------------
    def _release_previous(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending.taken and self.active_stream is not None:
            log.warning("asi_tpx3: the previous pending acquisition was never started; "
                        "cancelling it to wait for the next one")
            pending.cancel()

    def _next_scan(self, deadline: Optional[float]) -> bool:
        """Read until a ScanStart (True) or the deadline (False), skipping
        what is left of a scan that failed or was stopped on our side."""
        msgs = self._msgs
        skipped = 0
        wait = FOREVER if deadline is None else deadline
        try:
            while True:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                try:
                    hdr = msgs.header(self._closing, wait, resync=True)
                except IdleTimeout:
                    return False
                if type(hdr) is ScanStart:
                    return True
                if type(hdr) is ArrayChunk:
                    msgs.skip_payload()
                    skipped += 1
        finally:
            if skipped:
                log.info("asi_tpx3: skipped %d chunks of an abandoned scan", skipped)

    def wait_for_acquisition(self, timeout: float | None = None
                             ) -> Tpx3PendingAcquisition | None:
        """The next scan the ASI software starts, or None after ``timeout`` seconds.

        ``timeout=None`` waits until a scan starts or the connection is closed.
        Raises :class:`DetectorConnectionError` when the server cannot be
        reached within ``timeout`` (None means: reached, but no scan started).
        """
        self._release_previous()
        self.check_idle()
        deadline = None if timeout is None else time.monotonic() + float(timeout)
        while True:
            if self._closing.is_set() or not self._ensure_connected(deadline):
                return None
            try:
                if not self._next_scan(deadline):
                    return None
            except Stopped:
                return None
            except PeerClosed:
                log.info("asi_tpx3: %s closed the connection while idle; reconnecting",
                         self.source)
                continue
            except (Truncated, Stalled, Tpx3ProtocolError) as e:
                log.warning("asi_tpx3: %s between acquisitions: %s; reconnecting",
                            self.source, e)
                self._reader.mark_broken(str(e))
                continue
            if self._closing.is_set():  # closed from another thread meanwhile
                return None
            return self._announce()

    def _frame_format(self, acq: AcquisitionStart) -> FrameFormat:
        decoder = Tpx3Decoder(acq.sig_shape, acq.indptr_dtype, acq.indices_dtype,
                              csr_dtype=self.csr_dtype)
        meta = describe(acq)
        if self._msgs.scan_metadata:
            meta["scan_metadata"] = bytes(self._msgs.scan_metadata)
        return FrameFormat(sig_shape=tuple(acq.sig_shape), dtype=FRAME_DTYPE, decoder=decoder,
                           sparse=True, metadata=meta)

    def _announce(self) -> Tpx3PendingAcquisition:
        acq = self._msgs.acquisition
        assert acq is not None
        fmt = self._frame_format(acq)
        framing = Tpx3Framing(self._msgs, acq, self.ring, source=self.source)
        stream = self.start_stream(acq.nframes, framing, name=RECEIVER_THREAD,
                                   info={"series": acq.sequence})
        pending = self._pending = Tpx3PendingAcquisition(acq, stream, fmt)
        return pending

    def get_active_controller(self, **params: Any) -> Any:
        raise passive_only_error(params)

    def __repr__(self) -> str:
        state = ("closed" if self.closed else
                 "connected" if self._reader.connected else "connecting")
        return f"<Tpx3Connection {self.data_host}:{self.data_port} {state}>"


def open_connection(data_host: str = "127.0.0.1", data_port: int = DEFAULT_PORT,
                    **params: Any) -> Tpx3Connection:
    """``ctx.make_connection('asi_tpx3').open(...)``; parameters as :class:`Tpx3Connection`."""
    return Tpx3Connection(data_host, data_port, **params)
