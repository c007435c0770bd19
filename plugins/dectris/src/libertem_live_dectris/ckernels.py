"""Batch decode kernels that call C code (bitshuffle, liblz4) from numba.

Why: the pure numba LZ4 decoder in :mod:`.kernels` copies byte by byte and
reaches only a fraction of C LZ4's speed (numbers in DECODE_NOTES.md). The
``bitshuffle`` wheel and ``python-lz4`` ship the C functions as exported
symbols of their extension modules, so we bind them with ctypes and call
them from inside a numba loop: one Python call per batch, C speed per frame,
and the GIL released while decoding.

The C functions are only ever given validated inputs: bitshuffle's
``bshuf_decompress_lz4`` trusts the block length fields, so every blob is
first walked by :func:`.kernels.check_bslz4_frame`; ``LZ4_decompress_safe``
is bounded by the compressed and output sizes we pass.

The kernels reference ctypes functions, so numba cannot cache them on disk:
each process compiles them on first use (about a second, see
:meth:`DectrisDecoder.warmup <libertem_live_dectris.decode.DectrisDecoder.warmup>`).
If a symbol is missing (another platform, a build without exported
symbols), the corresponding ``HAVE_*`` flag is False and decode.py falls back.
"""
from __future__ import annotations

import ctypes
import importlib
import logging

import numpy as np
from numba import njit

from .kernels import (
    _LITTLE_HOST, E_LZ4, E_LZ4_SIZE, KIND_BSLZ4, KIND_LZ4, OK,
    bitunshuffle_block, bitunshuffle_block_planes, bytes_to_out, check_bounds, check_bslz4_frame,
    _raw_frame,
)

log = logging.getLogger(__name__)


def _symbol(module: str, name: str):
    """ctypes handle of an exported C function of an extension module, or None."""
    try:
        mod = importlib.import_module(module)
        return getattr(ctypes.CDLL(mod.__file__), name)
    except (ImportError, OSError, AttributeError) as e:
        log.debug("%s from %s not usable: %s", name, module, e)
        return None


def _load_untrans():
    # bshuf_untrans_bit_elem un-shuffles one block with the best SIMD variant.
    # Deliberately not bshuf_decompress_lz4: that one runs an OpenMP loop over
    # the blocks, and with OMP_NUM_THREADS unset it was 20x *slower* on a
    # 2-core machine than single-threaded (DECODE_NOTES.md).
    fn = _symbol("bitshuffle.ext", "bshuf_untrans_bit_elem")
    if fn is not None:
        fn.restype = ctypes.c_int64
        # pointers passed as integers (numba gives us arr.ctypes.data as uintp)
        fn.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_size_t]
    return fn


def _load_lz4():
    # python-lz4 bundles liblz4; the bitshuffle wheel does too
    fn = _symbol("lz4.block._block", "LZ4_decompress_safe") or _symbol("bitshuffle.ext", "LZ4_decompress_safe")
    if fn is not None:
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int, ctypes.c_int]
    return fn


_bshuf_untrans = _load_untrans()
_lz4_decompress_safe = _load_lz4()
HAVE_LZ4 = _lz4_decompress_safe is not None
HAVE_BSHUF = HAVE_LZ4 and _bshuf_untrans is not None


if HAVE_LZ4:
    _c_lz4 = _lz4_decompress_safe

    @njit(nogil=True)
    def _lz4_c(src: np.ndarray, sp: int, send: int, dst: np.ndarray, dp0: int, dend: int) -> int:
        """Same contract as kernels._lz4_block, backed by liblz4."""
        if send - sp > 0x7FFFFFFF or dend - dp0 > 0x7FFFFFFF:
            return -1
        r = _c_lz4(src.ctypes.data + sp, dst.ctypes.data + dp0, send - sp, dend - dp0)
        if r < 0:
            return -1
        return r

    @njit(nogil=True)
    def decode_batch_lz4lib(
        kind: int, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
        out: np.ndarray, itemsize: int, err: np.ndarray,
    ) -> int:
        """kernels.decode_batch with liblz4 doing the LZ4 part (the backend where
        the bitshuffle wheel is missing); bslz4 blocks are un-shuffled by the
        plane-aware kernel, exact for any data."""
        n = offsets.shape[0]
        n_el = out.shape[1]
        nbytes = n_el * itemsize
        s64 = np.empty((nbytes + 7) // 8 + 1, dtype=np.uint64)
        scratch = s64.view(np.uint8)
        tmp = np.empty(32, dtype=np.uint64)
        dlen = data.shape[0]
        for i in range(n):
            o = offsets[i]
            s = sizes[i]
            err[0] = i
            if check_bounds(o, s, dlen, err) != OK:
                return err[1]
            row = out[i]
            if kind == KIND_BSLZ4:
                code, B = check_bslz4_frame(data, o, s, n_el, itemsize, err)
                if code != OK:
                    err[1] = code
                    return code
                p = o + 12
                nfull = n_el // B
                tail = n_el % 8
                short = (n_el % B) - tail
                nblocks = nfull + (1 if short > 0 else 0)
                for k in range(nblocks):
                    m = B if k < nfull else short
                    L = (np.int64(data[p]) << 24) | (np.int64(data[p + 1]) << 16) | (
                        np.int64(data[p + 2]) << 8) | np.int64(data[p + 3])
                    p += 4
                    r = _lz4_c(data, p, p + L, scratch, 0, m * itemsize)
                    if r < 0 or r != m * itemsize:
                        err[1] = E_LZ4 if r < 0 else E_LZ4_SIZE
                        err[2] = k
                        err[3] = r
                        err[4] = m * itemsize
                        return err[1]
                    if _LITTLE_HOST and m % 64 == 0:
                        bitunshuffle_block_planes(s64, m, itemsize, row, k * B, tmp, False)
                    else:
                        bitunshuffle_block(scratch, m, itemsize, row, k * B)
                    p += L
                bytes_to_out(data, p, tail, itemsize, row, n_el - tail)
            elif kind == KIND_LZ4:
                r = _lz4_c(data, o, o + s, scratch, 0, nbytes)
                if r < 0 or r != nbytes:
                    err[1] = E_LZ4 if r < 0 else E_LZ4_SIZE
                    err[2] = 0
                    err[3] = r
                    err[4] = nbytes
                    return err[1]
                bytes_to_out(scratch, 0, n_el, itemsize, row, 0)
            else:
                code = _raw_frame(data, o, s, row, itemsize)
                if code != OK:
                    err[1] = code
                    err[2] = nbytes
                    err[3] = s
                    return code
        return OK


if HAVE_BSHUF:
    _c_untrans = _bshuf_untrans

    @njit(nogil=True)
    def decode_batch_bshuf(
        data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
        out: np.ndarray, itemsize: int, err: np.ndarray,
    ) -> int:
        """bslz4 batch decode: liblz4 per block, then a plane-aware un-shuffle.

        Each block is LZ4-decoded into an L1-sized scratch and un-shuffled by
        :func:`.kernels.bitunshuffle_block_planes` straight into ``out`` (no
        intermediate pixel array, no separate conversion pass); ~1.5-2x
        faster than bitshuffle's SIMD ``bshuf_untrans_bit_elem`` + conversion
        on low-dose data (DECODE_NOTES.md). Blocks that use bit planes >= 8
        (dense data, where the SIMD code is faster), blocks whose element count
        is not a multiple of 64, and big-endian hosts still go through
        ``bshuf_untrans_bit_elem`` + a conversion of that block.
        """
        n = offsets.shape[0]
        n_el = out.shape[1]
        s64 = np.empty((n_el * itemsize + 7) // 8 + 1, dtype=np.uint64)
        scratch = s64.view(np.uint8)
        raw = np.empty(n_el * itemsize, dtype=np.uint8)
        tmp = np.empty(32, dtype=np.uint64)
        dlen = data.shape[0]
        for i in range(n):
            o = offsets[i]
            s = sizes[i]
            err[0] = i
            if check_bounds(o, s, dlen, err) != OK:
                return err[1]
            code, B = check_bslz4_frame(data, o, s, n_el, itemsize, err)
            if code != OK:
                err[1] = code
                return code
            row = out[i]
            p = o + 12
            nfull = n_el // B
            tail = n_el % 8
            short = (n_el % B) - tail
            nblocks = nfull + (1 if short > 0 else 0)
            for k in range(nblocks):
                m = B if k < nfull else short
                L = (np.int64(data[p]) << 24) | (np.int64(data[p + 1]) << 16) | (
                    np.int64(data[p + 2]) << 8) | np.int64(data[p + 3])
                p += 4
                r = _lz4_c(data, p, p + L, scratch, 0, m * itemsize)
                if r < 0 or r != m * itemsize:
                    err[1] = E_LZ4 if r < 0 else E_LZ4_SIZE
                    err[2] = k
                    err[3] = r
                    err[4] = m * itemsize
                    return err[1]
                # blocks using planes >= 8 (dense data) go to the SIMD code
                if not (_LITTLE_HOST and m % 64 == 0
                        and bitunshuffle_block_planes(s64, m, itemsize, row, k * B, tmp, True)):
                    _c_untrans(scratch.ctypes.data, raw.ctypes.data, m, itemsize)
                    # (a block-local view of row lets LLVM vectorise the conversion)
                    bytes_to_out(raw, 0, m, itemsize, row[k * B:k * B + m], 0)
                p += L
            bytes_to_out(data, p, tail, itemsize, row, n_el - tail)
        return OK
