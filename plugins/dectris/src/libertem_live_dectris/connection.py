"""Connection to a DECTRIS detector control unit (SIMPLON API).

The ZeroMQ PULL socket is connected when the connection opens, before any
arm, so that no image the DCU pushes is lost; the REST client is created on
first use.  One acquisition receives on the socket at a time.
"""
from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np
import zmq

from libertem_live.errors import AcquisitionStateError
from libertem_live.pending import PendingStream
from libertem_live.protocols import FrameFormat
from libertem_live.transport.pool import RingPool
from libertem_live.transport.stream import FrameStream, RingConfig
from libertem_live.transport.thread import ReceiverThread

from libertem_live_dectris import zmqloop
from libertem_live_dectris.controller import DectrisActiveController
from libertem_live_dectris.decode import DectrisDecoder
from libertem_live_dectris.receiver import ImageReceiver, SeriesStart, encoding_for, find_series
from libertem_live_dectris.rest import SimplonClient

log = logging.getLogger(__name__)


class DectrisPending(PendingStream):
    """A series the detector announced (passive mode)."""

    def __init__(self, conn: DectrisConnection, start: SeriesStart, fmt: FrameFormat):
        self._conn = conn
        self.start = start
        self.series = start.series
        self.detector_config = dict(start.config.raw)
        self.nimages = start.config.n_images
        self.nav_shape: tuple[int, ...] | None = None
        self.format = fmt
        self._stream: FrameStream | None = conn._start_images(start, self.nimages, fmt)



    def __repr__(self) -> str:
        return f"<DectrisPending series={self.series} nimages={self.nimages}>"


class DectrisConnection:
    detector_name = "dectris"

    def __init__(self, api_host: str = "127.0.0.1", api_port: int = 80,
                 data_host: str = "127.0.0.1", data_port: int = 9999, *,
                 timeout: float = 30.0, api_timeout: float = 5.0,
                 ring: RingConfig | None = None, rcvhwm: int = 8192,
                 buffer_size: int | None = None, bytes_per_frame: int | None = None,
                 frame_stack_size: int | None = None, huge: bool = False):
        self.api_host, self.api_port = api_host, int(api_port)
        self.data_host, self.data_port = data_host, int(data_port)
        self.timeout = timeout
        self.api_timeout = api_timeout
        self.ring = ring or RingConfig()
        self.rcvhwm = rcvhwm
        self._lock = threading.Lock()
        self._api: SimplonClient | None = None
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._active: FrameStream | None = None
        self._streams: list[FrameStream] = []
        self.open()

    @property
    def where(self) -> str:
        return f"the DECTRIS detector at tcp://{self.data_host}:{self.data_port}"

    # --- lifecycle ---------------------------------------------------------------
    def open(self) -> DectrisConnection:
        if self._sock is not None:
            return self
        zmqloop.warmup()
        self._rings = RingPool()
        self._rings.prepare(self.ring)
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.PULL)
        sock.setsockopt(zmq.RCVHWM, self.rcvhwm)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(f"tcp://{self.data_host}:{self.data_port}")
        self._sock = sock
        return self

    def close(self) -> None:
        with self._lock:
            streams, self._streams = self._streams, []
        for s in streams:
            s.close()
        self._rings.close()
        self._active = None
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        if self._api is not None:
            self._api.close()
            self._api = None

    @property
    def closed(self) -> bool:
        return self._sock is None

    def __enter__(self) -> DectrisConnection:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- control plane -------------------------------------------------------------
    def get_api_client(self) -> SimplonClient:
        """The SIMPLON REST client (``sendDetectorCommand``, ``detectorConfig``, ...)."""
        if self._api is None:
            self._api = SimplonClient(self.api_host, self.api_port, timeout=self.api_timeout)
        return self._api

    def enable_stream(self) -> None:
        api = self.get_api_client()
        api.setStreamConfig("mode", "enabled")
        api.setStreamConfig("header_detail", "basic")

    def get_active_controller(self, **settings: Any) -> DectrisActiveController:
        return DectrisActiveController(**settings)

    # --- data plane ---------------------------------------------------------------------
    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            raise AcquisitionStateError(
                "this DECTRIS connection is closed; open a new one or use `with conn:`")
        active = self._active
        if active is not None and not active.closed:
            raise AcquisitionStateError(
                "an acquisition is still receiving on this connection; run or close it "
                "before starting the next one")
        return self._sock

    def frame_format(self, start: SeriesStart, excluded: np.ndarray | None = None) -> FrameFormat:
        cfg = start.config
        encoding = encoding_for(cfg)
        meta: dict[str, Any] = {"detector": "dectris", "series": start.series,
                                "detector_config": dict(cfg.raw)}
        if excluded is not None:
            meta["excluded_pixels"] = excluded
        return FrameFormat(sig_shape=cfg.shape, dtype=np.dtype(cfg.dtype),
                           decoder=DectrisDecoder(encoding, str(cfg.dtype), cfg.shape),
                           metadata=meta)

    def _start_images(self, start: SeriesStart, nimages: int, fmt: FrameFormat) -> FrameStream:
        sock = self._socket()
        stream = FrameStream(nimages, ring=self.ring, timeout=self.timeout,
                             source=f"DECTRIS detector at tcp://{self.data_host}:{self.data_port}",
                             pool=self._rings)
        receiver = ImageReceiver(sock, start, nimages, encoding_for(start.config), self.where)

        def receive(stream: FrameStream) -> None:
            try:
                receiver(stream)
            except BaseException:
                # the series is abandoned: every frame not received is missing
                stream.ledger.finish_short()
                raise

        ReceiverThread(stream, receive, name=f"libertem-live-dectris-{start.series}").start()
        with self._lock:
            self._streams = [s for s in self._streams if not s.closed] + [stream]
            self._active = stream
        return stream

    def find_series(self, timeout: float | None, series: int | None = None) -> SeriesStart | None:
        return find_series(self._socket(), timeout, series, self.where)

    def wait_for_acquisition(self, timeout: float | None = None) -> DectrisPending | None:
        """Wait for a series armed by other software; None after ``timeout`` s."""
        self._socket()
        self.enable_stream()
        start = self.find_series(timeout)
        if start is None:
            return None
        return DectrisPending(self, start, self.frame_format(start))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (f"<DectrisConnection {state} api=http://{self.api_host}:{self.api_port} "
                f"data=tcp://{self.data_host}:{self.data_port}>")


def open_connection(**params: Any) -> DectrisConnection:
    return DectrisConnection(**params)
