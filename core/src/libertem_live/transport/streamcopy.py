"""Copies into the ring that bypass the CPU caches (non-temporal stores).

A receiver writes a frame into the ring long before a worker reads it: the
ring is far larger than the caches, so the frame's cache lines are evicted
before anyone reads them.  An ordinary store first reads the destination
line from memory (read for ownership) and later writes it back, moving the
frame's bytes three times; a non-temporal store writes it once.  On the
reference VM a 512 KiB frame copy into a 128 MiB ring went from 6.4-6.8 to
10.8-11.4 GB/s, and the memory traffic the workers compete with drops by a
third.

The stores are weakly ordered, so :func:`stream_copy` ends with a full
fence (and ``sfence`` on x86): whatever publishes the frames afterwards is
ordered after them.
"""
from __future__ import annotations

import platform

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

_VEC = 16
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _stream_vectors(typingctx, dst_addr, src_addr, nvec):  # type: ignore[no-untyped-def]
    """Copy ``nvec`` 16-byte vectors from ``src_addr`` to ``dst_addr`` (16-byte
    aligned) with non-temporal stores, then fence."""
    sig = types.void(types.uintp, types.uintp, types.intp)

    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        dst, src, n = args
        vec = ir.VectorType(ir.IntType(8), _VEC)
        dptr = builder.inttoptr(dst, vec.as_pointer())
        sptr = builder.inttoptr(src, vec.as_pointer())
        nontemporal = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        with cgutils.for_range(builder, n) as loop:
            value = builder.load(builder.gep(sptr, [loop.index]), align=1)
            store = builder.store(value, builder.gep(dptr, [loop.index]), align=_VEC)
            store.set_metadata("nontemporal", nontemporal)
        if _X86:
            fnty = ir.FunctionType(ir.VoidType(), [])
            sfence = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.sfence")
            builder.call(sfence, [])
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return sig, codegen


@njit(nogil=True, cache=True)
def stream_copy(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[:] = src`` for contiguous 1-D uint8 arrays of equal length,
    bypassing the caches for the 16-byte-aligned middle."""
    n = src.shape[0]
    if dst.shape[0] != n:
        raise ValueError("stream_copy: source and destination differ in length")
    head = min(n, (-dst.ctypes.data) & (_VEC - 1))
    for i in range(head):
        dst[i] = src[i]
    nvec = (n - head) // _VEC
    if nvec > 0:
        _stream_vectors(dst.ctypes.data + head, src.ctypes.data + head, nvec)
    for i in range(head + nvec * _VEC, n):
        dst[i] = src[i]


@njit(nogil=True, cache=True)
def copy_frames(payload: np.ndarray, table: np.ndarray, row: int, fill: int,
                frames: np.ndarray, stride: int) -> None:
    """Store ``frames`` (uint8, one frame per row, C order) in a slot's
    ``payload`` from byte ``fill`` on, ``stride`` bytes apart, and book them
    in the slot's frame ``table`` from ``row`` on (offset, size, aux 0)."""
    nbytes = frames.shape[1]
    for j in range(frames.shape[0]):
        offset = fill + j * stride
        stream_copy(payload[offset:offset + nbytes], frames[j])
        table[0, row + j] = offset
        table[1, row + j] = nbytes
        table[2, row + j] = 0
