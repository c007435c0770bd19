"""Copies the array's frames into the ring, one thread per acquisition."""
from __future__ import annotations

import numpy as np

from libertem_live.transport.stream import FrameStream
from libertem_live.transport.thread import ReceiverThread


def start_receiver(stream: FrameStream, frames: np.ndarray, frames_per_stack: int,
                   truncate_after: int | None, delay_s: float = 0.0) -> ReceiverThread:
    """``frames`` has shape (N, *sig); frames are flushed every ``frames_per_stack``."""
    count = len(frames) if truncate_after is None else min(len(frames), truncate_after)

    def run(stream: FrameStream) -> None:
        writer = stream.writer()
        stop = stream.stop_event
        if delay_s and stop.wait(delay_s):
            return
        for i in range(count):
            if stop.is_set():
                return
            writer.put(i, frames[i].reshape(-1).view(np.uint8))
            if writer.pending >= frames_per_stack:
                writer.flush()
        writer.flush()
        stream.finish()

    return ReceiverThread(stream, run, name="libertem-live-memory-receiver").start()
