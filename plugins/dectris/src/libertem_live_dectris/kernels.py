"""numba kernels for the DECTRIS pixel encodings (bitshuffle + LZ4, LZ4, raw).

This module exists so that the decoder works without any C extension: the
``bitshuffle`` wheel is not available for every Python version and platform,
and upstream's Rust decoder is not ours to use. Everything here is a plain
function over numpy arrays, compiled with ``nogil=True`` so worker threads can
decode in parallel, and ``cache=True`` so worker processes do not pay the
compile time again after the first run on a machine.

Safety: the payload comes from the network, so every length, offset and
size read from it is checked before it is used. numba does no bounds checking
by default, so the checks below are the only thing between a corrupt blob
and a segfault; the fuzz tests in ``tests/test_decode.py`` exercise them.

Error reporting: kernels return an int code (0 = OK) and fill a small int64
``err`` array with details (frame index, block index, sizes).
``decode.py`` turns that into a :class:`~libertem_live_dectris.errors.PayloadError`
with a readable message. Raising from numba would lose the details.
"""
from __future__ import annotations

import sys

import numpy as np
from numba import njit

# --- error codes (mirrored as messages in decode.py) ---
OK = 0
E_BOUNDS = 1  # offset/size of frame outside of the data buffer: a=offset, b=size, c=len(data)
E_TRUNC_HEADER = 2  # bslz4 blob shorter than 12 bytes: a=size
E_HEADER_SIZE = 3  # header uncompressed size != expected: a=expected, b=got
E_BLOCK_SIZE = 4  # bad block size in header: a=value (bytes), b=itemsize
E_TRUNC_BLOCKLEN = 5  # no room for block k's 4-byte length field: a=k, b=bytes left
E_BLOCK_OVERRUN = 6  # block k's compressed length beyond the blob: a=k, b=length, c=bytes left
E_LZ4 = 7  # corrupt LZ4 block: a=k (block index, 0 for lz4<), b=lz4 code
E_LZ4_SIZE = 8  # LZ4 block k decoded to b bytes, expected c
E_TAIL = 9  # blob size mismatch after the blocks: a=expected tail bytes, b=bytes left
E_RAW_SIZE = 10  # raw payload has b bytes, expected a

# lz4 sub-codes (negative return values of _lz4_block)
LZ4_TRUNCATED = -1
LZ4_OUTPUT_OVERFLOW = -2
LZ4_BAD_OFFSET = -3

ERR_LEN = 5  # err = [frame, code, a, b, c]


def default_block_elements(itemsize: int) -> int:
    """Default bitshuffle block size in elements for ``itemsize`` bytes/element.

    Used when the header's block size field is 0 (LT-rs' mock data) and by the
    encoder; the formula is the bitshuffle library's.
    """
    return max(128, (8192 // itemsize // 8) * 8)


_default_block_elements = njit(cache=True, nogil=True)(default_block_elements)


@njit(cache=True, nogil=True)
def _be32(buf: np.ndarray, p: int) -> int:
    return (
        (np.int64(buf[p]) << 24)
        | (np.int64(buf[p + 1]) << 16)
        | (np.int64(buf[p + 2]) << 8)
        | np.int64(buf[p + 3])
    )


@njit(cache=True, nogil=True)
def _lz4_block(src: np.ndarray, sp: int, send: int, dst: np.ndarray, dp0: int, dend: int) -> int:
    """Decompress the raw LZ4 block ``src[sp:send]`` into ``dst[dp0:dend]``.

    Returns the number of bytes written, or a negative ``LZ4_*`` code. Never
    reads outside ``src[sp:send]`` nor writes outside ``dst[dp0:dend]``.
    """
    dp = dp0
    while True:
        if sp >= send:
            return LZ4_TRUNCATED
        token = np.int64(src[sp])
        sp += 1
        lit = token >> 4
        if lit == 15:
            while True:
                if sp >= send:
                    return LZ4_TRUNCATED
                b = np.int64(src[sp])
                sp += 1
                lit += b
                if b != 255:
                    break
        if lit > 0:
            if lit > send - sp:
                return LZ4_TRUNCATED
            if lit > dend - dp:
                return LZ4_OUTPUT_OVERFLOW
            for t in range(lit):
                dst[dp + t] = src[sp + t]
            sp += lit
            dp += lit
        if sp == send:
            # the last sequence of a block has literals only
            return dp - dp0
        if send - sp < 2:
            return LZ4_TRUNCATED
        off = np.int64(src[sp]) | (np.int64(src[sp + 1]) << 8)
        sp += 2
        if off == 0 or off > dp - dp0:
            return LZ4_BAD_OFFSET
        ml = (token & 15) + 4
        if (token & 15) == 15:
            while True:
                if sp >= send:
                    return LZ4_TRUNCATED
                b = np.int64(src[sp])
                sp += 1
                ml += b
                if b != 255:
                    break
        if ml > dend - dp:
            return LZ4_OUTPUT_OVERFLOW
        # Overlapping copy (off < ml, e.g. runs of zeros with off=1): the
        # region [ms, dp) is periodic with period off, so copy it in
        # non-overlapping chunks that double in size instead of byte by byte.
        ms = dp - off
        end = dp + ml
        while dp < end:
            c = min(dp - ms, end - dp)
            for t in range(c):
                dst[dp + t] = dst[ms + t]
            dp += c


@njit(cache=True, nogil=True, inline="always")
def _transpose8(x: np.uint64) -> np.uint64:
    """Transpose an 8x8 bit matrix (row r = byte r, column c = bit c)."""
    t = (x ^ (x >> np.uint64(7))) & np.uint64(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << np.uint64(7))
    t = (x ^ (x >> np.uint64(14))) & np.uint64(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << np.uint64(14))
    t = (x ^ (x >> np.uint64(28))) & np.uint64(0x00000000F0F0F0F0)
    x = x ^ t ^ (t << np.uint64(28))
    return x


@njit(cache=True, nogil=True)
def _gather(buf: np.ndarray, base: int, stride: int) -> np.uint64:
    """Bytes ``buf[base + j*stride]`` for j = 0..7 packed LSB-first into a u64."""
    x = np.uint64(0)
    for j in range(8):
        x |= np.uint64(buf[base + j * stride]) << np.uint64(8 * j)
    return x


@njit(cache=True, nogil=True)
def _unshuffle_bytes(src: np.ndarray, m: int, itemsize: int, out: np.ndarray, e0: int, g0: int, g1: int) -> None:
    """Byte-level unshuffle of element groups ``g0..g1`` (8 elements each)."""
    nb = m // 8  # bytes per bit-plane
    ff = np.uint64(0xFF)
    for g in range(g0, g1):
        v0 = np.uint64(0)
        v1 = np.uint64(0)
        v2 = np.uint64(0)
        v3 = np.uint64(0)
        x0 = _gather(src, g, nb)
        if itemsize >= 2:
            v1 = _gather(src, g + 8 * nb, nb)
        if itemsize == 4:
            v2 = _gather(src, g + 16 * nb, nb)
            v3 = _gather(src, g + 24 * nb, nb)
        if (x0 | v1 | v2 | v3) == 0:
            for r in range(8):
                out[e0 + 8 * g + r] = 0
            continue
        x0 = _transpose8(x0)
        if itemsize >= 2:
            v1 = _transpose8(v1)
        if itemsize == 4:
            v2 = _transpose8(v2)
            v3 = _transpose8(v3)
        for r in range(8):
            sh = np.uint64(8 * r)
            v = ((x0 >> sh) & ff) | (((v1 >> sh) & ff) << np.uint64(8)) | (
                ((v2 >> sh) & ff) << np.uint64(16)) | (((v3 >> sh) & ff) << np.uint64(24))
            out[e0 + 8 * g + r] = v


@njit(cache=True, nogil=True)
def bitunshuffle_block(src: np.ndarray, m: int, itemsize: int, out: np.ndarray, e0: int) -> None:
    """Un-bitshuffle one block of ``m`` elements from ``src[:m*itemsize]``.

    Writes the little-endian element values to ``out[e0:e0+m]`` converting to
    ``out``'s dtype on the way, so no intermediate pixel array is needed.
    ``m`` must be a multiple of 8. (Tried and measured slower on low-dose
    data: skipping 64-element all-zero words, and a per-bit-plane loop that
    skips all-zero planes; see DECODE_NOTES.md.)
    """
    _unshuffle_bytes(src, m, itemsize, out, e0, 0, m // 8)


@njit(cache=True, nogil=True)
def bitshuffle_block(src: np.ndarray, m: int, itemsize: int, dst: np.ndarray, d0: int) -> None:
    """Bitshuffle ``m`` elements (raw little-endian bytes in ``src``) into ``dst[d0:]``.

    The inverse of :func:`bitunshuffle_block`; only the simulator's encoder
    uses it. The 8x8 bit transpose is its own inverse.
    """
    nb = m // 8
    for g in range(nb):
        for k in range(itemsize):
            # row r = byte k of element 8g+r
            x = _gather(src, (8 * g) * itemsize + k, itemsize)
            if x != 0:
                x = _transpose8(x)
            for j in range(8):
                dst[d0 + (8 * k + j) * nb + g] = (x >> np.uint64(8 * j)) & np.uint64(0xFF)


_LITTLE_HOST = sys.byteorder == "little"


@njit(cache=True, nogil=True)
def bytes_to_out(src: np.ndarray, p: int, n: int, itemsize: int, out: np.ndarray, e0: int) -> None:
    """Convert ``n`` little-endian elements at ``src[p:]`` into ``out[e0:e0+n]``.

    On little-endian hosts the bytes are viewed as the element type so the
    loop is a plain (vectorisable) conversion; measured ~2x faster than
    assembling each value from bytes.
    """
    if itemsize == 1:
        for i in range(n):
            out[e0 + i] = src[p + i]
    elif itemsize == 2:
        if _LITTLE_HOST:
            v16 = src[p:p + 2 * n].view(np.uint16)
            for i in range(n):
                out[e0 + i] = v16[i]
        else:
            for i in range(n):
                q = p + 2 * i
                out[e0 + i] = np.uint32(src[q]) | (np.uint32(src[q + 1]) << np.uint32(8))
    else:
        if _LITTLE_HOST:
            v32 = src[p:p + 4 * n].view(np.uint32)
            for i in range(n):
                out[e0 + i] = v32[i]
        else:
            for i in range(n):
                q = p + 4 * i
                out[e0 + i] = (
                    np.uint32(src[q])
                    | (np.uint32(src[q + 1]) << np.uint32(8))
                    | (np.uint32(src[q + 2]) << np.uint32(16))
                    | (np.uint32(src[q + 3]) << np.uint32(24))
                )


@njit(cache=True, nogil=True)
def _unshuffle_word_bytes(s64: np.ndarray, nw: int, w: int, k: int, tmp: np.ndarray, t0: int) -> None:
    """Byte ``k`` of the 64 elements of word ``w`` (planes 8k..8k+7) into ``tmp[t0:t0+8]``.

    An 8x8 byte transpose of the eight plane words (delta swaps), then an 8x8
    bit transpose per word: little-endian byte r of ``tmp[t0+b]`` is byte k
    of element ``64*w + 8*b + r``.
    """
    m32 = np.uint64(0x00000000FFFFFFFF)
    m16 = np.uint64(0x0000FFFF0000FFFF)
    m8 = np.uint64(0x00FF00FF00FF00FF)
    s32 = np.uint64(32)
    s16 = np.uint64(16)
    s8 = np.uint64(8)
    b = 8 * k * nw + w
    r0 = s64[b]
    r1 = s64[b + nw]
    r2 = s64[b + 2 * nw]
    r3 = s64[b + 3 * nw]
    r4 = s64[b + 4 * nw]
    r5 = s64[b + 5 * nw]
    r6 = s64[b + 6 * nw]
    r7 = s64[b + 7 * nw]
    r0, r4 = (r0 & m32) | (r4 << s32), (r0 >> s32) | (r4 & ~m32)
    r1, r5 = (r1 & m32) | (r5 << s32), (r1 >> s32) | (r5 & ~m32)
    r2, r6 = (r2 & m32) | (r6 << s32), (r2 >> s32) | (r6 & ~m32)
    r3, r7 = (r3 & m32) | (r7 << s32), (r3 >> s32) | (r7 & ~m32)
    r0, r2 = (r0 & m16) | ((r2 & m16) << s16), ((r0 >> s16) & m16) | (r2 & ~m16)
    r1, r3 = (r1 & m16) | ((r3 & m16) << s16), ((r1 >> s16) & m16) | (r3 & ~m16)
    r4, r6 = (r4 & m16) | ((r6 & m16) << s16), ((r4 >> s16) & m16) | (r6 & ~m16)
    r5, r7 = (r5 & m16) | ((r7 & m16) << s16), ((r5 >> s16) & m16) | (r7 & ~m16)
    r0, r1 = (r0 & m8) | ((r1 & m8) << s8), ((r0 >> s8) & m8) | (r1 & ~m8)
    r2, r3 = (r2 & m8) | ((r3 & m8) << s8), ((r2 >> s8) & m8) | (r3 & ~m8)
    r4, r5 = (r4 & m8) | ((r5 & m8) << s8), ((r4 >> s8) & m8) | (r5 & ~m8)
    r6, r7 = (r6 & m8) | ((r7 & m8) << s8), ((r6 >> s8) & m8) | (r7 & ~m8)
    tmp[t0] = _transpose8(r0)
    tmp[t0 + 1] = _transpose8(r1)
    tmp[t0 + 2] = _transpose8(r2)
    tmp[t0 + 3] = _transpose8(r3)
    tmp[t0 + 4] = _transpose8(r4)
    tmp[t0 + 5] = _transpose8(r5)
    tmp[t0 + 6] = _transpose8(r6)
    tmp[t0 + 7] = _transpose8(r7)


@njit(cache=True, nogil=True)
def bitunshuffle_block_planes(s64: np.ndarray, m: int, itemsize: int, out: np.ndarray, e0: int,
                              tmp: np.ndarray, decline_high: bool) -> bool:
    """Un-bitshuffle one block straight into ``out[e0:e0+m]`` (any dtype), plane-aware.

    ``s64`` holds the block's ``m * itemsize`` bitshuffled bytes viewed as
    native uint64 words; only for little-endian hosts and ``m % 64 == 0``
    (callers use :func:`bitunshuffle_block` otherwise). ``tmp``: uint64[32].
    Bit-plane j is ``nw = m // 64`` words at ``s64[j*nw:]``; on a little-endian
    host bit e of its word w belongs to element ``64*w + e``. Low-dose data
    leave most high planes all zero within a block, so: find the highest
    non-zero plane (``top``); if ``top <= 8`` each element is assembled from
    at most 8 (usually 2 or 4) plane words with a branch-free loop that LLVM
    vectorises; all-zero 64-element words just store zeros; only if a
    higher plane is used does a word go through full byte + bit transposes.
    Exact for any data (DECODE_NOTES.md has the numbers). Those transposes are
    slower than bitshuffle's SIMD code, so with ``decline_high`` a block with
    ``top > 8`` is left untouched and False returned (the caller un-shuffles
    it another way); otherwise returns True.
    """
    nw = m // 64
    nplanes = 8 * itemsize
    top = 0
    for j in range(nplanes):
        acc = np.uint64(0)
        base = j * nw
        for w in range(nw):
            acc |= s64[base + w]
        if acc != 0:
            top = j + 1
    if top > 8 and decline_high:
        return False
    # a block-local view: indices below are provably >= 0, so numba emits no
    # negative-index fix-ups and LLVM vectorises the element loops (~3x)
    ob = out[e0:e0 + m]
    if top == 0:
        for e in range(m):
            ob[e] = 0
        return True
    one = np.uint64(1)
    z = np.uint64(0)
    t8 = tmp.view(np.uint8)
    for w in range(nw):
        base = 64 * w
        if top > 8:
            nz = z
            for j in range(top):
                nz |= s64[j * nw + w]
            if nz == 0:
                for e in range(64):
                    ob[base + e] = 0
                continue
            for k in range(itemsize):
                if 8 * k < top:
                    _unshuffle_word_bytes(s64, nw, w, k, tmp, 8 * k)
                else:
                    for q in range(8):
                        tmp[8 * k + q] = 0
            if itemsize == 2:
                for e in range(64):
                    ob[base + e] = np.int32(t8[e]) | (np.int32(t8[64 + e]) << 8)
            else:
                for e in range(64):
                    ob[base + e] = np.int64(t8[e]) | (np.int64(t8[64 + e]) << 8) | (
                        np.int64(t8[128 + e]) << 16) | (np.int64(t8[192 + e]) << 24)
            continue
        p0 = s64[w]
        p1 = s64[nw + w] if top > 1 else z
        p2 = z
        p3 = z
        p4 = z
        p5 = z
        p6 = z
        p7 = z
        if top > 2:
            p2 = s64[2 * nw + w]
            p3 = s64[3 * nw + w] if top > 3 else z
            if top > 4:
                p4 = s64[4 * nw + w]
                p5 = s64[5 * nw + w] if top > 5 else z
                p6 = s64[6 * nw + w] if top > 6 else z
                p7 = s64[7 * nw + w] if top > 7 else z
        if (p0 | p1 | p2 | p3 | p4 | p5 | p6 | p7) == 0:
            for e in range(64):
                ob[base + e] = 0
        elif top <= 2:
            for e in range(64):
                s = np.uint64(e)
                v = ((p0 >> s) & one) | (((p1 >> s) & one) << np.uint64(1))
                ob[base + e] = np.int32(v)
        elif top <= 4:
            for e in range(64):
                s = np.uint64(e)
                v = ((p0 >> s) & one) | (((p1 >> s) & one) << np.uint64(1)) | (
                    ((p2 >> s) & one) << np.uint64(2)) | (((p3 >> s) & one) << np.uint64(3))
                ob[base + e] = np.int32(v)
        else:
            for e in range(64):
                s = np.uint64(e)
                v = ((p0 >> s) & one) | (((p1 >> s) & one) << np.uint64(1)) | (
                    ((p2 >> s) & one) << np.uint64(2)) | (((p3 >> s) & one) << np.uint64(3)) | (
                    ((p4 >> s) & one) << np.uint64(4)) | (((p5 >> s) & one) << np.uint64(5)) | (
                    ((p6 >> s) & one) << np.uint64(6)) | (((p7 >> s) & one) << np.uint64(7))
                ob[base + e] = np.int32(v)
    return True


@njit(cache=True, nogil=True)
def _bslz4_frame(
    data: np.ndarray, o: int, size: int, out: np.ndarray, itemsize: int,
    scratch: np.ndarray, err: np.ndarray,
) -> int:
    n_el = out.shape[0]
    nbytes = n_el * itemsize
    if size < 12:
        err[2] = size
        return E_TRUNC_HEADER
    total = np.int64(0)
    for q in range(8):
        total = (total << 8) | np.int64(data[o + q])
    if total != nbytes:
        err[2] = nbytes
        err[3] = total
        return E_HEADER_SIZE
    bsb = _be32(data, o + 8)
    if bsb == 0:
        B = _default_block_elements(itemsize)
    else:
        B = bsb // itemsize
        if bsb % itemsize != 0 or B % 8 != 0:
            err[2] = bsb
            err[3] = itemsize
            return E_BLOCK_SIZE
    p = o + 12
    end = o + size
    nfull = n_el // B
    tail = n_el % 8
    short = (n_el % B) - tail
    nblocks = nfull + (1 if short > 0 else 0)
    for k in range(nblocks):
        m = B if k < nfull else short
        if end - p < 4:
            err[2] = k
            err[3] = end - p
            return E_TRUNC_BLOCKLEN
        L = _be32(data, p)
        p += 4
        if L > end - p:
            err[2] = k
            err[3] = L
            err[4] = end - p
            return E_BLOCK_OVERRUN
        r = _lz4_block(data, p, p + L, scratch, 0, m * itemsize)
        if r < 0:
            err[2] = k
            err[3] = r
            return E_LZ4
        if r != m * itemsize:
            err[2] = k
            err[3] = r
            err[4] = m * itemsize
            return E_LZ4_SIZE
        bitunshuffle_block(scratch, m, itemsize, out, k * B)
        p += L
    if end - p != tail * itemsize:
        err[2] = tail * itemsize
        err[3] = end - p
        return E_TAIL
    bytes_to_out(data, p, tail, itemsize, out, n_el - tail)
    return OK


@njit(cache=True, nogil=True)
def _lz4_frame(
    data: np.ndarray, o: int, size: int, out: np.ndarray, itemsize: int,
    scratch: np.ndarray, err: np.ndarray,
) -> int:
    n_el = out.shape[0]
    nbytes = n_el * itemsize
    r = _lz4_block(data, o, o + size, scratch, 0, nbytes)
    if r < 0:
        err[2] = 0
        err[3] = r
        return E_LZ4
    if r != nbytes:
        err[2] = 0
        err[3] = r
        err[4] = nbytes
        return E_LZ4_SIZE
    bytes_to_out(scratch, 0, n_el, itemsize, out, 0)
    return OK


@njit(cache=True, nogil=True)
def _raw_frame(data: np.ndarray, o: int, size: int, out: np.ndarray, itemsize: int) -> int:
    n_el = out.shape[0]
    if size != n_el * itemsize:
        return E_RAW_SIZE
    bytes_to_out(data, o, n_el, itemsize, out, 0)
    return OK


KIND_BSLZ4 = 0
KIND_LZ4 = 1
KIND_RAW = 2


@njit(cache=True, nogil=True)
def decode_batch(
    kind: int, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
    out: np.ndarray, itemsize: int, err: np.ndarray,
) -> int:
    """Decode ``len(offsets)`` frames from ``data`` into the rows of ``out`` (n, pixels).

    One call per batch keeps the per-frame Python overhead out of the loop,
    which dominates for small (96x96) frames. On error, ``err`` holds
    ``[frame, code, a, b, c]`` and the code is returned; earlier frames are
    decoded, later ones are untouched.
    """
    n = offsets.shape[0]
    nbytes = out.shape[1] * itemsize
    scratch = np.empty(nbytes, dtype=np.uint8)
    dlen = data.shape[0]
    for i in range(n):
        o = offsets[i]
        s = sizes[i]
        err[0] = i
        if check_bounds(o, s, dlen, err) != OK:
            return E_BOUNDS
        row = out[i]
        if kind == KIND_BSLZ4:
            code = _bslz4_frame(data, o, s, row, itemsize, scratch, err)
        elif kind == KIND_LZ4:
            code = _lz4_frame(data, o, s, row, itemsize, scratch, err)
        else:
            code = _raw_frame(data, o, s, row, itemsize)
            if code != OK:
                err[2] = nbytes
                err[3] = s
        if code != OK:
            err[1] = code
            return code
    return OK


@njit(cache=True, nogil=True)
def check_bslz4_frame(
    data: np.ndarray, o: int, size: int, n_el: int, itemsize: int, err: np.ndarray,
) -> tuple[int, int]:
    """Validate one bslz4 blob ``data[o:o+size]`` without decompressing it.

    Returns ``(code, block_elements)``. Needed before handing a blob to a C
    library: ``bshuf_decompress_lz4`` trusts the block length fields and
    would read past the buffer on a corrupt one. Checks the header size,
    block size, that every block length fits, and the exact tail length.
    """
    nbytes = n_el * itemsize
    if size < 12:
        err[2] = size
        return E_TRUNC_HEADER, 0
    total = np.int64(0)
    for q in range(8):
        total = (total << 8) | np.int64(data[o + q])
    if total != nbytes:
        err[2] = nbytes
        err[3] = total
        return E_HEADER_SIZE, 0
    bsb = _be32(data, o + 8)
    if bsb == 0:
        B = _default_block_elements(itemsize)
    else:
        B = bsb // itemsize
        if bsb % itemsize != 0 or B % 8 != 0:
            err[2] = bsb
            err[3] = itemsize
            return E_BLOCK_SIZE, 0
    p = o + 12
    end = o + size
    nfull = n_el // B
    tail = n_el % 8
    short = (n_el % B) - tail
    nblocks = nfull + (1 if short > 0 else 0)
    for k in range(nblocks):
        if end - p < 4:
            err[2] = k
            err[3] = end - p
            return E_TRUNC_BLOCKLEN, B
        L = _be32(data, p)
        p += 4
        if L > end - p:
            err[2] = k
            err[3] = L
            err[4] = end - p
            return E_BLOCK_OVERRUN, B
        p += L
    if end - p != tail * itemsize:
        err[2] = tail * itemsize
        err[3] = end - p
        return E_TAIL, B
    return OK, B


@njit(cache=True, nogil=True)
def check_bounds(o: int, s: int, dlen: int, err: np.ndarray) -> int:
    """Is the frame slice ``[o, o+s)`` inside a buffer of ``dlen`` bytes?"""
    if o < 0 or s < 0 or o > dlen or s > dlen - o:
        err[1] = E_BOUNDS
        err[2] = o
        err[3] = s
        err[4] = dlen
        return E_BOUNDS
    return OK


@njit(cache=True, nogil=True)
def bitshuffle_frame(raw: np.ndarray, n_el: int, itemsize: int, B: int, out: np.ndarray) -> None:
    """Bitshuffle a whole frame block by block into ``out`` (same length as ``raw``).

    The tail of ``n_el % 8`` elements is copied verbatim, matching the
    bitshuffle library's layout.
    """
    nfull = n_el // B
    tail = n_el % 8
    short = (n_el % B) - tail
    for k in range(nfull):
        bitshuffle_block(raw[k * B * itemsize:(k + 1) * B * itemsize], B, itemsize, out, k * B * itemsize)
    if short > 0:
        s0 = nfull * B * itemsize
        bitshuffle_block(raw[s0:s0 + short * itemsize], short, itemsize, out, s0)
    t0 = (n_el - tail) * itemsize
    for q in range(tail * itemsize):
        out[t0 + q] = raw[t0 + q]
