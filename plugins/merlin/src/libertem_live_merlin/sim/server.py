"""``MerlinSim``: a Merlin detector simulator on two TCP ports.

Control port: MPX GET/SET/CMD (:mod:`.control`, rules in :mod:`.params`).
Data port: ``HDR`` + MQ1 frames per acquisition (:mod:`.data`). Frames come
from a pre-encoded pool (:mod:`.source`): synthetic frames with known ground
truth, or a ``.mib`` file.  Stream faults: :mod:`.faults`.

Typical test use::

    with MerlinSim(frames=64, scan_shape=(8, 8)) as sim:
        ... connect to sim.data_port, then via ControlClient(port=sim.control_port)
        ... CMD STARTACQUISITION; read HDR + 64 frames
        assert np.allclose(my_sum, sim.expected_sum())

Commands: STARTACQUISITION (busy → status 1), SOFTTRIGGER (releases
NUMFRAMESPERTRIGGER frames, 0 = all; only with TRIGGERSTART != 0),
STOPACQUISITION / ABORT (end the current acquisition). ``stop()`` closes
every socket and joins every thread; ``start()`` after ``stop()`` (or
``restart()``) listens again on the same ports, for reconnect tests.

Run standalone: ``python -m libertem_live_merlin.sim --help``.
"""
from __future__ import annotations

import logging
import threading
from typing import Optional

import numpy as np

from libertem_live.driver import Fault, FaultKind

from ..headers import build_acquisition_header, decoded_shape
from ..wire import build_message
from .acq import Acquisition, AcquisitionState
from .control import STATUS_BUSY, STATUS_OK, STATUS_UNKNOWN, ControlServer
from .data import DataServer
from .faults import fault_frame, merlin_fault
from .params import Parameters
from .source import FramePool, MibSource, SyntheticSource

log = logging.getLogger(__name__)

COMMANDS = ("STARTACQUISITION", "SOFTTRIGGER", "STOPACQUISITION", "ABORT")


class MerlinSim:
    """Simulated Merlin (see module docstring).

    ``frames``: NUMFRAMESTOACQUIRE (0 = continuous); ``scan_shape``: (ScanY,
    ScanX) announced in the HDR (default: none); ``counter_depth`` 1/6/12/24;
    ``raw``: FILEFORMAT 2 (R64) instead of 0 (sorted); ``layout``: ``1x1``,
    ``2x2`` or ``2x2G``; ``trigger``: TRIGGERSTART (0 internal, 5 soft);
    ``frames_per_trigger``: default ``frames`` (one trigger = whole scan);
    ``pool_size``/``seed``: distinct synthetic frames and their RNG seed;
    ``mib_path``: serve this ``.mib`` file instead (format/depth/layout from
    the file, ``frames`` defaults to its frame count); ``frame_rate``: pace the
    stream (frames/s; default unthrottled); ``batch_frames``: frames per
    ``sendmsg`` (default: as many as fit in 1 MiB); ``fault``: a stream
    fault for the first acquisition served (``"frame_gap@5"``, a
    :class:`~libertem_live.driver.Fault`; see :mod:`.faults`).
    """

    def __init__(self, host: str = "127.0.0.1", control_port: int = 0,
                 data_port: int = 0, *, frames: Optional[int] = None,
                 scan_shape: Optional[tuple[int, int]] = None, counter_depth: int = 12,
                 raw: bool = False, layout: str = "1x1", trigger: int = 0,
                 frames_per_trigger: Optional[int] = None, pool_size: int = 32,
                 seed: int = 0, mib_path: Optional[str] = None,
                 frame_rate: Optional[float] = None, batch_frames: Optional[int] = None,
                 fault: str | Fault | FaultKind | None = None):
        self.host = host
        self._control_port_req = control_port
        self._data_port_req = data_port
        self.frame_rate = frame_rate
        self.batch_frames = batch_frames
        self.state = AcquisitionState()
        self._lock = threading.Lock()
        self._fault: Optional[Fault] = merlin_fault(fault)
        self._control: Optional[ControlServer] = None
        self._data: Optional[DataServer] = None
        self._listening = threading.Event()
        fixed: dict[str, str] = {}
        if mib_path is not None:
            self.source: SyntheticSource | MibSource = MibSource(mib_path)
            h = self.source.header
            self.layout = h.layout
            counter_depth = h.counter_depth or {"U16": 12, "U32": 24}.get(
                h.pixel_format, 6)
            raw = h.is_raw
            sig = h.sig_shape
            if frames is None:
                frames = self.source.num_frames
            fixed = {"COUNTERDEPTH": str(counter_depth), "FILEFORMAT": "2" if raw else "0"}
        else:
            self.source = SyntheticSource(pool_size=pool_size, seed=seed)
            self.layout = layout
            sig = decoded_shape(layout)
        if frames is None:
            frames = int(np.prod(scan_shape)) if scan_shape else 16
        sy, sx = scan_shape if scan_shape else (0, 0)
        self.params = Parameters({
            "IMAGEX": str(sig[1]), "IMAGEY": str(sig[0]), "DETECTORSTATUS": "0",
            "COUNTERDEPTH": str(counter_depth),
            "NUMFRAMESTOACQUIRE": str(frames),
            "NUMFRAMESPERTRIGGER": str(frames if frames_per_trigger is None
                                       else frames_per_trigger),
            "ACQUISITIONTIME": "1.0", "ACQUISITIONPERIOD": "1.0",
            "CONTINUOUSRW": "0" if counter_depth == 24 else "1",
            "TRIGGERSTART": str(trigger), "TRIGGERSTOP": "0",
            "FILEFORMAT": "2" if raw else "0", "FILEENABLE": "0",
            "FILEDIRECTORY": "", "IMAGESPERFILE": "0", "USETIMESTAMPING": "0",
            "RUNHEADLESS": "1", "SCANX": str(sx), "SCANY": str(sy),
        }, fixed)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> "MerlinSim":
        """Bind both ports and start serving (returns once listening)."""
        if self._control is not None:
            raise RuntimeError("simulator already started")
        self.current_pool()  # pre-encode the default pool before anyone asks
        control = ControlServer(self, self.host, self._control_port_req)
        try:
            data = DataServer(self.state, self.host, self._data_port_req,
                              self.batch_frames, on_restart=control.drop_clients)
        except OSError:
            control.stop()
            raise
        # a restart must come back on the same ports
        self._control_port_req, self._data_port_req = control.port, data.port
        self._control, self._data = control, data
        control.start()
        data.start()
        self._listening.set()
        return self

    def wait_for_listen(self, timeout: Optional[float] = 10.0) -> None:
        """Block until both servers listen (``start()`` already guarantees it)."""
        if not self._listening.wait(timeout):
            raise TimeoutError("simulator is not listening; was start() called?")

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel any acquisition, close every socket, join every thread."""
        self._listening.clear()
        self.state.cancel()
        control, data = self._control, self._data
        self._control = self._data = None
        if data is not None:
            data.stop(timeout)
        if control is not None:
            control.stop(timeout)
        with self.state.cond:  # an acquisition the data thread left unfinished
            acq = self.state.current
        if acq is not None:
            self.state.finish(acq, "simulator stopped")
        self._stopped_threads = ((data.threads() if data else [])
                                 + (control.threads() if control else []))

    def restart(self) -> None:
        """Kill (drop all connections) and come back on the same ports."""
        self.stop()
        self.start()

    def threads(self) -> list[threading.Thread]:
        """Live server threads (tests check that stop() leaves none)."""
        ts: list[threading.Thread] = []
        for srv in (self._control, self._data):
            if srv is not None:
                ts.extend(srv.threads())
        ts.extend(getattr(self, "_stopped_threads", []))
        return [t for t in ts if t.is_alive()]

    def __enter__(self) -> "MerlinSim":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def control_port(self) -> int:
        return self._control_port_req

    @property
    def data_port(self) -> int:
        return self._data_port_req

    @property
    def data_connections(self) -> int:
        """Data clients accepted since the last start()."""
        return self._data.connections if self._data else 0

    # -- test helpers --------------------------------------------------------------

    def inject_fault(self, fault: Fault | FaultKind | str | None) -> None:
        """Set the fault for the next acquisition served (``"kind@frame"`` or a
        :class:`~libertem_live.driver.Fault`; None: none); see :mod:`.faults`."""
        f = merlin_fault(fault)
        with self._lock:
            self._fault = f

    def current_pool(self) -> FramePool:
        """The frame pool the current settings select."""
        with self._lock:
            depth = self.params.get_int("COUNTERDEPTH")
            raw = self.params.get_int("FILEFORMAT") == 2
        pool = self.source.pool(depth, raw, self.layout)
        if isinstance(self.source, MibSource):
            self.source.ensure_truth()
        return pool

    def frame(self, index: int) -> np.ndarray:
        """Assembled ground truth of acquisition frame ``index`` (0-based)."""
        return self.current_pool().frame(index)

    def expected_sum(self, n_frames: Optional[int] = None) -> np.ndarray:
        """float64 sum over an acquisition's frames (default: NUMFRAMESTOACQUIRE)."""
        if n_frames is None:
            with self._lock:
                n_frames = self.params.get_int("NUMFRAMESTOACQUIRE")
        return self.current_pool().expected_sum(n_frames)

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        """Wait until no acquisition is armed or running."""
        return self.state.wait_idle(timeout)

    def last_acquisition(self) -> Optional[Acquisition]:
        with self.state.cond:
            return self.state.history[-1] if self.state.history else None

    # -- ControlBackend ------------------------------------------------------------

    def control_get(self, name: str) -> tuple[str, int]:
        if name == "DETECTORSTATUS":
            return ("1" if self.state.busy else "0"), STATUS_OK
        with self._lock:
            return self.params.get(name)

    def control_set(self, name: str, value: str) -> int:
        with self._lock:
            return self.params.set(name, value, busy=self.state.busy)

    def control_cmd(self, name: str) -> int:
        if name == "STARTACQUISITION":
            return self._start_acquisition()
        if name == "SOFTTRIGGER":
            self.state.trigger()  # no acquisition armed: ignored, like a stray pulse
            return STATUS_OK
        if name in ("STOPACQUISITION", "ABORT"):
            self.state.cancel()
            return STATUS_OK
        return STATUS_UNKNOWN

    def _start_acquisition(self) -> int:
        if self.state.busy:
            return STATUS_BUSY
        pool = self.current_pool()
        with self._lock:
            p = self.params
            n = p.get_int("NUMFRAMESTOACQUIRE")
            fpt = p.get_int("NUMFRAMESPERTRIGGER")
            sx, sy = p.get_int("SCANX"), p.get_int("SCANY")
            hdr = build_acquisition_header(
                n, fpt, scan_x=sx or None, scan_y=sy or None,
                counter_depth=p.get_int("COUNTERDEPTH"), assembly_size=self.layout)
            fault = self._fault if n > 0 else None
            acq = Acquisition(pool=pool, n_frames=n, frames_per_trigger=fpt,
                              soft_trigger=p.get_int("TRIGGERSTART") != 0,
                              hdr_message=build_message(hdr), fault=fault,
                              fault_at=-1 if fault is None else fault_frame(fault, n),
                              frame_rate=self.frame_rate)
            if not self.state.arm(acq):
                return STATUS_BUSY
            if fault is not None:
                self._fault = None
        return STATUS_OK
