"""Rings kept from one acquisition to the next on the same connection.

Why: a fresh shared-memory segment is paid for in page faults.  Filling a
new 128 MiB ring costs the receiver about 40,000 faults (the kernel zeroes
every page) and each worker more when it maps the segment: about a tenth of
a 4096-frame acquisition of 512x512 frames.  A kept ring is mapped
everywhere already, and the workers find it under the same name.
"""
from __future__ import annotations

import threading

from libertem_live.transport.ring import Ring, RingConfig


class RingPool:
    """At most ``keep`` idle rings; owned by a connection and closed with it."""

    def __init__(self, keep: int = 1):
        self.keep = keep
        self._idle: list[tuple[RingConfig, Ring]] = []
        self._lock = threading.Lock()
        self._closed = False

    def take(self, config: RingConfig) -> Ring:
        """An idle ring of this configuration, or a new one."""
        with self._lock:
            for i, (cfg, ring) in enumerate(self._idle):
                if cfg == config:
                    del self._idle[i]
                    return ring
        return Ring(config.num_slots, config.slot_bytes, config.max_frames)

    def give(self, config: RingConfig, ring: Ring) -> None:
        """Keep ``ring`` for the next acquisition if nothing can still touch
        it; free it otherwise (or when the pool is full or closed)."""
        if ring.closed:
            return
        free: list[Ring] = [ring]
        with self._lock:
            if not self._closed and ring.idle():
                self._idle.append((config, ring))
                free = [old for _cfg, old in self._idle[:-self.keep or None]]
                del self._idle[:-self.keep or None]
        for r in free:
            r.close()

    def close(self) -> None:
        """Free every kept ring (the connection closes)."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for _cfg, ring in idle:
            ring.close()
