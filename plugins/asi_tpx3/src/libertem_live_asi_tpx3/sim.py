"""TCP simulator of an ASI TPX3 (CheeTah T3) sparse CSR stream server.

Serves one client at a time and accepts reconnects. Per acquisition it sends
AcquisitionStart -> (ScanStart [+ metadata] -> ArrayChunk... -> ScanEnd) x
scans -> AcquisitionEnd, built from deterministic synthetic data
(:mod:`.synth`, with ground truth) or replayed from a capture file. All
bytes are built before the first client connects and sent with large
``send`` calls, so the simulator is not the bottleneck of a benchmark.

Fault injection (``fault=``, see :class:`Fault`) replaces the first
acquisition of the first ``fault_connections`` connections with a broken
one, so that reconnect logic can be tested against a sim that recovers.

Run standalone: ``python -m libertem_live_asi_tpx3.sim --help``.
"""
from __future__ import annotations

import argparse
import enum
import json
import os
import select
import socket
import sys
import threading
from pathlib import Path
from typing import List, Optional, Sequence, Union

import numpy as np

from .decode import chunk_arrays
from .headers import (
    HEADER_SIZE, AcquisitionEnd, AcquisitionStart, ArrayChunk, DType, FormatType, ScanEnd,
    ScanStart,
)
from .stream import iter_stream
from .synth import SynthAcquisition, SynthConfig

__all__ = ["Fault", "Tpx3Sim", "write_capture", "main"]

DEFAULT_PORT = 8283


class Fault(str, enum.Enum):
    """Broken acquisitions the simulator can send instead of a good one.

    After a fault the simulator either closes the connection (CLOSE) or
    keeps it open without sending more (HOLD, until the client closes or the
    sim stops) - HOLD makes sure a reader fails on the content, not on EOF.
    """

    #: header + half of chunk ``fault_chunk``'s payload, then close (CLOSE)
    TRUNCATED_PAYLOAD = "truncated_payload"
    #: a header with tag 0x07 in place of chunk ``fault_chunk`` (HOLD)
    UNKNOWN_TAG = "unknown_tag"
    #: AcquisitionStart then an ArrayChunk without ScanStart (HOLD)
    WRONG_ORDER = "wrong_order"
    #: the last chunk of the scan is left out, then ScanEnd/AcquisitionEnd (HOLD)
    TOO_FEW_ROWS = "too_few_rows"
    #: one extra chunk (a copy of the first) before ScanEnd (HOLD)
    TOO_MANY_ROWS = "too_many_rows"
    #: chunks before ``fault_chunk``, then close at a message boundary (CLOSE)
    DISCONNECT_MID_SCAN = "disconnect_mid_scan"
    #: chunks before ``fault_chunk``, then silence with the socket open (HOLD)
    STALL_MID_SCAN = "stall_mid_scan"
    #: chunks before ``fault_chunk``, then AcquisitionEnd (the protocol's
    #: cancellation); the connection stays in sync and the next acquisitions
    #: follow normally (CONTINUE)
    CANCEL_MID_SCAN = "cancel_mid_scan"


_CLOSE = object()  # segment marker: close the connection
_HOLD = object()  # segment marker: keep it open, send nothing more
_CONTINUE = object()  # segment marker: broken acquisition sent, go on with the next


def _metadata_bytes(metadata: Union[None, bytes, str, dict]) -> bytes:
    if metadata is None:
        return b""
    if isinstance(metadata, bytes):
        return metadata
    if isinstance(metadata, str):
        return metadata.encode()
    return json.dumps(metadata).encode()


class _Source:
    """Acquisition bytes from synthetic data (ground truth built in)."""

    def __init__(self, synth: SynthAcquisition, scans: int, metadata: bytes,
                 sequence: int) -> None:
        cfg = synth.config
        self.synth = synth
        self.acq_start = AcquisitionStart(
            nav_shape=cfg.nav_shape, sig_shape=cfg.sig_shape, indptr_dtype=cfg.indptr_dtype,
            indices_dtype=cfg.indices_dtype, format_type=cfg.format_type, sequence=sequence,
        ).pack()
        self.scan_start = ScanStart(sequence=sequence, metadata_length=len(metadata)).pack() \
            + metadata
        self.scan_end = ScanEnd(sequence=sequence).pack()
        self.acq_end = AcquisitionEnd(sequence=sequence).pack()
        self.body = synth.body
        self.chunk_starts = np.concatenate(
            [[0], np.cumsum([len(c) for c in synth.chunks])]).astype(np.int64)
        self.scans = scans

    def segments(self) -> List[object]:
        segs: List[object] = [self.acq_start]
        for _ in range(self.scans):
            segs += [self.scan_start, memoryview(self.body), self.scan_end]
        segs.append(self.acq_end)
        return segs

    def fault_segments(self, fault: Fault, k: Optional[int]) -> List[object]:
        n = len(self.synth.chunks)
        if k is None:
            k = n // 2
        k = max(0, min(k, n - 1))
        body = memoryview(self.body)
        cs = self.chunk_starts
        head = [self.acq_start, self.scan_start]
        if fault is Fault.TRUNCATED_PAYLOAD:
            clen = len(self.synth.chunks[k]) - HEADER_SIZE
            return head + [body[:cs[k] + HEADER_SIZE + max(1, clen // 2)], _CLOSE]
        if fault is Fault.UNKNOWN_TAG:
            return head + [body[:cs[k]], bytes([0x07]) + bytes(HEADER_SIZE - 1), _HOLD]
        if fault is Fault.WRONG_ORDER:
            return [self.acq_start, body[:cs[1]], _HOLD]
        if fault is Fault.TOO_FEW_ROWS:
            return head + [body[:cs[n - 1]], self.scan_end, self.acq_end, _HOLD]
        if fault is Fault.TOO_MANY_ROWS:
            return head + [body, body[:cs[1]], self.scan_end, self.acq_end, _HOLD]
        if fault is Fault.DISCONNECT_MID_SCAN:
            return head + [body[:cs[k]], _CLOSE]
        if fault is Fault.STALL_MID_SCAN:
            return head + [body[:cs[k]], _HOLD]
        if fault is Fault.CANCEL_MID_SCAN:
            return head + [body[:cs[k]], self.acq_end, _CONTINUE]
        raise ValueError(f"unknown fault {fault!r}")


class _CaptureSource:
    """Acquisition bytes replayed from a capture file (one whole file per acquisition)."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.data = Path(path).read_bytes()
        self._first_scan: Optional[list] = None

    def segments(self) -> List[object]:
        return [memoryview(self.data)]

    def fault_segments(self, fault: Fault, k: Optional[int]) -> List[object]:
        raise ValueError("fault injection needs synthetic data, not a capture replay")

    def first_scan(self):
        """(AcquisitionStart, [chunk record views]) of the first scan in the file."""
        if self._first_scan is None:
            acq, records, seen_scan = None, [], False
            for _, hdr, rec in iter_stream(self.data):
                if isinstance(hdr, AcquisitionStart) and acq is None:
                    acq = hdr
                elif isinstance(hdr, ScanStart):
                    if seen_scan:
                        break
                    seen_scan = True
                elif isinstance(hdr, ArrayChunk):
                    records.append(rec)
                elif isinstance(hdr, (ScanEnd, AcquisitionEnd)) and seen_scan:
                    break
            self._first_scan = [acq, records]
        return self._first_scan


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
        fault: Union[Fault, str, None] = None, fault_chunk: Optional[int] = None,
        fault_connections: int = 1, sequence: int = 1, send_block: int = 4 << 20,
        **synth_kwargs,
    ) -> None:
        self.host = host
        self._requested_port = port
        if capture is not None:
            if config is not None or synth_kwargs:
                raise ValueError("give either capture= or synthetic data settings, not both")
            self._source: Union[_Source, _CaptureSource] = _CaptureSource(capture)
            self.synth: Optional[SynthAcquisition] = None
        else:
            cfg = config or SynthConfig(**synth_kwargs)
            self.synth = SynthAcquisition.generate(cfg)
            self._source = _Source(self.synth, scans_per_acquisition,
                                   _metadata_bytes(metadata), sequence)
        self.acquisitions_per_connection = acquisitions_per_connection
        self.wait_for_trigger = wait_for_trigger
        self.close_after = close_after
        self.acquisition_interval = acquisition_interval
        self.fault = Fault(fault) if fault is not None else None
        self.fault_chunk = fault_chunk
        self.fault_connections = fault_connections
        self.send_block = send_block
        if self.fault is not None:
            self._source.fault_segments(self.fault, fault_chunk)  # validate early

        self._cond = threading.Condition()
        self._stop = False
        self._triggers = 0
        self._listening = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._listen: Optional[socket.socket] = None
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        self._conn: Optional[socket.socket] = None
        #: connections accepted so far
        self.connections = 0
        #: acquisitions sent completely (faulty ones not counted)
        self.acquisitions_sent = 0
        #: exception that ended the server thread, if any
        self.error: Optional[BaseException] = None

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> "Tpx3Sim":
        """Bind, listen and start the server thread (port known on return)."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._listen = socket.create_server((self.host, self._requested_port), backlog=4)
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
        if self._listen is None:
            raise RuntimeError("not started")
        return self._listen.getsockname()[1]

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

    def __exit__(self, *exc) -> None:
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
    def _capture_truth(self):
        assert isinstance(self._source, _CaptureSource)
        acq, records = self._source.first_scan()
        sig = acq.sig_shape
        size = sig[0] * sig[1]
        total = np.zeros(size, np.float64)
        frames = []
        nnz = 0
        for rec in records:
            ca = chunk_arrays(rec, acq.indptr_dtype, acq.indices_dtype, sig_size=size)
            ix = ca.indices.astype(np.int64)
            vals = ca.values.astype(np.float64)
            total += np.bincount(ix, weights=vals, minlength=size)
            nnz += ca.header.nnz
            for r in range(ca.nframes):
                a, b = int(ca.indptr[r]), int(ca.indptr[r + 1])
                frames.append((ix[a:b], vals[a:b]))
        return sig, total, frames, nnz

    def expected_sum(self) -> np.ndarray:
        """float64 (H, W) sum over all frames of one scan."""
        if self.synth is not None:
            return self.synth.expected_sum()
        sig, total, _, _ = self._capture_truth()
        return total.reshape(sig)

    def expected_frame(self, k: int) -> np.ndarray:
        """float64 (H, W) frame at scan position ``k``."""
        if self.synth is not None:
            return self.synth.expected_frame(k)
        sig, _, frames, _ = self._capture_truth()
        ix, vals = frames[k]
        return np.bincount(ix, weights=vals, minlength=sig[0] * sig[1]).reshape(sig)

    def expected_nnz_total(self) -> int:
        """Stored CSR entries over one scan."""
        if self.synth is not None:
            return self.synth.expected_nnz_total()
        return self._capture_truth()[3]

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
                    self._handle(conn, index)
                finally:
                    conn.close()
        except BaseException as e:  # kept for the test to inspect
            self.error = e
        finally:
            self._listening.set()

    def _handle(self, conn: socket.socket, index: int) -> None:
        faulty = self.fault is not None and index < self.fault_connections
        n = 0
        while self.acquisitions_per_connection is None or n < self.acquisitions_per_connection:
            if n > 0 and self.acquisition_interval > 0:
                with self._cond:
                    if self._cond.wait_for(lambda: self._stop, self.acquisition_interval):
                        return
            if self.wait_for_trigger and not self._wait_trigger(conn):
                return
            if faulty and n == 0:
                assert self.fault is not None
                segs = self._source.fault_segments(self.fault, self.fault_chunk)
            else:
                segs = self._source.segments()
            complete = True
            for seg in segs:
                if seg is _CLOSE:
                    return
                if seg is _HOLD:
                    self._hold(conn)
                    return
                if seg is _CONTINUE:
                    complete = False
                    continue
                if not self._send(conn, seg):
                    return
            n += 1
            with self._cond:
                self.acquisitions_sent += int(complete)
                self._cond.notify_all()
        if not self.close_after:
            self._hold(conn)

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

    def _send(self, conn: socket.socket, data) -> bool:
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
                  **synth_kwargs) -> SynthAcquisition:
    """Write a raw recording of the stream (what one connection receives).

    The file can be replayed with ``Tpx3Sim(capture=path)``; returns the
    synthetic acquisition, whose ``expected_*`` methods give the ground truth
    of one scan.
    """
    synth = SynthAcquisition.generate(config or SynthConfig(**synth_kwargs))
    src = _Source(synth, scans_per_acquisition, _metadata_bytes(metadata), sequence)
    tmp = Path(str(path) + ".tmp")
    with open(tmp, "wb") as f:
        for _ in range(acquisitions):
            for seg in src.segments():
                f.write(seg)  # type: ignore[arg-type]
    os.replace(tmp, path)
    return synth


def _dtype_arg(s: str) -> DType:
    return DType[s.upper()]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry: serve until Ctrl-C, or write a capture file."""
    p = argparse.ArgumentParser(prog="python -m libertem_live_asi_tpx3.sim",
                                description="ASI TPX3 sparse CSR stream simulator")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--nav", type=int, nargs=2, default=(256, 256), metavar=("H", "W"))
    p.add_argument("--sig", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    p.add_argument("--events", type=float, default=100.0, help="mean events per frame")
    p.add_argument("--tot", action="store_true", help="ToT values instead of counts")
    p.add_argument("--frames-per-chunk", type=int, default=None)
    p.add_argument("--value-dtypes", type=_dtype_arg, nargs="+", default=[DType.U32],
                   help="cycled over chunks: u8 u16 u32 u64")
    p.add_argument("--indptr-dtype", type=_dtype_arg, default=DType.U32)
    p.add_argument("--indices-dtype", type=_dtype_arg, default=DType.U32)
    p.add_argument("--align", type=int, default=1)
    p.add_argument("--extra-pad", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metadata", default=None, help="JSON sent after ScanStart")
    p.add_argument("--scans", type=int, default=1)
    p.add_argument("--acquisitions", type=int, default=0,
                   help="per connection; 0 = forever")
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between acquisitions")
    p.add_argument("--replay", default=None, help="capture file to replay")
    p.add_argument("--write-capture", default=None, metavar="PATH",
                   help="write a capture file instead of serving")
    p.add_argument("--fault", choices=[f.value for f in Fault], default=None)
    args = p.parse_args(argv)

    synth_kwargs = {}
    if args.replay is None:
        synth_kwargs = dict(config=SynthConfig(
            nav_shape=tuple(args.nav), sig_shape=tuple(args.sig),
            events_per_frame=args.events,
            format_type=FormatType.TOT if args.tot else FormatType.CSR,
            frames_per_chunk=args.frames_per_chunk, value_dtypes=tuple(args.value_dtypes),
            indptr_dtype=args.indptr_dtype, indices_dtype=args.indices_dtype,
            align=args.align, extra_pad=args.extra_pad, seed=args.seed))
    if args.write_capture:
        synth = write_capture(args.write_capture, scans_per_acquisition=args.scans,
                              acquisitions=max(1, args.acquisitions),
                              metadata=args.metadata, **synth_kwargs)
        print(json.dumps({"path": args.write_capture,
                          "bytes": os.path.getsize(args.write_capture),
                          "frames": synth.config.nframes,
                          "nnz": synth.expected_nnz_total()}))
        return 0
    sim = Tpx3Sim(args.host, args.port, capture=args.replay,
                  scans_per_acquisition=args.scans,
                  acquisitions_per_connection=args.acquisitions or None,
                  acquisition_interval=args.interval, metadata=args.metadata,
                  fault=args.fault, **synth_kwargs)
    with sim:
        print(f"TPX3 simulator listening on {args.host}:{sim.port}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
