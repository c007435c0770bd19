"""The memory driver's framing: copies the array's frames into the ring, a
stack per call, and injects the stream faults the conformance kit asks for."""
from __future__ import annotations

import threading
import time

import numpy as np

from libertem_live.driver import Fault, FaultKind, RingWriter

#: faults an array can express (it has no connection to drop or stall)
SUPPORTED_FAULTS = frozenset({
    FaultKind.FRAME_GAP, FaultKind.DUPLICATE_FRAME, FaultKind.OUT_OF_ORDER,
    FaultKind.TRUNCATED_PAYLOAD, FaultKind.WRONG_FORMAT, FaultKind.ENDS_SHORT,
    FaultKind.NEVER_ENDS,
})
#: faults an array cannot express, and why (the conformance kit shows these)
INEXPRESSIBLE = {
    FaultKind.CORRUPT_PAYLOAD: "raw pixels carry no checksum: any bytes are valid pixels",
    FaultKind.STALL_MID_FRAME: "an array has no connection that could stall",
    FaultKind.DISCONNECT_MID_STREAM: "an array has no connection to drop",
    FaultKind.RESTART_BETWEEN: "an array has no detector software to restart",
}


class MemoryFraming:
    """Sends ``nimages`` frames, cycling through ``frames`` (shape (N, *sig))
    when the scan is longer than the array."""

    def __init__(self, frames: np.ndarray, nimages: int, frames_per_stack: int,
                 truncate_after: int | None, delay_s: float = 0.0,
                 fault: Fault | None = None):
        self.count = nimages if truncate_after is None else min(nimages, truncate_after)
        self.rows = np.ascontiguousarray(frames).reshape(len(frames), -1).view(np.uint8)
        self.frames_per_stack = frames_per_stack
        self.delay_s = delay_s
        self.fault = fault
        self.at = -1 if fault is None else fault.at(nimages)
        if fault is not None and fault.kind is FaultKind.ENDS_SHORT:
            self.count = min(self.count, self.at)
        self.sent = 0
        self.start: float | None = None

    def receive(self, out: RingWriter, stop: threading.Event) -> bool:
        if self.delay_s:
            if self.start is None:
                self.start = time.monotonic()
            left = self.start + self.delay_s - time.monotonic()
            if left > 0:
                stop.wait(min(left, 0.05))
                return True
            self.delay_s = 0.0
        i = self.sent
        if i >= self.count:
            if self.fault is not None and self.fault.kind is FaultKind.NEVER_ENDS:
                time.sleep(0.05)
                return True
            return False
        if i == self.at and self.fault is not None:
            self._inject(out, i)
            return True
        pool = len(self.rows)
        first = i % pool
        n = min(self.count - i, pool - first, self.frames_per_stack)
        if i < self.at < i + n:
            n = self.at - i
        self.sent += out.put_frames(i, self.rows[first:first + n])
        return True

    def _inject(self, out: RingWriter, i: int) -> None:
        kind = self.fault.kind  # type: ignore[union-attr]
        row = self.rows[i % len(self.rows)]
        if kind is FaultKind.FRAME_GAP:
            self.sent += 1
        elif kind is FaultKind.DUPLICATE_FRAME:
            out.put(i, row)
            out.put(i, row)
            self.sent += 1
        elif kind is FaultKind.OUT_OF_ORDER and i + 1 < self.count:
            out.put(i + 1, self.rows[(i + 1) % len(self.rows)])
            out.put(i, row)
            self.sent += 2
        elif kind is FaultKind.TRUNCATED_PAYLOAD:
            out.put(i, row[:len(row) // 2])
            self.sent += 1
        elif kind is FaultKind.WRONG_FORMAT:
            out.put(i, np.concatenate([row, row]))
            self.sent += 1
        else:
            out.put(i, row)
            self.sent += 1
