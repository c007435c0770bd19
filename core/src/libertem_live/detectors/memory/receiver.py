"""Copies the array's frames into the ring, one thread per acquisition."""
from __future__ import annotations

import numpy as np

from libertem_live.transport.stream import FrameStream
from libertem_live.transport.thread import ReceiverThread


def start_receiver(stream: FrameStream, frames: np.ndarray, nimages: int,
                   frames_per_stack: int, truncate_after: int | None,
                   delay_s: float = 0.0) -> ReceiverThread:
    """Sends ``nimages`` frames, cycling through ``frames`` (shape (N, *sig)) when
    the scan is longer than the array; flushes every ``frames_per_stack``."""
    count = nimages if truncate_after is None else min(nimages, truncate_after)
    pool = len(frames)
    rows = np.ascontiguousarray(frames).reshape(pool, -1).view(np.uint8)

    def run(stream: FrameStream) -> None:
        writer = stream.writer()
        stop = stream.stop_event
        if delay_s and stop.wait(delay_s):
            return
        i = 0
        while i < count:
            if stop.is_set():
                return
            first = i % pool
            n = max(1, min(count - i, pool - first, frames_per_stack - writer.pending))
            i += writer.put_frames(i, rows[first:first + n])
            if writer.pending >= frames_per_stack:
                writer.flush()
        writer.flush()
        stream.finish()

    return ReceiverThread(stream, run, name="libertem-live-memory-receiver").start()
