"""TCP simulator of an ASI TPX3 (CheeTah T3) sparse CSR stream server.

Serves one client at a time and accepts reconnects. Per acquisition it sends
AcquisitionStart -> (ScanStart [+ metadata] -> ArrayChunk... -> ScanEnd) x
scans -> AcquisitionEnd, built from deterministic synthetic data
(:mod:`.source`, with ground truth) or replayed from a capture file. All
bytes are built before the first client connects and sent with large
``send`` calls, so the simulator is not the bottleneck of a benchmark.

Faults: ``fault=`` (a :class:`~libertem_live.driver.Fault` or its spelling,
``"ends_short@5"``) breaks the first acquisition served after it was set
(:mod:`.faults` says how each kind looks on this wire); later ones are
clean.  :meth:`Tpx3Sim.inject` sets the next one.
"""
from __future__ import annotations

import os
import select
import socket
import threading
from pathlib import Path
from typing import Any, List, Optional, Union

import numpy as np

from libertem_live.driver import Fault, parse_fault

from .faults import CLOSE, HOLD, RESTART, check_fault, fault_segments
from .source import CaptureSource, SynthAcquisition, SynthConfig, SynthSource, metadata_bytes

__all__ = ["Tpx3Sim", "write_capture", "DEFAULT_PORT"]

DEFAULT_PORT = 8283
#: how long a restarting simulator refuses connections
RESTART_PAUSE_S = 0.3


class Tpx3Sim:
    """TCP server streaming TPX3 acquisitions; see the module docstring.

    Data: either ``config`` (a :class:`SynthConfig`), keyword arguments for
    one (``nav_shape=``, ``events_per_frame=``, ...), or ``capture=`` a file
    path to replay. Per connection ``acquisitions_per_connection``
    acquisitions are sent (None: forever), each with
    ``scans_per_acquisition`` identical scans, ``acquisition_interval``
    seconds apart; then the connection stays open until the client closes
    it (or is closed at once with ``close_after=True``). With
    ``wait_for_trigger=True`` every acquisition waits for one
    :meth:`trigger` call (triggers given before a client connects count).

    Ground truth (``expected_*``) describes one scan; all scans and
    acquisitions carry the same frames.
    """

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *,
        config: Optional[SynthConfig] = None, capture: Union[str, Path, None] = None,
        scans_per_acquisition: int = 1, acquisitions_per_connection: Optional[int] = 1,
        metadata: Union[None, bytes, str, dict] = None, wait_for_trigger: bool = False,
        close_after: bool = False, acquisition_interval: float = 0.0,
        fault: Union[Fault, str, None] = None, sequence: int = 1, send_block: int = 4 << 20,
        **synth_kwargs: Any,
    ) -> None:
        self.host = host
        self._requested_port = port
        if capture is not None:
            if config is not None or synth_kwargs:
                raise ValueError("give either capture= or synthetic data settings, not both")
            self._source: Union[SynthSource, CaptureSource] = CaptureSource(capture)
            self.synth: Optional[SynthAcquisition] = None
        else:
            cfg = config or SynthConfig(**synth_kwargs)
            self.synth = SynthAcquisition.generate(cfg)
            self._source = SynthSource(self.synth, scans_per_acquisition,
                                       metadata_bytes(metadata), sequence)
        self.acquisitions_per_connection = acquisitions_per_connection
        self.wait_for_trigger = wait_for_trigger
        self.close_after = close_after
        self.acquisition_interval = acquisition_interval
        self.send_block = send_block
        self._cond = threading.Condition()
        self._fault: Optional[Fault] = None
        self._fault_segments: Optional[List[Any]] = None
        self.inject(fault)
        self._stop = False
        self._triggers = 0
        self._listening = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._listen: Optional[socket.socket] = None
        self._port: Optional[int] = None
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        self._conn: Optional[socket.socket] = None
        #: connections accepted so far
        self.connections = 0
        #: acquisitions sent completely (faulty ones not counted)
        self.acquisitions_sent = 0
        #: simulated software restarts so far
        self.restarts = 0
        #: exception that ended the server thread, if any
        self.error: Optional[BaseException] = None

    # -- faults ----------------------------------------------------------------
    @property
    def fault(self) -> Optional[Fault]:
        """The fault waiting for the next acquisition (None: none)."""
        return self._fault

    def inject(self, fault: Union[Fault, str, None]) -> None:
        """Break the next acquisition served with ``fault`` (None: clear it).
        ValueError for a kind this wire format cannot express."""
        f, segs = None, None
        if fault is not None:
            f = parse_fault(fault)
            check_fault(f)
            if not isinstance(self._source, SynthSource):
                raise ValueError("fault injection needs synthetic data, not a capture replay")
            segs = fault_segments(self._source, f)
        with self._cond:
            self._fault, self._fault_segments = f, segs

    def _take_fault(self) -> Optional[List[Any]]:
        with self._cond:
            segs, self._fault_segments, self._fault = self._fault_segments, None, None
        return segs

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "Tpx3Sim":
        """Bind, listen and start the server thread (port known on return)."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._listen = socket.create_server((self.host, self._requested_port), backlog=4)
        self._port = self._listen.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="Tpx3Sim", daemon=True)
        self._thread.start()
        return self

    def wait_for_listen(self, timeout: float = 10.0) -> None:
        """Block until the server thread is accepting connections."""
        if not self._listening.wait(timeout):
            raise TimeoutError("simulator did not start listening")

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("not started")
        return self._port

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving: wakes every wait, joins the thread, closes all sockets."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._wake_w is not None:
            try:
                self._wake_w.send(b"x")
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("simulator thread did not stop")
        for s in (self._listen, self._wake_r, self._wake_w):
            if s is not None:
                s.close()

    def __enter__(self) -> "Tpx3Sim":
        if self._thread is None:
            self.start()
        self.wait_for_listen()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def sockets_closed(self) -> bool:
        """True once every socket the simulator opened is closed (for tests)."""
        socks = (self._listen, self._wake_r, self._wake_w, self._conn)
        return all(s is None or s.fileno() == -1 for s in socks)

    @property
    def thread_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- control -------------------------------------------------------------
    def trigger(self, n: int = 1) -> None:
        """Allow ``n`` more acquisitions to be sent (with wait_for_trigger)."""
        with self._cond:
            self._triggers += n
            self._cond.notify_all()

    def wait_for_acquisitions_sent(self, n: int, timeout: float = 10.0) -> bool:
        """Block until ``n`` acquisitions in total were sent completely."""
        with self._cond:
            return self._cond.wait_for(lambda: self.acquisitions_sent >= n or self._stop,
                                       timeout) and self.acquisitions_sent >= n

    def wait_for_connections(self, n: int, timeout: float = 10.0) -> bool:
        """Block until ``n`` connections in total were accepted."""
        with self._cond:
            return self._cond.wait_for(lambda: self.connections >= n or self._stop,
                                       timeout) and self.connections >= n

    # -- ground truth ----------------------------------------------------------
    def expected_sum(self) -> np.ndarray:
        """float64 (H, W) sum over all frames of one scan."""
        if self.synth is not None:
            return self.synth.expected_sum()
        assert isinstance(self._source, CaptureSource)
        sig, total, _, _ = self._source.truth()
        return total.reshape(sig)

    def expected_frame(self, k: int) -> np.ndarray:
        """float64 (H, W) frame at scan position ``k``."""
        if self.synth is not None:
            return self.synth.expected_frame(k)
        assert isinstance(self._source, CaptureSource)
        sig, _, frames, _ = self._source.truth()
        ix, vals = frames[k]
        return np.bincount(ix, weights=vals, minlength=sig[0] * sig[1]).reshape(sig)

    def expected_frames(self) -> np.ndarray:
        """float64 (N, H, W): every frame of one scan, in scan order."""
        n = (self.synth.config.nframes if self.synth is not None
             else len(self._source.truth()[2]))  # type: ignore[union-attr]
        return np.stack([self.expected_frame(k) for k in range(n)])

    def expected_nnz_total(self) -> int:
        """Stored CSR entries over one scan."""
        if self.synth is not None:
            return self.synth.expected_nnz_total()
        assert isinstance(self._source, CaptureSource)
        return self._source.truth()[3]

    # -- server thread ---------------------------------------------------------
    def _serve(self) -> None:
        assert self._listen is not None and self._wake_r is not None
        self._listen.setblocking(False)
        self._listening.set()
        try:
            while not self._stop:
                ready, _, _ = select.select([self._listen, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                try:
                    conn, _ = self._listen.accept()
                except BlockingIOError:
                    continue
                with self._cond:
                    index = self.connections
                    self.connections += 1
                    self._cond.notify_all()
                self._conn = conn
                try:
                    conn.setblocking(False)
                    restart = self._handle(conn, index)
                finally:
                    conn.close()
                if restart and not self._restart():
                    return
        except BaseException as e:  # kept for the test to inspect
            self.error = e
        finally:
            self._listening.set()

    def _restart(self) -> bool:
        """The software "restarts": nobody listens for a moment, then the same
        port comes back.  False if asked to stop meanwhile."""
        assert self._listen is not None and self._wake_r is not None
        self._listen.close()
        r, _, _ = select.select([self._wake_r], [], [], RESTART_PAUSE_S)
        if r:
            return False
        self._listen = socket.create_server((self.host, self.port), backlog=4)
        self._listen.setblocking(False)
        with self._cond:
            self.restarts += 1
            self._cond.notify_all()
        return True

    def _handle(self, conn: socket.socket, index: int) -> bool:
        """Serve one connection; True if the simulated software restarts after it."""
        n = 0
        while self.acquisitions_per_connection is None or n < self.acquisitions_per_connection:
            if n > 0 and self.acquisition_interval > 0:
                with self._cond:
                    if self._cond.wait_for(lambda: self._stop, self.acquisition_interval):
                        return False
            if self.wait_for_trigger and not self._wait_trigger(conn):
                return False
            faulty = self._take_fault()
            segs = faulty if faulty is not None else self._source.segments()
            for seg in segs:
                if seg is CLOSE:
                    return False
                if seg is HOLD:
                    self._hold(conn)
                    return False
                if seg is RESTART:
                    with self._cond:
                        self.acquisitions_sent += 1
                        self._cond.notify_all()
                    return True
                if not self._send(conn, seg):
                    return False
            n += 1
            with self._cond:
                self.acquisitions_sent += int(faulty is None)
                self._cond.notify_all()
        if not self.close_after:
            self._hold(conn)
        return False

    def _wait_trigger(self, conn: socket.socket) -> bool:
        """Wait for a trigger; False if we stop or the client leaves meanwhile.

        Watching the idle connection matters: a client that went away must
        not consume the next trigger, which belongs to the client that
        reconnects.
        """
        while True:
            r, _, _ = select.select([conn], [], [], 0)
            if r:
                try:
                    if not conn.recv(65536):
                        return False
                except BlockingIOError:
                    pass
                except OSError:
                    return False
            with self._cond:
                if self._stop:
                    return False
                if self._triggers > 0:
                    self._triggers -= 1
                    return True
                self._cond.wait(0.02)

    def _send(self, conn: socket.socket, data: Any) -> bool:
        """Send all of ``data``; False if the client went away or we are stopping."""
        mv = memoryview(data).cast("B")
        pos = 0
        while pos < len(mv):
            r, w, _ = select.select([self._wake_r], [conn], [])
            if r:
                return False
            try:
                pos += conn.send(mv[pos:pos + self.send_block])
            except BlockingIOError:
                continue
            except OSError:  # reset / broken pipe: the client left
                return False
        return True

    def _hold(self, conn: socket.socket) -> None:
        """Keep the connection open until the client closes it or we stop."""
        while True:
            r, _, _ = select.select([conn, self._wake_r], [], [])
            if self._wake_r in r:
                return
            try:
                if not conn.recv(65536):
                    return
            except BlockingIOError:
                continue
            except OSError:
                return


def write_capture(path: Union[str, Path], config: Optional[SynthConfig] = None, *,
                  scans_per_acquisition: int = 1, acquisitions: int = 1,
                  metadata: Union[None, bytes, str, dict] = None, sequence: int = 1,
                  **synth_kwargs: Any) -> SynthAcquisition:
    """Write a raw recording of the stream (what one connection receives).

    The file can be replayed with ``Tpx3Sim(capture=path)``; returns the
    synthetic acquisition, whose ``expected_*`` methods give the ground truth
    of one scan.
    """
    synth = SynthAcquisition.generate(config or SynthConfig(**synth_kwargs))
    src = SynthSource(synth, scans_per_acquisition, metadata_bytes(metadata), sequence)
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        for _ in range(acquisitions):
            for seg in src.segments():
                f.write(seg)
    os.replace(tmp, path)
    return synth
