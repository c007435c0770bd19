"""Keep freed heap memory in the processes that decode, instead of giving it back.

Why: every partition allocates a few MiB to tens of MiB of short-lived
arrays (the decoder's CSR output, LiberTEM's ``vstack`` of the pieces, the
UDF's temporaries). glibc serves allocations above its *mmap threshold*
(128 KiB at start, raised on the fly up to 32 MiB) with fresh ``mmap``s and
trims the heap top beyond twice that, so these arrays land on fresh pages
again and again. A fresh page costs a page fault plus zeroing: ~10 us per
4 KiB on the 2-vCPU VMs we measure on (~2.5 ms per MiB). Measured end to end
(512x512 scan, 100 events/frame, SumUDF on CSR tiles, two workers): the
workers took ~160,000 page faults and ~0.55 s of system time per
acquisition, more than the decoding itself; with the heap kept, 2,000
faults and 0.06 s.

What: on first use in a process (a LiberTEM worker, or the main process
with the inline executor), raise ``M_MMAP_THRESHOLD`` to its maximum
(32 MiB) and ``M_TRIM_THRESHOLD`` to 1 GiB via ``mallopt``. The process then
keeps its peak heap (memory it used anyway) and reuses it. glibc/Linux
only; elsewhere, or with ``LIBERTEM_LIVE_TPX3_KEEP_HEAP=0`` in the
environment, nothing changes.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3
#: largest mmap threshold glibc accepts on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)
MMAP_THRESHOLD = 32 << 20
TRIM_THRESHOLD = 1 << 30

_state: dict[int, bool] = {}  # pid -> applied (fork-safe: children check again)


def keep_freed_memory() -> bool:
    """Apply the malloc settings once per process; True if they are in effect."""
    pid = os.getpid()
    done = _state.get(pid)
    if done is not None:
        return done
    ok = False
    if sys.platform.startswith("linux") and os.environ.get(
            "LIBERTEM_LIVE_TPX3_KEEP_HEAP", "1") != "0":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
            ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
                mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        except (OSError, AttributeError):  # not glibc (musl has no mallopt)
            ok = False
        if not ok:
            log.debug("asi_tpx3: mallopt not available; freed memory goes back to the OS")
    _state[pid] = ok
    return ok
