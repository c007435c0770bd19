"""Rings kept from one acquisition to the next on the same connection.

Why: a fresh shared-memory segment is paid for in page faults.  Filling a
new 128 MiB ring costs the receiver about 40,000 faults (the kernel zeroes
every page, ~10 µs each on our 2-vCPU machines) and each worker more when
it maps the segment: about a tenth of a 4096-frame acquisition of 512x512
frames.  A kept ring is mapped everywhere already, and the workers find it
under the same name.  For the first acquisition a connection can
:meth:`~RingPool.prepare` a ring while it is idle: a background thread asks
the kernel to populate its pages (``MADV_POPULATE_WRITE``, Linux >= 5.14),
which never changes a byte, so a receiver may start writing meanwhile.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading
from typing import Any

from libertem_live.transport.ring import Ring, RingConfig

log = logging.getLogger(__name__)

_MADV_POPULATE_WRITE = 23
_PAGE = 4096
_STEP = 4 << 20


def _madvise() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.madvise
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


_MADVISE = _madvise()


def populate(ring: Ring, stop: threading.Event | None = None) -> int:
    """Fault in the pages of ``ring``'s payload without touching its bytes;
    returns the bytes populated (0 where the system cannot)."""
    views = ring.views
    if _MADVISE is None or views is None:
        return 0
    payload = views.payload
    start = payload.ctypes.data
    end = start + payload.nbytes
    start -= start % _PAGE
    pos = start
    while pos < end:
        if (stop is not None and stop.is_set()) or ring.closed:
            break
        n = min(_STEP, end - pos)
        if _MADVISE(pos, n, _MADV_POPULATE_WRITE) != 0:
            log.debug("MADV_POPULATE_WRITE failed (errno %d); not prefaulting",
                      ctypes.get_errno())
            break
        pos += n
    return pos - start


class RingPool:
    """At most ``keep`` idle rings; owned by a connection and closed with it."""

    def __init__(self, keep: int = 1):
        self.keep = keep
        self._idle: list[tuple[RingConfig, Ring]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def take(self, config: RingConfig) -> Ring:
        """An idle ring of this configuration, or a new one."""
        with self._lock:
            for i, (cfg, ring) in enumerate(self._idle):
                if cfg == config:
                    del self._idle[i]
                    return ring
        return Ring(config.num_slots, config.slot_bytes, config.max_frames)

    def prepare(self, config: RingConfig) -> None:
        """Have an idle ring of ``config`` ready, its pages faulted in by a
        background thread (connections call this when they open or start
        waiting for an acquisition)."""
        with self._lock:
            if self._closed or any(cfg == config for cfg, _ring in self._idle):
                return
        ring = Ring(config.num_slots, config.slot_bytes, config.max_frames)
        self.give(config, ring)
        if not ring.closed:
            t = threading.Thread(target=populate, args=(ring, self._stop), daemon=True,
                                 name="libertem-live-ring-prefault")
            t.start()
            self._threads = [x for x in self._threads if x.is_alive()] + [t]

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
        self._stop.set()
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for t in self._threads:
            t.join(5.0)
        for _cfg, ring in idle:
            ring.close()
