"""DECTRIS DCU simulator: SIMPLON REST control plus the ZeroMQ streams, V1
(JSON parts) on ``zmqport`` and V2 (CBOR) on ``v2_port``, each on its own
PUSH socket as on a DCU.  Which one a series goes out on is the stream
``format`` at its arm (``legacy`` or ``cbor``: ``stream="v2"``, or PUT
``stream/api/1.8.0/config/format``); the other port stays silent.

Why our own: upstream's simulator needs Flask plus a Rust extension and can
only replay recordings. This one also synthesises series with known ground
truth, follows the four trigger modes, and injects the core's stream faults
(:mod:`.faults`) so receivers can be tested against what goes wrong on a
real stream.

Threads: one HTTP server thread (plus a short-lived thread per request) and
one sender thread that owns the PUSH socket. ``stop()`` ends and joins all
of them; sends never block longer than ``send_timeout`` and check the stop
flag every 50 ms.

Usage::

    with DectrisSim(shape=(96, 96), frames=1000) as sim:
        client = SimplonClient("127.0.0.1", sim.port)
        ...  # connect PULL to tcp://127.0.0.1:{sim.zmqport} (V2: sim.v2_port), arm, receive
        sim.expected_sum()  # float64 (96, 96) sum over the series

Run standalone: ``python -m libertem_live_dectris.sim --help``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Sequence

import cbor2
import numpy as np
import zmq

from libertem_live.driver import Fault, FaultKind

from libertem_live_dectris.sim.faults import SeriesFaults, check_fault
from libertem_live_dectris.sim.simplon import RestError, SimplonApp, make_server
from libertem_live_dectris.sim.source import DumpSource, SyntheticSource, v2_array
from libertem_live_dectris.wire_v2 import build_end, build_image, build_start
from libertem_live_dectris.wire import (
    build_dconfig, build_dimage_d, build_dseries_end, build_header_parts, images_per_series,
    parse_dimage_d,
)

log = logging.getLogger(__name__)

_POLL_MS = 50


class _Abort(Exception):
    """The current series must stop being sent (disarm, stop, timeout)."""


class _Series:
    """Book-keeping of the series being sent (guarded by DectrisSim.lock)."""

    def __init__(self, series: int, n_images: int, trigger_mode: str, nimages: int,
                 config: dict[str, Any], header_detail: str, stream_enabled: bool,
                 fault: Fault | None = None) -> None:
        self.series = series
        self.fault = fault
        self.n_images = n_images
        self.trigger_mode = trigger_mode
        self.nimages = nimages
        self.config = config
        self.header_detail = header_detail
        self.stream_enabled = stream_enabled
        self.v2 = False
        # images released by (simulated) triggers
        self.allowed = n_images if trigger_mode in ("exte", "exts") else 0
        self.header_sent = False
        self.next_image = 0
        self.abort = False  # disarm/cancel/abort: send the end message and finish
        self.done = False


class DectrisSim:
    """A DECTRIS detector control unit on 127.0.0.1 for tests, docs and benchmarks.

    ``path``: replay the first series of a dump file (config and series id
    come from it), stream V1 or V2 as recorded, as fast as the receivers take
    it (unless ``dwelltime`` or a fault is set): how the benchmarks feed a
    receiver at a detector's rate. Without ``path``, a synthetic series is generated from
    ``shape`` (height, width), ``dtype``, ``compression``, ``frames`` (images
    per series, configured as ``exte`` with ``ntrigger=frames``), ``seed``
    and ``pool_size`` distinct frames.

    ``port``/``zmqport``/``v2_port`` (REST, stream V1, stream V2): 0 picks
    free ports (read them back from ``.port``, ``.zmqport`` and ``.v2_port``
    after ``start()``). ``dwelltime`` (us) paces images;
    ``send_timeout`` (s) is how long a send may wait for a receiver before the
    series is abandoned. ``header_multipart`` sends the global header as one
    multipart message instead of separate single-part messages (upstream).
    ``pixel_mask`` ((height, width), nonzero = defective) is served as the
    ``pixel_mask`` config and in ``header_detail=all`` headers; like a DCU, the
    synthetic frames then carry ``2**bits - 1`` at those pixels (0 when the
    ``mask_to_zero`` config is true), and ``frame``/``expected_sum`` include that.
    ``stream``: ``"legacy"`` (V1) or ``"v2"`` (CBOR), the initial stream
    ``format`` (series go out on ``zmqport`` or ``v2_port`` by it); ``channels``: the V2 image channels (channel ``j`` of image
    ``k`` shows pool frame ``k + j``, see :meth:`frame`); ``user_data``: the
    V2 start message's ``user_data``.
    ``sample``: what the synthetic frames show: ``"disk"`` (a bright-field
    disk circling the centre, ``pool_size`` distinct frames) or
    ``"specimen"`` (a scan over grains, a specimen edge and magnetic domains,
    see :mod:`.specimen`; one distinct frame per position of ``scan``
    (rows, columns), by default a square of ``frames`` positions).
    ``fault``: a stream fault for the first series after it was set
    (``"frame_gap"``, ``"frame_gap@5"``, a :class:`~libertem_live.driver.Fault`;
    see :mod:`.faults`; :meth:`inject` sets one later).
    ``data_filter`` (upstream's hook for hand-made faults): called with every
    message part the simulator is about to send, header and end included, in
    order; it returns the bytes to send instead, or ``None`` to leave the part
    out.  The named faults above are the usual way; this one reaches what
    they do not.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        port: int = 0,
        zmqport: int = 0,
        verbose: bool = False,
        host: str = "127.0.0.1",
        *,
        shape: tuple[int, int] = (128, 128),
        dtype: str = "uint16",
        compression: str = "bslz4",
        frames: int = 1024,
        seed: int = 0,
        pool_size: int | None = None,
        series_start: int = 1,
        dwelltime: float | None = None,
        send_timeout: float = 30.0,
        sndhwm: int = 1024,
        header_detail: str = "basic",
        header_multipart: bool = False,
        pixel_mask: np.ndarray | None = None,
        fault: str | Fault | None = None,
        sample: str = "disk",
        scan: tuple[int, int] | None = None,
        stream: str = "legacy",
        v2_port: int = 0,
        channels: Sequence[str] = ("threshold_1",),
        user_data: Any = None,
        num_mock_frames: int | None = None,
        tolerate_timeouts: bool = True,
        data_filter: Callable[[Any], Any] | None = None,
    ) -> None:
        # upstream's names: num_mock_frames is frames of the synthetic series;
        # a series nobody receives is abandoned after send_timeout either way
        # (upstream raised instead with tolerate_timeouts=False), so the next
        # arm is always served
        if num_mock_frames is not None:
            frames = int(num_mock_frames)
        self.num_mock_frames = frames if path is None else None
        self.tolerate_timeouts = tolerate_timeouts
        self.data_filter = data_filter
        self._error: BaseException | None = None
        if stream not in ("legacy", "v2"):
            raise ValueError(f"stream must be 'legacy' (stream V1) or 'v2' (CBOR), got {stream!r}")
        self.channels = tuple(channels)
        if not self.channels:
            raise ValueError("channels must name at least one channel")
        self.user_data = user_data
        self.host = host
        self.verbose = verbose
        self._want_port = int(port)
        self._want_zmqport = int(zmqport)
        self._want_v2_port = int(v2_port)
        if self._want_zmqport and self._want_zmqport == self._want_v2_port:
            raise ValueError(f"zmqport and v2_port are both {self._want_zmqport}: streams V1 and "
                             "V2 need a port each (0 picks a free one)")
        self.source: SyntheticSource | DumpSource
        if path is not None:
            self.source = DumpSource(path)
            if self.source.stream == "v2":
                stream, self.channels = "v2", tuple(self.source.channels)
        elif sample == "specimen":
            from libertem_live_dectris.sim.specimen import SpecimenSource
            self.source = SpecimenSource(shape, dtype, compression, frames, scan, seed,
                                         pixel_mask=pixel_mask)
        elif sample == "disk":
            self.source = SyntheticSource(shape, dtype, compression, frames, pool_size, seed,
                                          pixel_mask=pixel_mask)
        else:
            raise ValueError(f"sample must be 'disk' or 'specimen', got {sample!r}")
        self.lock = threading.RLock()
        self._cv = threading.Condition(self.lock)
        self.detector_config: dict[str, Any] = self.source.initial_config()
        self._recorded = self.source.initial_config() if isinstance(self.source, DumpSource) else None
        self.stream_config: dict[str, Any] = {
            "mode": "enabled", "header_detail": header_detail, "header_appendix": "", "image_appendix": "",
            "format": "cbor" if stream == "v2" else "legacy",
        }
        self.filewriter_config: dict[str, Any] = {"mode": "disabled", "name_pattern": "series_$id", "nimages_per_file": 1000}
        self._pixel_mask = pixel_mask
        self.dwelltime = dwelltime
        self.send_timeout = float(send_timeout)
        self.sndhwm = int(sndhwm)
        self.header_multipart = header_multipart
        try:
            self.fault: Fault | None = check_fault(fault, self._compression(), self._recorded_v2())
        except ValueError:
            self.source.close()
            raise
        self._next_series = int(series_start)
        self._current: _Series | None = None
        self._last_series_id: int | None = None
        self.dropped = 0
        self.images_sent = 0  # all image messages sent, all series
        self.series_completed = 0
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None  # stream V1
        self._sock_v2: zmq.Socket | None = None
        self._sock_closed = False
        self._http = None
        self._http_thread: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self.port = 0
        self.zmqport = 0
        self.v2_port = 0
        self._app = SimplonApp(self)
        self._v2_cache: dict[tuple[int, str, bool], bytes] = {}

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "DectrisSim":
        """Bind both ports and start the threads; returns self."""
        if self._sender is not None:
            raise RuntimeError("simulator already started")
        self._ctx = zmq.Context()
        try:
            self._bind()
            self._http = make_server(self._app, self.host, self._want_port, self.verbose)
        except Exception:
            self._close_zmq()
            raise
        self.port = self._http.server_address[1]
        self._http_thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.05},
            name=f"dectris-sim-http-{self.port}", daemon=True)
        self._http_thread.start()
        self._sender = threading.Thread(target=self._send_loop_guarded, name=f"dectris-sim-zmq-{self.zmqport}", daemon=True)
        self._sender.start()
        if self.verbose:
            print(f"DectrisSim REST on http://{self.host}:{self.port}, stream V1 on "
                  f"tcp://{self.host}:{self.zmqport}, stream V2 on tcp://{self.host}:{self.v2_port}")
            print("Waiting for arm")
        self._listening.set()
        return self

    def maybe_raise(self) -> None:
        """Raise what ended the sending thread unexpectedly, if anything did
        (upstream's name; its test helpers call it before ``stop()``)."""
        if self._error is not None:
            raise self._error

    def _bind(self) -> None:
        """Bind both stream sockets; once bound, a port is kept (a restart
        comes back on the same ports)."""
        v1, self.zmqport = self._bind_push(self.zmqport or self._want_zmqport, "V1")
        try:
            v2, self.v2_port = self._bind_push(self.v2_port or self._want_v2_port, "V2")
        except zmq.ZMQError:
            v1.close(linger=0)
            raise
        self._sock, self._sock_v2 = v1, v2
        self._sock_closed = False

    def _bind_push(self, port: int, what: str) -> tuple[zmq.Socket, int]:
        assert self._ctx is not None
        sock = self._ctx.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDHWM, self.sndhwm)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(f"tcp://{self.host}:{port or '*'}")
        except zmq.ZMQError as e:
            sock.close()
            raise zmq.ZMQError(e.errno, f"stream {what} port tcp://{self.host}:{port}: "
                                        f"{e.strerror}") from None
        endpoint = sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        return sock, int(endpoint.rsplit(":", 1)[1])

    def wait_for_listen(self, timeout: float = 10.0) -> None:
        """Block until both ports accept connections (raises TimeoutError)."""
        if not self._listening.wait(timeout):
            raise TimeoutError(f"simulator not listening after {timeout} s")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop sending, close all sockets and join all threads. Idempotent."""
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()  # joins the request threads
            self._http = None
        if self._http_thread is not None:
            self._http_thread.join(timeout)
            self._http_thread = None
        if self._sender is not None:
            self._sender.join(timeout)
            if self._sender.is_alive():
                log.error("DectrisSim sender thread did not stop within %s s", timeout)
            self._sender = None
        self._close_zmq()
        self.source.close()
        self._listening.clear()

    def _close_zmq(self) -> None:
        for sock in (self._sock, self._sock_v2):
            if sock is not None:
                sock.close(linger=0)
        self._sock = self._sock_v2 = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None

    def __enter__(self) -> "DectrisSim":
        """Starts the simulator unless already started; ``stop()`` on exit."""
        return self if self._sender is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------ ground truth

    def frame(self, k: int, channel: int = 0) -> np.ndarray:
        """Pixels of image ``k`` (synthetic mode only); in stream V2, the
        ``channel``-th channel carries pool frame ``k + channel``."""
        if not isinstance(self.source, SyntheticSource):
            raise TypeError("frame() needs a synthetic simulator (no path=)")
        return self.source.frame(k + channel, self._mask_to_zero())

    def _mask_to_zero(self) -> bool:
        with self.lock:
            return bool(self.detector_config.get("mask_to_zero", False))

    def n_images(self) -> int:
        """Images in a series with the current configuration."""
        with self.lock:
            if isinstance(self.source, DumpSource):
                return self.source.n_available(self.detector_config)
            c = self.detector_config
            return images_per_series(c["trigger_mode"], c["nimages"], c["ntrigger"])

    def expected_sum(self, n: int | None = None, channel: int = 0) -> np.ndarray:
        """float64 (height, width) sum of the first ``n`` images of a series
        (default: all images of a series with the current configuration)."""
        n = self.n_images() if n is None else n
        if channel:
            return np.sum([self.frame(k, channel) for k in range(n)], axis=0, dtype=np.float64)
        if isinstance(self.source, SyntheticSource):
            return self.source.expected_sum(n, self._mask_to_zero())
        return self.source.expected_sum(n)

    # ------------------------------------------------------------ faults

    def inject(self, fault: str | Fault | None) -> None:
        """Set the fault of the next series (``"frame_gap@5"``, a Fault, or
        None for none); see :mod:`.faults`."""
        with self.lock:
            self.fault = check_fault(fault, self._compression(), self._recorded_v2())

    def _recorded_v2(self) -> bool:
        return isinstance(self.source, DumpSource) and self.source.stream == "v2"

    def _compression(self) -> str:
        return str(self.source.initial_config().get("compression", "bslz4"))

    # ------------------------------------------------------------ REST target

    def pixel_mask(self) -> np.ndarray:
        h = int(self.detector_config["y_pixels_in_detector"])
        w = int(self.detector_config["x_pixels_in_detector"])
        if self._pixel_mask is not None and self._pixel_mask.shape == (h, w):
            return self._pixel_mask.astype(np.uint32)
        return np.zeros((h, w), np.uint32)

    def detector_status(self) -> dict[str, Any]:
        with self.lock:
            cur = self._current
            if cur is None:
                state = "idle"
            elif cur.next_image == 0:
                state = "ready"
            else:
                state = "acquire"
            return {"state": state, "error": [], "series_unique_id": self._last_series_id or 0}

    def stream_status(self) -> dict[str, Any]:
        with self.lock:
            return {"state": "ready" if self.stream_config["mode"] == "enabled" else "disabled",
                    "dropped": self.dropped}

    def check_detector_put(self, name: str, value: Any) -> list[str]:
        """Validate a detector config PUT against the source; returns changed keys."""
        if self._current is not None and name in ("nimages", "ntrigger", "trigger_mode", "compression"):
            raise RestError(400, f"cannot change {name} while armed (disarm first)")
        if self._recorded is not None and name in self._recorded:
            rec = self._recorded[name]
            ok = value == rec or (name in ("nimages", "ntrigger") and value == 1)
            if not ok:
                raise RestError(400, f"the replayed recording has {name}={rec!r}; cannot set {value!r}")
        return [name] if self.detector_config.get(name) != value else []

    def command(self, module: str, name: str, value: Any) -> dict[str, Any]:
        if module == "stream" and name == "initialize":
            with self.lock:
                self.dropped = 0
            return {}
        if module != "detector":
            raise RestError(404, f"unknown {module} command {name!r}")
        if name == "arm":
            return {"sequence id": self.arm()}
        if name in ("disarm", "cancel", "abort"):
            return {"sequence id": self.disarm()}
        if name == "trigger":
            self.trigger()
            return {}
        if name in ("initialize", "hv_reset"):
            if name == "initialize":
                self.disarm()
            return {}
        raise RestError(404, f"unknown detector command {name!r}")

    # ------------------------------------------------------------ commands

    def arm(self) -> int:
        """Arm: start a series; returns its id. Also reachable as PUT command/arm."""
        with self._cv:
            if self._current is not None:
                raise RestError(400, f"already armed (series {self._current.series}); disarm first")
            c = dict(self.detector_config)
            if isinstance(self.source, DumpSource):
                fmt = "cbor" if self.source.stream == "v2" else "legacy"
                if self.stream_config.get("format") != fmt:
                    raise RestError(400, f"the replayed recording is stream format {fmt!r}; "
                                         f"set stream/api/1.8.0/config/format to {fmt!r} first")
                series = self.source.fixed_series
                n = self.source.n_available(c)
                c = self.source.recorded_config
            else:
                series = self._next_series
                self._next_series += 1
                n = images_per_series(c["trigger_mode"], c["nimages"], c["ntrigger"])
            assert series is not None
            fault, self.fault = self.fault, None  # the first series after it was set
            self._current = _Series(series, n, c["trigger_mode"], int(c["nimages"]), c,
                                    self.stream_config["header_detail"],
                                    self.stream_config["mode"] == "enabled", fault)
            self._current.v2 = self.stream_config.get("format") == "cbor"
            self._last_series_id = series
            self._cv.notify_all()
            return series

    def trigger(self) -> None:
        """Software trigger (inte: one image, ints: nimages images)."""
        with self._cv:
            cur = self._current
            if cur is None:
                raise RestError(400, "trigger: detector not armed")
            if cur.trigger_mode not in ("inte", "ints"):
                raise RestError(400, f"trigger: trigger_mode is {cur.trigger_mode}, not inte/ints")
            step = 1 if cur.trigger_mode == "inte" else cur.nimages
            cur.allowed = min(cur.n_images, cur.allowed + step)
            self._cv.notify_all()

    def disarm(self, settle: float = 3.0) -> int | None:
        """End the current series (the end message is still sent, if anyone
        listens); returns its id.  Like a DCU, returns once the detector is
        idle again (or after ``settle`` seconds), so that an arm may follow."""
        deadline = time.monotonic() + settle
        with self._cv:
            cur = self._current
            if cur is not None:
                cur.abort = True
                self._cv.notify_all()
                while self._current is cur:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
            return self._last_series_id

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until the current series has been sent completely (or ended)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._current is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    # ------------------------------------------------------------ sending

    def _send(self, parts: Sequence[bytes], cur: _Series | None,
              timeout: float | None = None, *, v2: bool | None = None) -> None:
        """Send one (multipart) message on the stream of ``cur`` (or of
        ``v2``); never blocks past send_timeout or stop()."""
        if v2 is None:
            v2 = cur is not None and cur.v2
        sock = self._sock_v2 if v2 else self._sock
        if sock is None:
            raise _Abort("socket closed")
        if self.data_filter is not None:
            parts = [q for q in map(self.data_filter, parts) if q is not None]
            if not parts:
                return
        last = len(parts) - 1
        deadline = None
        for i, p in enumerate(parts):
            flags = zmq.NOBLOCK | (zmq.SNDMORE if i < last else 0)
            while True:
                try:
                    sock.send(p, flags, copy=True)
                    break
                except zmq.Again:
                    pass
                if self._stop.is_set():
                    raise _Abort("stopped")
                if cur is not None and cur.abort and i == 0:
                    raise _Abort("disarmed")
                now = time.monotonic()
                if deadline is None:
                    deadline = now + (self.send_timeout if timeout is None else timeout)
                elif now > deadline:
                    raise TimeoutError(f"no receiver took a message for {self.send_timeout} s")
                sock.poll(_POLL_MS, zmq.POLLOUT)

    def _send_loop_guarded(self) -> None:
        try:
            self._send_loop()
        except BaseException as e:  # kept for maybe_raise(), then logged as before
            self._error = e
            raise

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                while not self._stop.is_set() and not self._has_work():
                    self._cv.wait()
                if self._stop.is_set():
                    return
                cur = self._current
            assert cur is not None
            try:
                self._run_series(cur, SeriesFaults(cur.fault, cur.n_images))
            except _Abort as e:
                log.debug("series %d: %s", cur.series, e)
                if cur.abort and cur.header_sent and not self._stop.is_set() and not self._sock_closed:
                    self._end(cur)  # disarm while blocked: still announce the end
            except TimeoutError as e:
                log.warning("DectrisSim: abandoning series %d: %s", cur.series, e)
                with self.lock:
                    self.dropped += cur.n_images - cur.next_image
            except zmq.ZMQError as e:
                if not self._stop.is_set():
                    log.error("DectrisSim: ZeroMQ error in series %d: %s", cur.series, e)
            finally:
                self._finish(cur)

    def _has_work(self) -> bool:
        cur = self._current
        return cur is not None and (not cur.header_sent or cur.abort or cur.next_image < cur.allowed)

    def _finish(self, cur: _Series) -> None:
        with self._cv:
            if self._current is cur:
                self._current = None
                self.series_completed += 1
            self._cv.notify_all()

    def _end(self, cur: _Series) -> None:
        end = build_end(cur.series) if cur.v2 else build_dseries_end(cur.series)
        try:
            # after a disarm nobody may be listening any more: don't hold the detector
            self._send([end], None,
                       timeout=1.0 if cur.abort else None, v2=cur.v2)
        except (_Abort, TimeoutError):
            pass

    def _run_series(self, cur: _Series, plan: SeriesFaults) -> None:
        if self._sock_closed or self._sock is None or self._sock_v2 is None:
            with self.lock:
                self._rebind()
        if not cur.stream_enabled:
            # a DCU with the stream disabled sends nothing; wait for the end
            with self._cv:
                while not (self._stop.is_set() or cur.abort or cur.allowed >= cur.n_images):
                    self._cv.wait()
            raise _Abort("stream disabled")
        if cur.v2:
            hdr = [self._v2_start(cur)]
        else:
            hdr = build_header_parts(cur.series, cur.header_detail, cur.config,
                                     pixel_mask=self.pixel_mask())
        if self.header_multipart:
            self._send(hdr, cur)
        else:
            for p in hdr:
                self._send([p], cur)
        cur.header_sent = True
        count_ns = int(float(cur.config.get("count_time", 0.001)) * 1e9)
        frame_ns = int(float(cur.config.get("frame_time", 0.001)) * 1e9)
        t0_ns = time.time_ns()
        dwell = (self.dwelltime or 0) * 1e-6
        t_start = time.perf_counter()
        is_dump = isinstance(self.source, DumpSource)
        faulty = plan.kind is not None
        k = 0
        if is_dump and not faulty and not dwell and self.data_filter is None:
            k = self._replay(cur)
        while k < cur.n_images:
            # wait for triggers (inte/ints) or an abort
            if k >= cur.allowed:
                with self._cv:
                    while not (self._stop.is_set() or cur.abort or k < cur.allowed):
                        self._cv.wait()
            if self._stop.is_set():
                raise _Abort("stopped")
            if cur.abort:
                break
            if dwell > 0:
                delay = t_start + k * dwell - time.perf_counter()
                if delay > 0.002:
                    with self._cv:
                        self._cv.wait_for(lambda: self._stop.is_set() or cur.abort, delay)
                    continue  # look at stop / abort / triggers again
            img = k
            if faulty:
                stop = plan.stops_at(k)
                if stop is FaultKind.ENDS_SHORT:
                    break
                if stop is FaultKind.DISCONNECT_MID_STREAM:
                    # what was sent still arrives, then the connection drops
                    self._drop_stream(linger_ms=2000)
                    raise _Abort(f"socket closed after {k} images (fault)")
                img = plan.image_at(k)
            if cur.v2:
                st = t0_ns + img * frame_ns
                altered = plan.alters(img) if faulty else None
                msg = self._v2_image(cur, img, st, st + count_ns, altered)
                for _ in range(plan.copies(img) if faulty else 1):
                    self._send((msg,), cur)
                    self.images_sent += 1
                k += 1
                cur.next_image = k
                continue
            d, dd, blob = self.source.image_parts(cur.series, img, cur.config)
            if is_dump:
                dc = self.source.dconfig_part(img)  # type: ignore[union-attr]
            else:
                st = t0_ns + img * frame_ns
                dc = build_dconfig(st, st + count_ns, count_ns)
            repeat = 1
            if faulty:
                repeat = plan.copies(img)
                altered = plan.alters(img)
                if altered is FaultKind.TRUNCATED_PAYLOAD:
                    blob = blob[: len(blob) // 2]
                elif altered is FaultKind.CORRUPT_PAYLOAD:
                    blob = b"\xff" * len(blob)
                elif altered is FaultKind.WRONG_FORMAT:
                    dd = _alter_descriptor(dd, shape_delta=8)
            for _ in range(repeat):
                self._send((d, dd, blob, dc), cur)
                self.images_sent += 1
            k += 1
            cur.next_image = k
        if plan.sends_end:
            self._end(cur)
        if plan.restarts_after:
            self._drop_stream(linger_ms=2000)
            with self.lock:
                self._rebind()

    # ------------------------------------------------------------ stream V2

    def _v2_start(self, cur: _Series) -> bytes:
        if isinstance(self.source, DumpSource):
            return self.source.start_message
        c = cur.config
        mask = self.pixel_mask()
        return build_start(
            cur.series, cur.n_images, (int(c["y_pixels_in_detector"]), int(c["x_pixels_in_detector"])),
            f"uint{int(c['bit_depth_image'])}", self.channels,
            pixel_mask=mask if mask.any() else None, user_data=self.user_data,
            extra={"count_time": float(c.get("count_time", 0.001)),
                   "frame_time": float(c.get("frame_time", 0.001))})

    def _v2_image(self, cur: _Series, img: int, start_ns: int, stop_ns: int,
                  altered: FaultKind | None) -> bytes:
        """The CBOR image message of image ``img``: recorded, or built from the
        synthetic pool in the series' compression (each pool frame's ``data``
        map encoded once)."""
        if isinstance(self.source, DumpSource):
            if altered is not None:
                raise _Abort(f"a replayed stream V2 recording cannot be altered ({altered.value})")
            return bytes(self.source.v2_images[img])
        comp = str(cur.config.get("compression", "bslz4"))
        mask_to_zero = bool(cur.config.get("mask_to_zero", False))
        if altered is None:
            key = (img % len(self.source.pool), comp, mask_to_zero)
            cached = self._v2_cache.get(key)
            if cached is None:
                cached = self._v2_cache[key] = cbor2.dumps(
                    self.source.v2_data(img, comp, self.channels, mask_to_zero))
            return build_image(cur.series, img, cached, start_ns, stop_ns)
        return build_image(cur.series, img, self._v2_altered(cur, img, altered), start_ns, stop_ns)

    def _v2_altered(self, cur: _Series, img: int, altered: FaultKind) -> dict[str, Any]:
        assert isinstance(self.source, SyntheticSource)
        comp = str(cur.config.get("compression", "bslz4"))
        src = self.source
        data = {}
        for j, ch in enumerate(self.channels):
            blob = src.v2_blob(img + j, comp, bool(cur.config.get("mask_to_zero", False)))
            dims = src.shape
            if altered is FaultKind.TRUNCATED_PAYLOAD:
                blob = blob[: len(blob) // 2]
            elif altered is FaultKind.CORRUPT_PAYLOAD:
                blob = b"\xff" * len(blob)
            elif altered is FaultKind.WRONG_FORMAT:
                dims = (dims[0] + 8, dims[1] + 8)
            data[ch] = v2_array(blob, dims, src.dtype, comp)
        return data

    def _replay(self, cur: _Series) -> int:
        """Send a recorded series' images as fast as the socket takes them (a
        detector's pace, not Python's: no per-image work beyond the send);
        returns how many were sent. Triggers, disarm and stop are looked at
        between batches; a full socket falls back to :meth:`_send`, which
        waits for a receiver within ``send_timeout``."""
        assert isinstance(self.source, DumpSource)
        sock = self._sock_v2 if cur.v2 else self._sock
        assert sock is not None
        send = sock.send
        images: list[Any] = self.source.v2_images if cur.v2 else self.source.v1_images
        v1 = not cur.v2
        n = cur.n_images
        k = 0
        while k < n and not cur.abort and not self._stop.is_set():
            if k >= cur.allowed:
                with self._cv:
                    self._cv.wait_for(lambda: self._stop.is_set() or cur.abort or k < cur.allowed)
                continue
            first, limit = k, min(cur.allowed, n, k + 1024)
            try:
                while k < limit:
                    msg = images[k]
                    try:
                        if v1:
                            send(msg[0], zmq.NOBLOCK | zmq.SNDMORE)
                            # the rest of a multipart message is queued with its first part
                            send(msg[1], zmq.SNDMORE)
                            send(msg[2], zmq.SNDMORE)
                            send(msg[3])
                        else:
                            send(msg, zmq.NOBLOCK)
                    except zmq.Again:
                        self._send(msg if v1 else (msg,), cur)
                    k += 1
            finally:
                self.images_sent += k - first
                cur.next_image = k
        return k

    def _drop_stream(self, linger_ms: int) -> None:
        """Close both PUSH sockets: every receiver's connection drops.  With
        ``linger_ms``, what was sent still goes out first."""
        with self.lock:
            for sock in (self._sock, self._sock_v2):
                if sock is not None:
                    sock.close(linger=linger_ms)
            self._sock = self._sock_v2 = None
            self._sock_closed = True

    def _rebind(self, timeout: float = 5.0) -> None:
        """Bind the stream ports again (the old sockets may hold them a moment)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._bind()
                return
            except zmq.ZMQError:
                if time.monotonic() > deadline or self._stop.is_set():
                    raise
                time.sleep(0.05)


def _alter_descriptor(dd: bytes, shape_delta: int = 0) -> bytes:
    desc = parse_dimage_d(dd)
    h, w = desc.shape
    return build_dimage_d((h + shape_delta, w + shape_delta), desc.dtype, desc.encoding,
                          desc.size or 0)
