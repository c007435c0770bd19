"""Connection of the memory driver."""
from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from libertem_live.detectors.memory.controller import MemoryController
from libertem_live.detectors.memory.decode import RawDecoder
from libertem_live.detectors.memory.receiver import start_receiver
from libertem_live.errors import AcquisitionStateError
from libertem_live.pending import PendingStream
from libertem_live.protocols import FrameFormat
from libertem_live.transport.pool import RingPool
from libertem_live.transport.stream import FrameStream, RingConfig


class MemoryPending(PendingStream):
    def __init__(self, conn: MemoryConnection, stream: FrameStream):
        self._conn = conn
        self._stream: FrameStream | None = stream
        self.nimages = conn.nframes
        self.nav_shape: tuple[int, ...] | None = (
            conn.nav_shape if conn.announce_nav_shape else None)
        self.format = conn.frame_format()



class MemoryConnection:
    detector_name = "memory"

    def __init__(self, data: np.ndarray, *, sig_dims: int = 2, frames_per_stack: int = 64,
                 truncate_after: int | None = None, passive_count: int | None = None,
                 timeout: float = 10.0, ring: RingConfig | None = None,
                 start_delay: float = 0.0, announce_nav_shape: bool = True,
                 nav_shape: tuple[int, ...] | None = None, sparse: bool = False):
        data = np.asarray(data)
        if data.ndim < sig_dims + 1:
            raise ValueError(
                f"data must have at least one nav dimension and {sig_dims} sig dimensions, "
                f"got shape {data.shape}"
            )
        self.data = data
        self.sig_shape = tuple(data.shape[-sig_dims:])
        self._pool = data.reshape((-1,) + self.sig_shape)
        self.nav_shape = tuple(data.shape[:-sig_dims]) if nav_shape is None else tuple(nav_shape)
        self.nframes = int(math.prod(self.nav_shape))
        self.frames_per_stack = frames_per_stack
        self.truncate_after = truncate_after
        self.passive_count = passive_count
        self.timeout = timeout
        frame_bytes = data.dtype.itemsize * math.prod(self.sig_shape)
        self.ring = ring or RingConfig(
            num_slots=16, slot_bytes=max(frame_bytes * frames_per_stack, 1 << 16),
            max_frames=frames_per_stack,
        )
        self.start_delay = start_delay
        self.announce_nav_shape = announce_nav_shape
        self.sparse = sparse
        self._lock = threading.Lock()
        self._streams: list[FrameStream] = []
        self._rings = RingPool()
        self._rings.prepare(self.ring)
        self._closed = False

    def frame_format(self) -> FrameFormat:
        return FrameFormat(
            sig_shape=self.sig_shape, dtype=self.data.dtype,
            decoder=RawDecoder(self.data.dtype, self.sig_shape),
            sparse=self.sparse,
            metadata={"detector": "memory"},
        )

    def _check_open(self) -> None:
        if self._closed:
            raise AcquisitionStateError(
                "this memory connection is closed; open a new one or use `with conn:`"
            )

    def start_stream(self, nimages: int) -> FrameStream:
        self._check_open()
        stream = FrameStream(nimages, ring=self.ring, timeout=self.timeout,
                             source="memory detector", pool=self._rings)
        start_receiver(stream, self._pool, nimages, self.frames_per_stack,
                       self.truncate_after, self.start_delay)
        with self._lock:
            self._streams = [s for s in self._streams if not s.closed] + [stream]
        return stream

    def wait_for_acquisition(self, timeout: float | None = None) -> MemoryPending | None:
        self._check_open()
        if self.passive_count is not None:
            if self.passive_count <= 0:
                if timeout:
                    threading.Event().wait(timeout)
                return None
            self.passive_count -= 1
        return MemoryPending(self, self.start_stream(self.nframes))

    def announce(self, count: int = 1) -> None:
        """Stand-in for external software arming the detector: makes ``count``
        more acquisitions available to ``wait_for_acquisition`` (only matters
        when the connection was opened with a ``passive_count``)."""
        if self.passive_count is not None:
            self.passive_count += count

    def get_active_controller(self, **settings: Any) -> MemoryController:
        """The memory detector takes any settings (``trigger_mode=...``,
        ``frame_time=...``) so that scripts for real detectors run on it; they
        are recorded in the acquisition's metadata, not interpreted."""
        return MemoryController(self, settings)

    def open(self) -> MemoryConnection:
        if self._closed:
            self._rings = RingPool()
            self._rings.prepare(self.ring)
        self._closed = False
        return self

    def close(self) -> None:
        with self._lock:
            streams, self._streams = self._streams, []
        for s in streams:
            s.close()
        self._rings.close()
        self._closed = True

    def __enter__(self) -> MemoryConnection:
        if self._closed:
            self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_connection(data: np.ndarray, **params: Any) -> MemoryConnection:
    return MemoryConnection(data, **params)
