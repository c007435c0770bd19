"""Connection to a DECTRIS detector control unit (SIMPLON API).

The ZeroMQ PULL socket is connected when the connection opens, before any
arm, so that no image the DCU pushes is lost; the REST client is created on
first use.  Lifecycle, ring and "one acquisition at a time" are the core's
:class:`~libertem_live.driver.BaseConnection`.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import zmq

from libertem_live.driver import (
    BaseConnection, FrameFormat, FrameFormatError, FrameStream, PendingStream, RingConfig,
    zmq_pull_socket,
)

from libertem_live_dectris import zmqloop
from libertem_live_dectris.client import SimplonClient
from libertem_live_dectris.controller import DectrisActiveController
from libertem_live_dectris.decode import DectrisDecoder
from libertem_live_dectris.errors import PayloadError
from libertem_live_dectris.receiver import DectrisFraming, PeerWatch, find_series
from libertem_live_dectris.wire import (
    DEFAULT_PORT as V1_PORT, MessageError, SeriesConfig, SeriesStart, encoding_for,
)
from libertem_live_dectris.decode_v2 import DectrisV2Decoder
from libertem_live_dectris.receiver_fanin import DectrisV2FanInFraming, find_series_fanin
from libertem_live_dectris.receiver_v2 import DectrisV2Framing, find_series_v2, series_info
from libertem_live_dectris.wire_v2 import DEFAULT_CHANNEL, DEFAULT_PORT as V2_PORT, SeriesStartV2


class DectrisPending(PendingStream):
    """A series the detector announced (passive mode); receiving already."""

    def __init__(self, start: SeriesStart | SeriesStartV2, fmt: FrameFormat, stream: FrameStream):
        self.start = start
        self.series = start.series
        if isinstance(start, SeriesStartV2):
            self.detector_config = dict(start.metadata)
            self.nimages = start.n_images
        else:
            self.detector_config = dict(start.config.raw)
            self.nimages = start.config.n_images
        self.nav_shape: tuple[int, ...] | None = None
        self.format = fmt
        self._stream: FrameStream | None = stream

    def __repr__(self) -> str:
        return f"<DectrisPending series={self.series} nimages={self.nimages}>"


class DectrisConnection(BaseConnection):
    """``api_host``/``api_port``: the DCU's REST interface; ``data_host`` /
    ``data_port``: its ZeroMQ stream (``data_port=None``: the DCU's port of
    the chosen stream, 9999 for stream V1, 31001 for stream V2; a DCU serves
    each stream on its own port).  ``timeout``: seconds without an image
    before a running acquisition fails; ``api_timeout``: seconds a REST
    request may take.  ``buffer_size``: MiB of shared memory each
    acquisition receives into (default 128), allocated at the first
    acquisition and kept until ``close()``.  ``bytes_per_frame``,
    ``frame_stack_size`` and ``huge`` (also spelt ``huge_pages``, upstream's
    name) are accepted for scripts written for upstream LiberTEM-live and
    ignored.

    ``stream="v2"`` receives the DECTRIS stream V2 (CBOR, ``format`` = ``cbor``
    in the stream configuration) instead of stream V1 (``legacy``);
    ``channel`` picks the image channel (``threshold_1``, ``threshold_2``,
    ``difference``, ...).  ``receivers=N`` (stream V2) opens N sockets on the
    stream: the DCU deals its messages out to them in turn, and the images
    are put back in order before they reach the ring."""

    detector_name = "dectris"

    def __init__(self, api_host: str = "127.0.0.1", api_port: int = 80,
                 data_host: str = "127.0.0.1", data_port: int | None = None, *,
                 timeout: float = 30.0, api_timeout: float = 5.0,
                 ring: RingConfig | None = None, rcvhwm: int = 8192,
                 buffer_size: float | None = None, bytes_per_frame: int | None = None,
                 frame_stack_size: int | None = None, huge: bool = False,
                 stream: str = "legacy",
                 channel: str = DEFAULT_CHANNEL, huge_pages: bool | None = None,
                 receivers: int = 1):
        if stream not in ("legacy", "v1", "v2"):
            raise ValueError(f"stream must be 'legacy' (stream V1, the default) or 'v2' (the "
                             f"CBOR stream), got {stream!r}")
        self.stream = "v2" if stream == "v2" else "legacy"
        if int(receivers) < 1 or (int(receivers) > 1 and self.stream != "v2"):
            raise ValueError(f"receivers={receivers!r}: several receivers need stream='v2' "
                             "(stream V1 sends an image as several messages); use 1 or more")
        self.receivers = int(receivers)
        if data_port is None:
            data_port = V2_PORT if self.stream == "v2" else V1_PORT
        self.channel = channel
        self.api_host, self.api_port = api_host, int(api_port)
        self.data_host, self.data_port = data_host, int(data_port)
        self.api_timeout = api_timeout
        self.rcvhwm = rcvhwm
        self._api: SimplonClient | None = None
        self._ctx: zmq.Context | None = None
        self._sock: zmq.Socket | None = None
        self._more_socks: list[zmq.Socket] = []
        self._early: list[bytes] = []
        self._peer: PeerWatch | None = None
        super().__init__(timeout=timeout, ring=ring, buffer_size=buffer_size)
        self.open()

    @property
    def source(self) -> str:
        return f"DECTRIS detector at tcp://{self.data_host}:{self.data_port}"

    @property
    def where(self) -> str:
        """The stream's address, for messages ("the DECTRIS detector at ...")."""
        return f"the {self.source}"

    def reconnect(self) -> None:
        """Close the stream and REST connections and open them again
        (upstream's name); a series already running is lost."""
        self.close()
        self.open()

    # --- sockets ------------------------------------------------------------------------------
    def _connect(self) -> None:
        zmqloop.warmup(v2=self.stream == "v2")
        self._ctx = zmq.Context()
        self._sock = zmq_pull_socket(self._ctx, f"tcp://{self.data_host}:{self.data_port}",
                                     rcvhwm=self.rcvhwm)
        self._peer = PeerWatch(self._sock)
        self._more_socks = [
            zmq_pull_socket(self._ctx, f"tcp://{self.data_host}:{self.data_port}",
                            rcvhwm=self.rcvhwm)
            for _ in range(self.receivers - 1)]

    def _disconnect(self) -> None:
        if self._peer is not None:
            self._peer.close(self._sock)
            self._peer = None
        for sock in self._more_socks:
            sock.close(linger=0)
        self._more_socks = []
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None
        if self._ctx is not None:
            self._ctx.term()
            self._ctx = None
        if self._api is not None:
            self._api.close()
            self._api = None

    # --- control plane -------------------------------------------------------------------------
    def get_api_client(self) -> SimplonClient:
        """The SIMPLON REST client (``sendDetectorCommand``, ``detectorConfig``, ...)."""
        if self._api is None:
            self._api = SimplonClient(self.api_host, self.api_port, timeout=self.api_timeout)
        return self._api

    def enable_stream(self) -> None:
        """Switch the DCU's stream interface on, with the header detail the
        receiver needs (the image count is in the configuration part)."""
        api = self.get_api_client()
        api.setStreamConfig("mode", "enabled")
        if self.stream == "v2":
            api.setStreamConfig("format", "cbor")
            return
        # stream V1 leaves ``format`` alone (firmware before 2022.1 lacks it); after
        # a V2 run, PUT stream/api/1.8.0/config/format "legacy" switches back
        api.setStreamConfig("header_detail", "basic")

    def get_active_controller(self, **settings: Any) -> DectrisActiveController:
        return DectrisActiveController(**settings)

    # --- data plane ------------------------------------------------------------------------------
    def frame_format(self, config: SeriesConfig, *, series: int | None = None,
                     excluded: np.ndarray | None = None) -> FrameFormat:
        """How the images of a series with ``config`` decode."""
        meta: dict[str, Any] = {"detector": "dectris", "series": series,
                                "detector_config": dict(config.raw)}
        if excluded is not None:
            meta["excluded_pixels"] = excluded
        if self.stream == "v2":
            # the compression travels with each image in stream V2
            meta["stream"] = "v2"
            meta["channel"] = self.channel
            return FrameFormat(sig_shape=config.shape, dtype=np.dtype(config.dtype),
                               decoder=DectrisV2Decoder(str(config.dtype), config.shape),
                               metadata=meta)
        try:
            decoder = DectrisDecoder(encoding_for(config), str(config.dtype), config.shape)
        except (MessageError, PayloadError) as e:
            raise FrameFormatError(
                f"series {series} from {self.where} cannot be decoded: {e}") from None
        return FrameFormat(sig_shape=config.shape, dtype=np.dtype(config.dtype),
                           decoder=decoder, metadata=meta)

    def find_series(self, timeout: float | None,
                    series: int | None = None) -> SeriesStart | None:
        """Wait for a series' global header (of ``series``, if given); None
        after ``timeout`` s.  Messages of other series are discarded."""
        self.check_idle()
        assert self._sock is not None
        return find_series(self._sock, timeout, series, self.where)

    def start_series(self, start: SeriesStart, nimages: int) -> FrameStream:
        """Receive the ``nimages`` images of the series ``start`` announced
        (the socket is positioned after its header)."""
        self.check_idle()
        assert self._sock is not None
        framing = DectrisFraming(self._sock, start, nimages, self.where, peer=self._peer)
        return self.start_stream(nimages, framing,
                                 name=f"libertem-live-dectris-{start.series}",
                                 info={"series": start.series})

    # --- stream V2 -------------------------------------------------------------------------------
    def frame_format_v2(self, start: SeriesStartV2, *, excluded: np.ndarray | None = None) -> FrameFormat:
        """How the images of a stream V2 series decode (the chosen channel)."""
        fmt = FrameFormat(sig_shape=start.shape, dtype=np.dtype(start.dtype),
                          decoder=DectrisV2Decoder(start.dtype.name, start.shape),
                          metadata={"detector": "dectris"})
        self.apply_start_v2(fmt, start, excluded=excluded)
        return fmt

    def apply_start_v2(self, fmt: FrameFormat, start: SeriesStartV2, *,
                       excluded: np.ndarray | None = None) -> None:
        """Bring what the ``start`` message of a stream V2 series says into
        ``fmt.metadata``: its pixel mask (nonzero pixels of the chosen
        channel's mask, or-ed with ``excluded``) as ``excluded_pixels``, its
        other fields as in :func:`series_info`.  Active mode builds ``fmt``
        from the REST configuration before arming and calls this once the
        start message is in, so the geometry is checked against it too."""
        where = f"series {start.series} from {self.where}"
        if self.channel not in start.channels:
            raise FrameFormatError(
                f"{where} has channels {list(start.channels)}, not {self.channel!r}; open the "
                "connection with channel= one of those")
        if tuple(fmt.sig_shape) != tuple(start.shape) or np.dtype(fmt.dtype) != start.dtype:
            raise FrameFormatError(
                f"{where} announces {start.dtype.name} images of {tuple(start.shape)} pixels, but "
                f"the detector configuration read before arming said {np.dtype(fmt.dtype).name} "
                f"and {tuple(fmt.sig_shape)}: was the detector reconfigured meanwhile?")
        mask = start.pixel_mask.get(self.channel)
        if mask is not None:
            if mask.shape != tuple(start.shape):
                raise FrameFormatError(
                    f"{where}: the pixel mask of channel {self.channel!r} is {mask.shape}, the "
                    f"images {tuple(start.shape)}")
            excluded = (mask != 0) if excluded is None else (excluded | (mask != 0))
        fmt.metadata.update(series_info(start, self.channel))
        if excluded is not None:
            fmt.metadata["excluded_pixels"] = excluded
        else:
            fmt.metadata.pop("excluded_pixels", None)

    def find_series_v2(self, timeout: float | None,
                       series: int | None = None) -> SeriesStartV2 | None:
        self.check_idle()
        assert self._sock is not None
        if self._more_socks:
            found = find_series_fanin([self._sock, *self._more_socks], timeout, series,
                                      self.where)
            if found is None:
                return None
            start, self._early = found
            return start
        return find_series_v2(self._sock, timeout, series, self.where)

    def start_series_v2(self, start: SeriesStartV2, nimages: int) -> FrameStream:
        self.check_idle()
        assert self._sock is not None
        framing: DectrisV2Framing | DectrisV2FanInFraming
        if self._more_socks:
            early, self._early = self._early, []
            framing = DectrisV2FanInFraming([self._sock, *self._more_socks], start, nimages,
                                            self.where, self.channel, early=early,
                                            peer=self._peer)
        else:
            framing = DectrisV2Framing(self._sock, start, nimages, self.where, self.channel,
                                       peer=self._peer)
        return self.start_stream(nimages, framing, name=f"libertem-live-dectris-{start.series}",
                                 info=series_info(start, self.channel))

    def wait_for_acquisition(self, timeout: float | None = None) -> DectrisPending | None:
        """Wait for a series armed by other software; None after ``timeout`` s."""
        self.check_idle()
        self.enable_stream()
        if self.stream == "v2":
            start2 = self.find_series_v2(timeout)
            if start2 is None:
                return None
            fmt = self.frame_format_v2(start2)
            return DectrisPending(start2, fmt, self.start_series_v2(start2, start2.n_images))
        start = self.find_series(timeout)
        if start is None:
            return None
        fmt = self.frame_format(start.config, series=start.series)
        return DectrisPending(start, fmt, self.start_series(start, start.config.n_images))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return (f"<DectrisConnection {state} api=http://{self.api_host}:{self.api_port} "
                f"data=tcp://{self.data_host}:{self.data_port} stream={self.stream}>")
