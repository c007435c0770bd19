"""``CameraSim`` and ``TriggerClient``: upstream LiberTEM-live's Merlin
simulator names and constructor, as a thin adapter over :class:`MerlinSim`.

Upstream's docs and test helpers start a simulator with
``CameraSim(path, nav_shape, host=..., data_port=0, control_port=0,
trigger_port=0, wait_trigger=...)`` and read the ports from
``server_t.sockname``, ``control_t.sockname`` and ``trigger_t.sockname``;
that works here.  What differs (see also :mod:`.upstream_cli`):
``garbage`` sends no junk, ``cached`` is accepted (frames are always served
from memory), ``manual_trigger`` is not supported (it read stdin) and
``initial_params`` that contradict the recording are refused by the
simulator's parameter rules.
"""
from __future__ import annotations

import socket
import threading
from typing import Any, Mapping, Optional

from .server import MerlinSim
from .upstream_cli import free_run, mib_file

__all__ = ["CameraSim", "TriggerClient"]

TRIGGER = b"TRIGGER\n"
FINISH = b"FINISH\n"


class _Endpoint:
    """What upstream's server threads offered callers: the bound address."""

    def __init__(self, host: str, port: Any):
        self._host = host
        self._port = port

    @property
    def sockname(self) -> tuple[str, int]:
        return (self._host, self.port)

    @property
    def port(self) -> int:
        return int(self._port() if callable(self._port) else self._port)


class _TriggerServer:
    """Upstream's out-of-band trigger socket: ``TRIGGER\\n`` acts as a
    SOFTTRIGGER, answered with ``FINISH\\n`` once the acquisition ended."""

    def __init__(self, sim: MerlinSim, host: str, port: int):
        self._sim = sim
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(0.1)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="merlin-sim-trigger",
                                       daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(0.1)
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                chunk = conn.recv(1024)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            if chunk == TRIGGER:
                self._sim.control_cmd("SOFTTRIGGER")
                while not self._stop.is_set() and not self._sim.wait_idle(0.1):
                    pass
                try:
                    conn.sendall(FINISH)
                except OSError:
                    return

    def stop(self, timeout: float) -> None:
        self._stop.set()
        self.thread.join(timeout)
        self._sock.close()


class CameraSim:
    """Upstream's Merlin simulator constructor on :class:`MerlinSim`.

    ``path``: a recording (its ``.hdr`` or its one ``.mib`` file);
    ``nav_shape``: the scan shape announced (``None`` or ``(0, 0)``: the
    recording's frame count).  Without ``wait_trigger`` every data client
    receives acquisitions back to back, as upstream's did; with it, an
    acquisition starts on ``CMD STARTACQUISITION`` and sends its frames on a
    SOFTTRIGGER or a ``TRIGGER`` on the trigger port.  ``dwelltime``:
    microseconds per frame.
    """

    def __init__(self, path: str, nav_shape: Optional[tuple[int, int]] = None,
                 continuous: bool = False, host: str = "0.0.0.0", data_port: int = 6342,
                 control_port: int = 6341, trigger_port: int = 6343, wait_trigger: bool = False,
                 garbage: bool = False, cached: Optional[str] = None, max_runs: int = -1,
                 initial_params: Optional[Mapping[str, str]] = None,
                 manual_trigger: bool = False, dwelltime: Optional[int] = None):
        if manual_trigger:
            raise ValueError("CameraSim(manual_trigger=True) read triggers from stdin; send "
                             "TRIGGER on the trigger port or CMD SOFTTRIGGER instead")
        if cached not in (None, "MEM", "MEMFD"):
            raise ValueError(f"cached must be None, 'MEM' or 'MEMFD', got {cached!r}")
        self.wait_trigger = wait_trigger or garbage
        scan = None if nav_shape is None or tuple(nav_shape) == (0, 0) else tuple(nav_shape)
        mib = mib_file(str(path))
        frames: Optional[int] = None
        if continuous:
            frames = 0 if max_runs <= 0 else None
        self.sim = MerlinSim(host, control_port, data_port, scan_shape=scan,  # type: ignore[arg-type]
                             mib_path=mib, frames=frames,
                             trigger=5 if self.wait_trigger else 0,
                             frame_rate=1e6 / dwelltime if dwelltime else None)
        if continuous and max_runs > 0:
            n = self.sim.params.get_int("NUMFRAMESTOACQUIRE")
            self.sim.control_set("NUMFRAMESTOACQUIRE", str(n * max_runs))
        for name, value in (initial_params or {}).items():
            self.sim.control_set(name, str(value))
        self._host = host
        self._trigger_port = trigger_port
        self._done = threading.Event()
        self._runner: Optional[threading.Thread] = None
        self._trigger: Optional[_TriggerServer] = None
        self.server_t = _Endpoint(host, lambda: self.sim.data_port)
        self.control_t = _Endpoint(host, lambda: self.sim.control_port)
        self.trigger_t = _Endpoint(host, lambda: self._trigger.port if self._trigger else 0)

    def start(self) -> None:
        self.sim.start()
        self._trigger = _TriggerServer(self.sim, self._host, self._trigger_port)
        self._trigger.thread.start()
        if not self.wait_trigger:
            self._runner = threading.Thread(target=free_run, args=(self.sim, self._done),
                                            name="merlin-sim-free-run", daemon=True)
            self._runner.start()

    def wait_for_listen(self) -> None:
        self.sim.wait_for_listen()

    def is_alive(self) -> bool:
        return bool(self.sim.threads())

    def maybe_raise(self) -> None:
        """Upstream re-raised a server thread's error here; ours log and
        answer the client, so there is nothing to raise."""

    def stop(self, timeout: float = 5.0) -> None:
        self._done.set()
        if self._runner is not None:
            self._runner.join(timeout)
        if self._trigger is not None:
            self._trigger.stop(timeout)
        self.sim.stop(timeout)


class TriggerClient:
    """Client of the simulator's trigger port (upstream's name): ``trigger()``
    sends a trigger, ``wait()`` blocks until the triggered acquisition ended."""

    def __init__(self, host: str = "localhost", port: int = 6343):
        self._host = host
        self._port = port
        self._socket: Optional[socket.socket] = None

    def __enter__(self) -> "TriggerClient":
        if self._socket is None:
            self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        self._socket = socket.create_connection((self._host, self._port))
        self._socket.settimeout(1)

    def trigger(self) -> None:
        if self._socket is None:
            raise RuntimeError("TriggerClient: call connect() (or use `with`) first")
        self._socket.sendall(TRIGGER)

    def wait(self) -> None:
        if self._socket is None:
            raise RuntimeError("TriggerClient: call connect() (or use `with`) first")
        got = b""
        while FINISH not in got:
            try:
                chunk = self._socket.recv(1024)
            except TimeoutError:
                continue
            if not chunk:
                raise ConnectionError(
                    f"trigger port {self._host}:{self._port} closed before FINISH")
            got += chunk

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
