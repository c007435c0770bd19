"""Keep freed heap memory in the processes of a live run instead of giving it
back to the operating system.

Why: every partition allocates and frees arrays of a few MiB (tile buffers,
decoder output, LiberTEM's partition results, which the main process
unpickles and merges).  glibc serves allocations above its *mmap threshold*
(128 KiB at start, raised on the fly up to 32 MiB) with fresh ``mmap`` s and
trims the heap top, so these arrays land on fresh pages again and again; a
fresh page costs a fault plus zeroing, about 10 µs per 4 KiB on the 2-vCPU
machines we measure on.  Measured: the TPX3 workers took ~160,000 faults and
0.55 s of system time per acquisition, 2,000 and 0.06 s with the heap kept;
the main process of a DECTRIS 512x512 run ~30,000 faults per acquisition.

What: raise ``M_MMAP_THRESHOLD`` to glibc's maximum (32 MiB) and
``M_TRIM_THRESHOLD`` to 1 GiB, once per process (the LiveContext does it in
its own process and in every worker).  A process then keeps its peak heap,
memory it used anyway, and reuses it.  glibc only; elsewhere, or with
``LIBERTEM_LIVE_KEEP_HEAP=0`` in the environment, nothing changes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30

_applied: dict[int, bool] = {}


def keep_freed_memory() -> bool:
    """Apply the malloc settings once per process; True if they are in effect."""
    pid = os.getpid()
    done = _applied.get(pid)
    if done is not None:
        return done
    ok = False
    if sys.platform.startswith("linux") and os.environ.get("LIBERTEM_LIVE_KEEP_HEAP", "1") != "0":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
            ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        except (OSError, AttributeError):
            ok = False
        if not ok:
            log.debug("mallopt not available; freed memory goes back to the OS")
    _applied[pid] = ok
    return ok
