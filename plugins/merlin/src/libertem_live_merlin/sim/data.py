"""Data-port server of the simulator: streams armed acquisitions to one client.

One client at a time (later connections wait in the listen backlog and are
served after the current one leaves; reconnects are fine). Per acquisition:
the ``HDR`` message, then — immediately with internal triggering, or as soft
triggers release them — the frames as MPX messages (MQ1 header + payload),
gathered into ``sendmsg`` calls of up to ``batch_frames`` frames built from
pre-encoded bytes.

Behaviour worth knowing:

* an acquisition armed while no data client is connected waits for the next
  client (whether real Merlin buffers is unverified; waiting keeps tests
  independent of connect/arm ordering);
* a client that disconnects mid-acquisition ends that acquisition
  (outcome ``"client gone"``);
* STOPACQUISITION/ABORT end the stream after the batch in flight;
* a fault (:mod:`.faults`) is acted out at the frame it names.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Callable, Optional

import numpy as np

from libertem_live.driver import FaultKind

from ..headers import build_frame_header
from ..wire import PREFIX_LEN, build_prefix
from .acq import Acquisition, AcquisitionState
from .encode import encode_frame
from .faults import GARBAGE, OTHER_DEPTH
from .net import Waker, make_listener, sendmsg_all, wait_readable

log = logging.getLogger(__name__)


class _ClientGone(Exception):
    """The data client disconnected (or we disconnected it on purpose)."""


class DataServer:
    def __init__(self, state: AcquisitionState, host: str, port: int,
                 batch_frames: Optional[int] = None, batch_bytes: int = 1 << 20,
                 on_restart: Optional[Callable[[], None]] = None):
        self.state = state
        self.on_restart = on_restart  # drops the other connections (restart_between)
        self.batch_frames = batch_frames  # None: as many as fit in batch_bytes
        self.batch_bytes = batch_bytes
        self._listener = make_listener(host, port)
        self.port: int = self._listener.getsockname()[1]
        self._waker = Waker()
        state.add_waker(self._waker.wake)
        self._stopping = False
        self._lock = threading.Lock()
        self._client: Optional[socket.socket] = None
        self.connections = 0  # clients accepted so far (tests watch reconnects)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"merlin-sim-data:{self.port}")

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: Optional[float] = 5.0) -> None:
        """Close the listener and the client; join the thread."""
        with self._lock:
            self._stopping = True
            client = self._client
        self._waker.wake()
        if client is not None:
            try:
                client.shutdown(socket.SHUT_RDWR)  # unblocks a sendmsg in progress
            except OSError:
                pass
        if self._thread.ident is not None:
            self._thread.join(timeout)
        else:
            self._listener.close()
        self._waker.close()

    def threads(self) -> list[threading.Thread]:
        return [self._thread]

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- main loop -------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                ready = wait_readable([self._listener, self._waker])
                self._waker.drain()
                if self._stopping:
                    return
                if self._listener not in ready:
                    continue
                try:
                    conn, _ = self._listener.accept()
                except OSError:
                    continue
                with self._lock:
                    if self._stopping:
                        conn.close()
                        return
                    self._client = conn
                    self.connections += 1
                try:
                    self._serve(conn)
                except (_ClientGone, OSError) as e:
                    log.debug("data client done: %r", e)
                finally:
                    with self._lock:
                        self._client = None
                    conn.close()
        finally:
            self._listener.close()

    def _wait(self, conn: socket.socket, pred: Callable[[], bool],
              deadline: Optional[float] = None) -> bool:
        """Wait until ``pred()`` holds (True), ``deadline`` passes (False) or
        the client leaves / the server stops (:class:`_ClientGone`).

        Incoming bytes on the data socket are read and dropped: clients do
        not send on this port, but reading is how we notice they left.
        """
        while True:
            if self._stopping:
                raise _ClientGone("server stopping")
            with self.state.cond:
                ready_now = pred()
            if ready_now:
                # a client that closed just before the acquisition started must not
                # get it: the acquisition waits for the client that replaces it
                if conn in wait_readable([conn], 0) and not conn.recv(65536):
                    raise _ClientGone("client closed the connection")
                return True
            timeout = None
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    return False
            ready = wait_readable([conn, self._waker], timeout)
            if self._waker in ready:
                self._waker.drain()
            if conn in ready:
                if not conn.recv(65536):
                    raise _ClientGone("client closed the connection")

    def _serve(self, conn: socket.socket) -> None:
        while True:
            self._wait(conn, lambda: self.state.current is not None
                       and not self.state.current.picked_up)
            acq = self.state.pick_up()
            if acq is None:
                continue
            try:
                outcome = self._stream(conn, acq)
                if acq.fault is not None and acq.fault.kind is FaultKind.RESTART_BETWEEN:
                    self._restart(conn, acq, outcome)
            except _ClientGone:
                self.state.finish(acq, "client gone")
                raise
            except OSError:
                self.state.finish(acq, "client gone")
                raise
            self.state.finish(acq, outcome)

    # -- streaming -------------------------------------------------------------

    def _stream(self, conn: socket.socket, acq: Acquisition) -> str:
        conn.sendall(acq.hdr_message)
        pool = acq.pool
        n = acq.n_frames
        fault = acq.fault
        # the frame at which the fault must be acted out (restart_between acts after)
        fault_at = acq.fault_at if fault is not None and \
            fault.kind is not FaultKind.RESTART_BETWEEN else None
        period = 1.0 / acq.frame_rate if acq.frame_rate else None
        batch = self.batch_frames or max(1, min(1024, self.batch_bytes // pool.wire_size))
        batch = min(batch, len(pool))  # pool.batch() patches each entry once per call
        t0 = time.monotonic()
        i = 0
        while n == 0 or i < n:
            released = self._released(conn, acq, i)
            if released is None:
                return "cancelled"
            if fault is not None and i == fault_at:
                outcome = self._apply_fault(conn, acq, i)
                if isinstance(outcome, str):
                    return outcome
                i = outcome
                acq.frames_sent = i
                continue
            end = i + (1 if period else batch)
            if n:
                end = min(end, n)
            if released is not None and released > 0:
                end = min(end, released)
            if fault_at is not None and fault_at > i:
                end = min(end, fault_at)
            if period is not None:
                deadline = t0 + i * period
                if self._wait(conn, lambda: acq.cancelled, deadline):
                    return "cancelled"
            sendmsg_all(conn, pool.batch(i, end))
            i = end
            acq.frames_sent = i
        return "complete"

    def _restart(self, conn: socket.socket, acq: Acquisition, outcome: str) -> None:
        """restart_between: the acquisition went out whole; now every connection
        drops (control first, then data), and only then is the detector idle."""
        if self.on_restart is not None:
            self.on_restart()
        try:
            conn.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.state.finish(acq, outcome)
        raise _ClientGone("fault: restart_between")

    def _released(self, conn: socket.socket, acq: Acquisition, i: int) -> Optional[int]:
        """Frames that may be sent now (0 = unlimited); waits for a soft trigger
        if frame ``i`` is not released yet. None if the acquisition was cancelled."""
        def ready() -> bool:
            r = acq.released()
            return acq.cancelled or r is None or r > i
        self._wait(conn, ready)
        with self.state.cond:
            if acq.cancelled:
                return None
            r = acq.released()
            return 0 if r is None else r

    def _apply_fault(self, conn: socket.socket, acq: Acquisition, i: int) -> int | str:
        """Act out the acquisition's fault at frame ``i``: the index to go on
        from, or the outcome that ends the stream."""
        pool = acq.pool
        assert acq.fault is not None
        kind = acq.fault.kind
        head, payload = pool.head(i), pool.payload(i)
        if kind is FaultKind.FRAME_GAP:
            return i + 1
        if kind is FaultKind.DUPLICATE_FRAME:
            sendmsg_all(conn, [head, payload, head, payload])
            return i + 1
        if kind is FaultKind.OUT_OF_ORDER:
            sendmsg_all(conn, [pool.head(i + 1), pool.payload(i + 1), head, payload])
            return i + 2
        if kind is FaultKind.TRUNCATED_PAYLOAD:
            half = payload[:len(payload) // 2]
            sendmsg_all(conn, [build_prefix(pool.data_offset + len(half)),
                               head[PREFIX_LEN:], half])
            return i + 1
        if kind is FaultKind.CORRUPT_PAYLOAD:
            junk = (GARBAGE * (pool.data_offset // len(GARBAGE) + 1))[:pool.data_offset]
            sendmsg_all(conn, [head[:PREFIX_LEN], junk, payload])
            return i + 1
        if kind is FaultKind.WRONG_FORMAT:
            sendmsg_all(conn, [_other_format(pool, i)])
            return i + 1
        if kind is FaultKind.ENDS_SHORT:
            return f"fault: ends_short after {i} frames"
        msg = head + bytes(payload)
        if kind is FaultKind.STALL_MID_FRAME:
            conn.sendall(msg[:len(msg) // 2])
            self._wait(conn, lambda: acq.cancelled)
            return f"fault: stall_mid_frame at frame {i}, then cancelled"
        if kind is FaultKind.DISCONNECT_MID_STREAM:
            conn.sendall(msg[:len(msg) // 2])
            raise _ClientGone(f"fault: disconnect_mid_stream at frame {i}")
        raise AssertionError(f"no way to act out {kind} on the Merlin data port")


def _other_format(pool, i: int) -> bytes:  # noqa: ANN001 - a FramePool
    """Frame ``i`` as a whole MPX message, encoded with another counter depth."""
    h = pool.header
    depth = h.counter_depth or 12
    other = OTHER_DEPTH[depth]
    frame = np.asarray(pool.frame(i)).astype(np.uint32) & ((1 << min(depth, other)) - 1)
    payload, fmt = encode_frame(frame, other, h.layout, h.is_raw)
    head = build_frame_header(i + 1, layout=h.layout, pixel_format=fmt, counter_depth=other)
    return build_prefix(len(head) + len(payload)) + head + payload
