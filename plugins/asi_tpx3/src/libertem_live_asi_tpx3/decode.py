"""Decode stored ArrayChunk records into dense frames or a CSR matrix.

This is the hot path: it runs in worker processes on batches of frames whose
chunk records sit in a shared-memory slot. One numba call handles a whole
batch, so the cost per frame is the scatter of its events, not Python.

Record convention (what the receiver stores and the decoder reads)
-----------------------------------------------------------------
A *chunk record* is the raw 32-byte ArrayChunk header exactly as received,
followed directly by the chunk payload (``values_offset + nnz * itemsize``
bytes, padding included). For frame ``i`` of a batch:

* ``offsets[i]`` - byte offset of the record's header in ``data``;
* ``sizes[i]``   - byte length of the record (32 + payload size); the decoder
  refuses records whose header implies more bytes than that;
* ``aux[i]``     - row of the frame within that chunk (0 .. nframes-1).

Frames of one chunk share one record: consecutive frames with the same
``offsets`` value are decoded as a group (the header is parsed once).
Records may start at any byte offset; 8-byte aligned starts are faster.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numba
import numpy as np
import scipy.sparse

from libertem_live.driver import DecodeError

from .headers import HEADER_SIZE, ArrayChunk, dtype_code, numpy_dtype, parse_header

__all__ = ["Tpx3Decoder", "DecodeError", "ChunkArrays", "chunk_arrays"]

DTypeLike = Union[np.dtype, type, str, int]


# error codes returned by the kernels in err[0]; err[1] = frame index in the
# batch, err[2] = record offset, err[3] = a detail value
_OK = 0
_E_TAG = 1
_E_VDTYPE = 2
_E_SIZE = 3
_E_ROW = 4
_E_END = 5
_E_INDPTR = 6
_E_INDEX = 7
_E_LAYOUT = 8

_MESSAGES = {
    _E_TAG: "record does not start with an ArrayChunk header (tag byte {d})",
    _E_VDTYPE: "unsupported value_dtype code {d}",
    _E_SIZE: "header implies a record of {d} bytes, more than its stored size / the buffer",
    _E_ROW: "row (aux) {d} is not below the chunk's nframes",
    _E_END: "indptr[nframes] = {d} differs from the chunk's nnz",
    _E_INDPTR: "indptr is not monotonic or exceeds nnz at row {d}",
    _E_INDEX: "signal index {d} is outside the frame (>= sig_h * sig_w)",
    _E_LAYOUT: "regions overlap (indices_offset/values_offset too small); header field {d}",
}


@numba.njit(inline="always", cache=True)
def _u32(data, pos):
    return (np.int64(data[pos]) | (np.int64(data[pos + 1]) << 8)
            | (np.int64(data[pos + 2]) << 16) | (np.int64(data[pos + 3]) << 24))


@numba.njit(inline="always", cache=True)
def _ld(data, pos, size):
    """Little-endian unsigned load of 1/2/4/8 bytes (used for indptr: per row, not per event)."""
    r = np.int64(data[pos])
    for k in range(1, size):
        r |= np.int64(data[pos + k]) << (8 * k)
    return r


@numba.njit(inline="always", cache=True)
def _vsize(code):
    if code == 2:
        return 1
    elif code == 3:
        return 2
    elif code == 4:
        return 4
    elif code == 5:
        return 8
    return 0


@numba.njit(cache=True)
def _parse_record(data, off, size, ipsz, ixsz, hdr):
    """Validate a record header; fill hdr = [vcode, nframes, nnz, ixo, vo]. Returns (code, detail)."""
    if off < 0 or off + 32 > data.size:
        return _E_SIZE, off + 32
    tag = data[off]
    if tag != 2:
        return _E_TAG, np.int64(tag)
    vcode = np.int64(data[off + 1])
    vsz = _vsize(vcode)
    if vsz == 0:
        return _E_VDTYPE, vcode
    nf = _u32(data, off + 2)
    nnz = _u32(data, off + 6)
    ixo = _u32(data, off + 10)
    vo = _u32(data, off + 14)
    if ixo < (nf + 1) * ipsz:
        return _E_LAYOUT, ixo
    if vo < ixo + nnz * ixsz:
        return _E_LAYOUT, vo
    need = 32 + vo + nnz * vsz
    if need > size or off + need > data.size:
        return _E_SIZE, need
    hdr[0] = vcode
    hdr[1] = nf
    hdr[2] = nnz
    hdr[3] = ixo
    hdr[4] = vo
    return _OK, 0


@numba.njit(cache=True)
def _group_end(offsets, i):
    n = offsets.size
    j = i + 1
    while j < n and offsets[j] == offsets[i]:
        j += 1
    return j


@numba.njit(cache=True)
def _load_indices(data, pos, ixsz, lo, hi, dst):
    """dst[:hi-lo] = indices[lo:hi] of the region at data[pos] (runtime itemsize).

    Converting the needed index range of a chunk once into an int64 scratch
    keeps the indices dtype out of the compiled signature: one compilation
    per output dtype instead of one per (indices dtype, output dtype).
    """
    n = hi - lo
    if ixsz == 1:
        s1 = data[pos + lo:pos + hi]
        for e in range(n):
            dst[e] = s1[e]
    elif ixsz == 2:
        s2 = data[pos + 2 * lo:pos + 2 * hi].view(np.uint16)
        for e in range(n):
            dst[e] = s2[e]
    elif ixsz == 4:
        s4 = data[pos + 4 * lo:pos + 4 * hi].view(np.uint32)
        for e in range(n):
            dst[e] = s4[e]
    else:
        s8 = data[pos + 8 * lo:pos + 8 * hi].view(np.uint64)
        for e in range(n):
            dst[e] = np.int64(min(s8[e], np.uint64(2**62)))


@numba.njit(cache=True)
def _load_values(data, pos, vcode, lo, hi, dst):
    """dst[:hi-lo] = values[lo:hi] cast to dst's dtype (value dtype varies per chunk)."""
    n = hi - lo
    if vcode == 2:
        s1 = data[pos + lo:pos + hi]
        for e in range(n):
            dst[e] = s1[e]
    elif vcode == 3:
        s2 = data[pos + 2 * lo:pos + 2 * hi].view(np.uint16)
        for e in range(n):
            dst[e] = s2[e]
    elif vcode == 4:
        s4 = data[pos + 4 * lo:pos + 4 * hi].view(np.uint32)
        for e in range(n):
            dst[e] = s4[e]
    else:
        s8 = data[pos + 8 * lo:pos + 8 * hi].view(np.uint64)
        for e in range(n):
            dst[e] = s8[e]


@numba.njit(cache=True)
def _group_rows(data, p, ipsz, aux, i, j, nf, nnz, err, off):
    """Check rows aux[i:j] and their indptr; return the entry range (lo, hi) they span."""
    lo = nnz
    hi = 0
    for k in range(i, j):
        r = np.int64(aux[k])
        if r < 0 or r >= nf:
            err[0] = _E_ROW
            err[1] = k
            err[2] = off
            err[3] = r
            return 0, 0
        a = _ld(data, p + r * ipsz, ipsz)
        b = _ld(data, p + (r + 1) * ipsz, ipsz)
        if a < 0 or b < a or b > nnz:
            err[0] = _E_INDPTR
            err[1] = k
            err[2] = off
            err[3] = r
            return 0, 0
        if a < lo:
            lo = a
        if b > hi:
            hi = b
    if hi < lo:
        hi = lo
    return lo, hi


@numba.njit(cache=True)
def _header_group(data, offsets, sizes, i, ipsz, ixsz, hdr, err):
    """Parse/validate the record of frame i and its indptr end; False (err set) if bad."""
    off = np.int64(offsets[i])
    code, detail = _parse_record(data, off, np.int64(sizes[i]), ipsz, ixsz, hdr)
    if code != _OK:
        err[0] = code
        err[1] = i
        err[2] = off
        err[3] = detail
        return False
    nf, nnz = hdr[1], hdr[2]
    end = _ld(data, off + 32 + nf * ipsz, ipsz)
    if end != nnz:
        err[0] = _E_END
        err[1] = i
        err[2] = off
        err[3] = end
        return False
    return True


@numba.njit(cache=True)
def _dense_kernel(data, offsets, sizes, aux, out2d, ipsz, ixsz, sig_size, err):
    hdr = np.zeros(5, np.int64)
    n = offsets.size
    ix = np.empty(1024, np.int64)
    vals = np.empty(1024, out2d.dtype)
    i = 0
    while i < n:
        if not _header_group(data, offsets, sizes, i, ipsz, ixsz, hdr, err):
            return
        off = np.int64(offsets[i])
        j = _group_end(offsets, i)
        vcode, nf, nnz, ixo, vo = hdr[0], hdr[1], hdr[2], hdr[3], hdr[4]
        p = off + 32
        lo, hi = _group_rows(data, p, ipsz, aux, i, j, nf, nnz, err, off)
        if err[0] != _OK:
            return
        if hi - lo > ix.size:
            ix = np.empty(hi - lo, np.int64)
            vals = np.empty(hi - lo, out2d.dtype)
        _load_indices(data, p + ixo, ixsz, lo, hi, ix)
        _load_values(data, p + vo, vcode, lo, hi, vals)
        for k in range(i, j):
            r = np.int64(aux[k])
            a = _ld(data, p + r * ipsz, ipsz) - lo
            b = _ld(data, p + (r + 1) * ipsz, ipsz) - lo
            row = out2d[k]
            row[:] = 0
            for e in range(a, b):
                idx = ix[e]
                if idx < 0 or idx >= sig_size:
                    err[0] = _E_INDEX
                    err[1] = k
                    err[2] = off
                    err[3] = idx
                    return
                row[idx] += vals[e]
        i = j


@numba.njit(cache=True)
def _csr_kernel(data, offsets, sizes, aux, ipsz, ixsz, v_proto, sig_size, err):
    hdr = np.zeros(5, np.int64)
    n = offsets.size
    out_indptr = np.zeros(n + 1, np.int64)
    # pass 1: validate headers and indptr, count entries per frame
    i = 0
    while i < n:
        if not _header_group(data, offsets, sizes, i, ipsz, ixsz, hdr, err):
            return out_indptr, np.empty(0, np.int32), np.empty(0, v_proto.dtype)
        off = np.int64(offsets[i])
        j = _group_end(offsets, i)
        nf, nnz = hdr[1], hdr[2]
        p = off + 32
        _group_rows(data, p, ipsz, aux, i, j, nf, nnz, err, off)
        if err[0] != _OK:
            return out_indptr, np.empty(0, np.int32), np.empty(0, v_proto.dtype)
        for k in range(i, j):
            r = np.int64(aux[k])
            a = _ld(data, p + r * ipsz, ipsz)
            b = _ld(data, p + (r + 1) * ipsz, ipsz)
            out_indptr[k + 1] = out_indptr[k] + (b - a)
        i = j
    total = out_indptr[n]
    out_indices = np.empty(total, np.int32)
    out_values = np.empty(total, v_proto.dtype)
    ix = np.empty(1024, np.int64)
    vals = np.empty(1024, v_proto.dtype)
    # pass 2: copy (headers and rows were validated above)
    i = 0
    while i < n:
        off = np.int64(offsets[i])
        _parse_record(data, off, np.int64(sizes[i]), ipsz, ixsz, hdr)
        j = _group_end(offsets, i)
        vcode, nf, nnz, ixo, vo = hdr[0], hdr[1], hdr[2], hdr[3], hdr[4]
        p = off + 32
        lo, hi = _group_rows(data, p, ipsz, aux, i, j, nf, nnz, err, off)
        if hi - lo > ix.size:
            ix = np.empty(hi - lo, np.int64)
            vals = np.empty(hi - lo, v_proto.dtype)
        _load_indices(data, p + ixo, ixsz, lo, hi, ix)
        _load_values(data, p + vo, vcode, lo, hi, vals)
        for k in range(i, j):
            r = np.int64(aux[k])
            a = _ld(data, p + r * ipsz, ipsz) - lo
            b = _ld(data, p + (r + 1) * ipsz, ipsz) - lo
            dst = out_indptr[k]
            for e in range(a, b):
                idx = ix[e]
                if idx < 0 or idx >= sig_size:
                    err[0] = _E_INDEX
                    err[1] = k
                    err[2] = off
                    err[3] = idx
                    return out_indptr, out_indices, out_values
                out_indices[dst] = idx
                out_values[dst] = vals[e]
                dst += 1
        i = j
    return out_indptr, out_indices, out_values


def _raise_decode_error(err: np.ndarray, offsets: np.ndarray, aux: np.ndarray) -> None:
    code, frame, off, detail = (int(x) for x in err)
    msg = _MESSAGES.get(code, "unknown decode error {d}").format(d=detail)
    row = int(aux[frame]) if 0 <= frame < len(aux) else -1
    raise DecodeError(
        f"corrupt TPX3 chunk record at slot offset {off} (batch frame {frame}, "
        f"row {row} of that chunk): {msg}. The receiver stored bad data; "
        f"discard this acquisition and reconnect."
    )


def _as_u8(data) -> np.ndarray:
    arr = np.asarray(data) if not isinstance(data, (bytes, bytearray, memoryview)) \
        else np.frombuffer(data, dtype=np.uint8)
    if arr.dtype != np.uint8 or arr.ndim != 1:
        arr = np.ascontiguousarray(arr).reshape(-1).view(np.uint8)
    return arr


class Tpx3Decoder:
    """Picklable decoder for batches of frames stored as chunk records.

    ``sig_shape`` is (H, W); ``indptr_dtype``/``indices_dtype`` come from the
    AcquisitionStart header (wire codes or numpy dtypes). ``csr_dtype`` is the
    value dtype of :meth:`decode_csr`'s matrix: one fixed dtype for all
    chunks (value dtypes vary per chunk on the wire) - float32 by default,
    as LiberTEM computes in floating point; pass ``np.uint64`` for exact ToT
    sums beyond 2**24.

    Addressing (see the module docstring): frame ``i`` of a batch is row
    ``aux[i]`` of the chunk record (32-byte ArrayChunk header + payload)
    that starts at ``data[offsets[i]]`` and is ``sizes[i]`` bytes long.
    Frames of one chunk should be consecutive in the batch so that they form
    one group (correct either way, just faster).
    """

    def __init__(
        self, sig_shape: Tuple[int, int], indptr_dtype: DTypeLike, indices_dtype: DTypeLike,
        *, csr_dtype: DTypeLike = np.float32,
    ) -> None:
        self.sig_shape = (int(sig_shape[0]), int(sig_shape[1]))
        self.indptr_dtype = numpy_dtype(dtype_code(indptr_dtype), field="indptr_dtype")
        self.indices_dtype = numpy_dtype(dtype_code(indices_dtype), field="indices_dtype")
        self.csr_dtype = np.dtype(csr_dtype)
        self.sig_size = self.sig_shape[0] * self.sig_shape[1]
        self._v_proto = np.empty(0, self.csr_dtype)

    def __repr__(self) -> str:
        return (f"Tpx3Decoder(sig_shape={self.sig_shape}, indptr_dtype={self.indptr_dtype}, "
                f"indices_dtype={self.indices_dtype}, csr_dtype={self.csr_dtype})")

    def _prep(self, data, offsets, sizes, aux):
        data = _as_u8(data)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        sizes = np.ascontiguousarray(sizes, dtype=np.int64)
        aux = np.ascontiguousarray(aux, dtype=np.int64)
        if not (offsets.shape == sizes.shape == aux.shape) or offsets.ndim != 1:
            raise ValueError("offsets, sizes and aux must be 1-D arrays of equal length")
        return data, offsets, sizes, aux

    def decode(self, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
               aux: np.ndarray, out: np.ndarray) -> None:
        """Zero ``out`` (n, H, W) and scatter-add the events of the n frames.

        Duplicate indices within a row add up. Any numeric dtype for ``out``;
        values are cast on accumulation. Raises :class:`DecodeError` for
        corrupt records (``out`` is then partially written).
        """
        data, offsets, sizes, aux = self._prep(data, offsets, sizes, aux)
        n = offsets.size
        if out.shape[0] != n or out.shape[1:] != self.sig_shape:
            raise ValueError(f"out has shape {out.shape}, expected {(n,) + self.sig_shape}")
        if n == 0:
            return
        target = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
        err = np.zeros(4, np.int64)
        _dense_kernel(data, offsets, sizes, aux, target.reshape(n, self.sig_size),
                      self.indptr_dtype.itemsize, self.indices_dtype.itemsize, self.sig_size,
                      err)
        if err[0] != _OK:
            _raise_decode_error(err, offsets, aux)
        if target is not out:
            out[...] = target

    def decode_csr(self, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
                   aux: np.ndarray) -> scipy.sparse.csr_matrix:
        """The n frames as a ``csr_matrix`` of shape (n, H*W), never densified.

        Values have ``self.csr_dtype``; indices keep the wire order within a
        row (not sorted) and duplicates are kept (scipy sums them whenever it
        densifies or calls ``sum_duplicates``). Index arrays are int32 unless
        the batch holds 2**31 or more entries.
        """
        data, offsets, sizes, aux = self._prep(data, offsets, sizes, aux)
        n = offsets.size
        err = np.zeros(4, np.int64)
        indptr, indices, values = _csr_kernel(
            data, offsets, sizes, aux, self.indptr_dtype.itemsize, self.indices_dtype.itemsize,
            self._v_proto,
            self.sig_size, err)
        if err[0] != _OK:
            _raise_decode_error(err, offsets, aux)
        if indptr[-1] < 2**31 - 1:
            indptr = indptr.astype(np.int32)
        else:
            indices = indices.astype(np.int64)
        return scipy.sparse.csr_matrix((values, indices, indptr), shape=(n, self.sig_size),
                                       copy=False)


@dataclass(frozen=True)
class ChunkArrays:
    """numpy views of one chunk's CSR arrays (into the caller's buffer)."""

    header: ArrayChunk
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray

    @property
    def nframes(self) -> int:
        return self.header.nframes


def chunk_arrays(
    record, indptr_dtype: DTypeLike, indices_dtype: DTypeLike, *,
    sig_size: Optional[int] = None, check: bool = True,
) -> ChunkArrays:
    """Views of indptr, indices and values of a record (header + payload).

    ``record`` is bytes/bytearray/memoryview/uint8 array starting with the
    32-byte ArrayChunk header. Padding between regions is skipped as the
    header's offsets say. With ``check`` the indptr is verified (starts at 0,
    monotonic, ends at nnz) and, if ``sig_size`` is given, every index is
    below it; violations raise :class:`DecodeError`.
    """
    buf = _as_u8(record)
    if buf.size < HEADER_SIZE:
        raise DecodeError(f"record of {buf.size} bytes is shorter than a header")
    hdr = parse_header(buf[:HEADER_SIZE].tobytes())
    if not isinstance(hdr, ArrayChunk):
        raise DecodeError(f"record starts with a {type(hdr).__name__} header, not ArrayChunk")
    ip_code, ix_code = dtype_code(indptr_dtype), dtype_code(indices_dtype)
    try:
        hdr.validate(ip_code, ix_code)
    except ValueError as e:
        raise DecodeError(str(e)) from None
    need = HEADER_SIZE + hdr.payload_size()
    if buf.size < need:
        raise DecodeError(f"record has {buf.size} bytes, its header implies {need}")
    payload = buf[HEADER_SIZE:need]
    r_ip, r_ix, r_v = hdr.regions(ip_code, ix_code)
    indptr = payload[r_ip].view(numpy_dtype(ip_code))
    indices = payload[r_ix].view(numpy_dtype(ix_code))
    values = payload[r_v].view(numpy_dtype(hdr.value_dtype))
    if check:
        if indptr[0] != 0 or int(indptr[-1]) != hdr.nnz or np.any(np.diff(indptr.astype(np.int64)) < 0):
            raise DecodeError(
                f"chunk indptr invalid: starts at {int(indptr[0])}, ends at {int(indptr[-1])} "
                f"(nnz {hdr.nnz}) or is not monotonic")
        if sig_size is not None and indices.size and int(indices.max()) >= sig_size:
            raise DecodeError(f"chunk has signal index {int(indices.max())} >= {sig_size}")
    return ChunkArrays(header=hdr, indptr=indptr, indices=indices, values=values)
