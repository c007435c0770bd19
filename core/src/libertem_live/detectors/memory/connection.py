"""Connection of the memory driver."""
from __future__ import annotations

import math
import threading
from typing import Any, Sequence

import numpy as np

from libertem_live.driver import (
    BaseConnection, Fault, FrameFormat, FrameStream, PendingStream, RawDecoder, RingConfig,
    parse_fault,
)
from libertem_live.detectors.memory.controller import MemoryController
from libertem_live.detectors.memory.extra import apply_extra_kwargs
from libertem_live.detectors.memory.receiver import SUPPORTED_FAULTS, MemoryFraming


class MemoryPending(PendingStream):
    def __init__(self, conn: MemoryConnection, stream: FrameStream):
        self._stream: FrameStream | None = stream
        self.nimages = conn.nframes
        self.nav_shape: tuple[int, ...] | None = (
            conn.nav_shape if conn.announce_nav_shape else None)
        self.format = conn.frame_format()


class MemoryConnection(BaseConnection):
    detector_name = "memory"
    default_ring = None  # type: ignore[assignment]  # sized from the array, see __init__

    def __init__(self, data: np.ndarray | None, *, sig_dims: int = 2, frames_per_stack: int = 64,
                 truncate_after: int | None = None, passive_count: int | None = None,
                 timeout: float = 10.0, ring: RingConfig | None = None,
                 start_delay: float = 0.0, announce_nav_shape: bool = True,
                 nav_shape: tuple[int, ...] | None = None, sparse: bool = False,
                 fault: str | Fault | None = None, array_backends: Sequence[str] | None = None,
                 extra_kwargs: dict[str, Any] | None = None):
        if extra_kwargs:
            data, sig_dims, nav_shape, array_backends = apply_extra_kwargs(
                extra_kwargs, data, sig_dims, nav_shape, array_backends)
        if data is None:
            raise TypeError("the memory driver needs data= (an array of shape nav + sig), or "
                            "extra_kwargs={'datashape': shape} for random data of that shape")
        data = np.asarray(data)
        self.array_backends = None if array_backends is None else tuple(array_backends)
        if data.ndim < sig_dims + 1:
            raise ValueError(
                f"data must have at least one nav dimension and {sig_dims} sig dimensions, "
                f"got shape {data.shape}"
            )
        self.data = data
        self.sig_shape = tuple(data.shape[-sig_dims:])
        self._frames = data.reshape((-1,) + self.sig_shape)
        self.nav_shape = tuple(data.shape[:-sig_dims]) if nav_shape is None else tuple(nav_shape)
        self.nframes = int(math.prod(self.nav_shape))
        self.frames_per_stack = frames_per_stack
        self.truncate_after = truncate_after
        self.passive_count = passive_count
        self.start_delay = start_delay
        self.announce_nav_shape = announce_nav_shape
        self.sparse = sparse
        self.fault = None if fault is None else parse_fault(fault)
        self.series = 0
        """Acquisitions started so far (the memory detector's series id)."""
        if self.fault is not None and self.fault.kind not in SUPPORTED_FAULTS:
            raise ValueError(f"the memory driver cannot inject {self.fault.kind.value!r}; "
                             f"it can: {sorted(k.value for k in SUPPORTED_FAULTS)}")
        frame_bytes = data.dtype.itemsize * math.prod(self.sig_shape)
        super().__init__(timeout=timeout, ring=ring or RingConfig(
            num_slots=16, slot_bytes=max(frame_bytes * frames_per_stack, 1 << 16),
            max_frames=frames_per_stack,
        ))
        self.open()

    @property
    def source(self) -> str:
        return "memory detector"

    def frame_format(self) -> FrameFormat:
        return FrameFormat(
            sig_shape=self.sig_shape, dtype=self.data.dtype,
            decoder=RawDecoder(self.data.dtype, self.sig_shape),
            sparse=self.sparse,
            metadata={"detector": "memory"},
            array_backends=self.array_backends,
        )

    def start_series(self, nimages: int) -> FrameStream:
        fault, self.fault = self.fault, None  # a fault hits the next acquisition only
        framing = MemoryFraming(self._frames, nimages, self.frames_per_stack,
                                self.truncate_after, self.start_delay, fault)
        self.series += 1
        return self.start_stream(nimages, framing, info={"series": self.series})

    def wait_for_acquisition(self, timeout: float | None = None) -> MemoryPending | None:
        self.check_idle()
        if self.passive_count is not None:
            if self.passive_count <= 0:
                if timeout:
                    threading.Event().wait(timeout)
                return None
            self.passive_count -= 1
        return MemoryPending(self, self.start_series(self.nframes))

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
        return MemoryController(settings, nav_shape=self.nav_shape)
