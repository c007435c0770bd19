"""Fault in the next acquisition's ring while the connection is idle.

Why: the core gives every acquisition a fresh shared-memory ring, and the
receiver cycles through all its slots, so each of its pages is faulted in
(allocated and zeroed) during the scan, inside ``recv_into``. On our 2-vCPU
VMs a fresh page costs ~10 us: 64 MiB are ~16,000 faults, ~0.16 s of the
receiver thread's CPU per acquisition - as much as receiving 100 MB.
Upstream keeps one ring per connection, so its pages stay warm.

What: the connection makes the FrameStream of the *next* scan as soon as it
starts waiting for one, and a daemon thread asks the kernel to populate its
pages (``madvise(MADV_POPULATE_WRITE)``, Linux >= 5.14, through ctypes so the
GIL is released). That never changes a byte, so it is harmless if the scan
starts (and the receiver writes) while it still runs; it only moves the
fault cost into the idle time between scans. Without the madvise flag
(older kernels, other systems) nothing is done.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys
import threading
from typing import Optional

import numpy as np

from libertem_live.transport.stream import FrameStream

__all__ = ["populate", "start_prefault"]

log = logging.getLogger(__name__)

_MADV_POPULATE_WRITE = 23  # linux/mman.h, Linux 5.14
_PAGE = 4096
_STEP = 4 << 20  # per madvise call: lets a closing stream stop the work soon


def _madvise() -> Optional[object]:
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


def populate(region: np.ndarray, stop: Optional[threading.Event] = None) -> int:
    """Populate the pages of ``region`` (writable, page-aligned numpy memory)
    without touching its contents; returns the bytes populated (0 if the
    system cannot)."""
    if _MADVISE is None or region.nbytes == 0:
        return 0
    start = region.ctypes.data
    end = start + region.nbytes
    start -= start % _PAGE
    done = 0
    pos = start
    while pos < end:
        if stop is not None and stop.is_set():
            break
        n = min(_STEP, end - pos)
        if _MADVISE(pos, n, _MADV_POPULATE_WRITE) != 0:  # type: ignore[operator]
            err = ctypes.get_errno()
            log.debug("asi_tpx3: MADV_POPULATE_WRITE failed (errno %d); not prefaulting", err)
            break
        done += n
        pos += n
    return done


def start_prefault(stream: FrameStream) -> Optional[threading.Thread]:
    """Populate ``stream``'s ring payload in a daemon thread (None if closed)."""
    views = stream.ring.views
    if views is None:
        return None
    payload = views.payload  # holds the mapping alive while the thread runs

    def run() -> None:
        populate(payload, stream.stop_event)

    t = threading.Thread(target=run, name="libertem-live-asi-tpx3-prefault", daemon=True)
    t.start()
    return t
