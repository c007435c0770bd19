"""Decoder for frames stored as plain pixel arrays (the memory driver, and
any driver whose detector sends native little-endian pixels)."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

_KINDS = "uif"


@njit(nogil=True, cache=True)
def _cast_frames(src: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, frame_bytes: int,
                 itemsize: int, out: np.ndarray) -> int:
    """``out[i] = src[offsets[i] // itemsize:][:npix]`` for each frame, with the
    dtype conversion in the same pass; returns the first frame whose size or
    place is wrong, or -1."""
    npix = out.shape[1]
    for i in range(out.shape[0]):
        o = offsets[i]
        if sizes[i] != frame_bytes or o % itemsize != 0 or o // itemsize + npix > src.shape[0]:
            return i
        e = o // itemsize
        frame = src[e:e + npix]
        row = out[i]
        for j in range(npix):
            row[j] = frame[j]
    return -1


class RawDecoder:
    def __init__(self, dtype: np.dtype | str, sig_shape: tuple[int, ...]):
        self.dtype = np.dtype(dtype)
        self.sig_shape = tuple(sig_shape)
        self.frame_bytes = self.dtype.itemsize * math.prod(self.sig_shape)
        self._compiled = self.dtype.kind in _KINDS and self.dtype.isnative

    def decode(self, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
               aux: np.ndarray, out: np.ndarray) -> None:
        n = len(offsets)
        if n == 0:
            return
        fb = self.frame_bytes
        if self._compiled and out.flags.c_contiguous and out.dtype.kind in _KINDS \
                and out.dtype.isnative:
            isz = self.dtype.itemsize
            src = data[:len(data) // isz * isz].view(self.dtype)
            bad_i = _cast_frames(src, offsets, sizes, fb, isz, out.reshape(n, -1))
            if bad_i < 0:
                return
        bad = np.flatnonzero(sizes != fb)
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"frame {i} of the batch has {int(sizes[i])} bytes, expected {fb}")
        start = int(offsets[0])
        stride = int(offsets[1] - offsets[0]) if n > 1 else fb
        regular = (stride >= fb and stride % self.dtype.itemsize == 0
                   and start % self.dtype.itemsize == 0
                   and (n == 1 or bool(np.all(np.diff(offsets) == stride))))
        if regular and start + stride * (n - 1) + fb <= len(data):
            block = np.lib.stride_tricks.as_strided(
                data[start:], shape=(n, fb), strides=(stride, 1), writeable=False)
            out[...] = block.view(self.dtype).reshape((n,) + self.sig_shape)
            return
        for i in range(n):
            o = int(offsets[i])
            out[i] = data[o:o + fb].view(self.dtype).reshape(self.sig_shape)

    def hdf5_chunk(self, payload: np.ndarray, aux: int) -> tuple[None, np.ndarray] | None:
        """A whole frame of plain pixels is stored as it is, an uncompressed
        chunk (the recorder writes it in this decoder's dtype, which is the
        format's for every driver that sends native pixels)."""
        if payload.size != self.frame_bytes:
            return None
        return None, payload

    def decode_csr(self, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
                   aux: np.ndarray) -> object:
        """The same frames as a CSR matrix (n, prod(sig_shape)); lets drivers
        with dense payloads exercise the sparse tile path."""
        import scipy.sparse
        out = np.empty((len(offsets),) + self.sig_shape, dtype=self.dtype)
        self.decode(data, offsets, sizes, aux, out)
        return scipy.sparse.csr_matrix(out.reshape((len(offsets), -1)))
