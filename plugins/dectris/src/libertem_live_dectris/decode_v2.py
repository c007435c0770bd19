"""Decode stream V2 image payloads in the workers.

The receiver stores each image's (still compressed) bytes with a per-frame
``aux`` value saying its form: :data:`KIND_NONE` (raw little-endian pixels),
:data:`KIND_BSLZ4` (bitshuffle + LZ4 in the HDF5 filter framing - the same
bytes as stream V1's ``bs<N>-lz4<``, so V1's compiled kernels decode them) or
:data:`KIND_LZ4` (LZ4 in the HDF5 LZ4 filter framing: a 12-byte header, then
length-prefixed blocks; unlike V1's ``lz4<``, which is one bare LZ4 block).
A batch whose frames all have one form (the normal case) is one call into
the kernels.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

import lz4.block
import numpy as np
from libertem_live.driver import HDF5Filter

from libertem_live_dectris import chunks
from libertem_live_dectris.decode import DectrisDecoder
from libertem_live_dectris.errors import PayloadError

KIND_NONE, KIND_BSLZ4, KIND_LZ4 = 0, 1, 2
KIND_BY_ALGORITHM = {"bslz4": KIND_BSLZ4, "lz4": KIND_LZ4}


def decode_lz4_hdf5(blob: bytes | memoryview, out: np.ndarray) -> None:
    """One HDF5-framed LZ4 payload into the flat byte view of ``out``."""
    dst = out.reshape(-1).view(np.uint8)
    mv = memoryview(blob)
    if len(mv) < 12:
        raise PayloadError(f"truncated lz4 header ({len(mv)} bytes, need 12)")
    total, bs = struct.unpack_from(">QI", mv, 0)
    if total != dst.size:
        raise PayloadError(f"size mismatch: lz4 header says {total} bytes, expected {dst.size}")
    if bs <= 0:
        raise PayloadError(f"invalid lz4 block size {bs}")
    pos, done = 12, 0
    while done < total:
        want = min(bs, total - done)
        if pos + 4 > len(mv):
            raise PayloadError(f"truncated payload: no room for the length of the block at byte {done}")
        (clen,) = struct.unpack_from(">I", mv, pos)
        pos += 4
        if clen > len(mv) - pos:
            raise PayloadError(f"corrupt lz4 block at byte {done}: length {clen} exceeds the "
                               f"{len(mv) - pos} bytes left")
        chunk = mv[pos:pos + clen]
        if clen == want:  # stored uncompressed
            raw = chunk
        else:
            try:
                raw = lz4.block.decompress(chunk, uncompressed_size=want)
            except lz4.block.LZ4BlockError as e:
                raise PayloadError(f"corrupt lz4 block at byte {done}: {e}") from None
            if len(raw) != want:
                raise PayloadError(f"size mismatch in the lz4 block at byte {done}")
        dst[done:done + want] = np.frombuffer(raw, np.uint8)
        pos += clen
        done += want


def decode_payload(blob: bytes | memoryview, kind: int, out: np.ndarray) -> None:
    """One payload of ``kind`` into ``out`` (its dtype: the wire pixel type)."""
    if kind == KIND_LZ4:
        decode_lz4_hdf5(blob, out)
        return
    dt = out.dtype
    enc = f"bs{dt.itemsize * 8}-lz4<" if kind == KIND_BSLZ4 else "<"
    DectrisDecoder(enc, dt.name, (1, out.size)).decode_one(blob, out.reshape(1, -1))


@dataclass
class DectrisV2Decoder:
    """Batch decoder of one series' stream V2 payloads (``aux`` = the kind)."""

    dtype: str
    shape: tuple[int, int]
    _by_kind: dict[int, DectrisDecoder] = field(init=False, repr=False)
    _chunk_filter: Any = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.shape = (int(self.shape[0]), int(self.shape[1]))
        bits = np.dtype(self.dtype).itemsize * 8
        self._by_kind = {
            KIND_BSLZ4: DectrisDecoder(f"bs{bits}-lz4<", self.dtype, self.shape),
            KIND_NONE: DectrisDecoder("<", self.dtype, self.shape),
        }

    def __getstate__(self) -> dict:
        return {"dtype": self.dtype, "shape": self.shape}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    @property
    def warmup_key(self) -> tuple:
        return ("dectris-v2", str(self.dtype))

    def warmup(self, out_dtype: np.dtype | str = np.float32) -> None:
        for dec in self._by_kind.values():
            dec.warmup(out_dtype)

    def hdf5_chunk(self, payload: np.ndarray, aux: int) -> tuple[Any, Any] | None:
        """The frame as an HDF5 chunk for recording without decoding, by its
        form: bslz4 and lz4 payloads are chunks of the HDF5 bitshuffle and
        LZ4 filters as they are, raw pixels are stored as they are."""
        nbytes = np.dtype(self.dtype).itemsize * self.shape[0] * self.shape[1]
        if aux == KIND_BSLZ4:
            if self._chunk_filter is None:
                self._chunk_filter = HDF5Filter.bitshuffle_lz4(np.dtype(self.dtype).itemsize)
            return chunks.bslz4_chunk(payload, nbytes, self._chunk_filter)
        if aux == KIND_LZ4:
            return chunks.lz4_hdf5_chunk(payload, nbytes)
        if aux == KIND_NONE:
            return chunks.raw_chunk(payload, nbytes)
        return None

    def decode(self, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
               aux: np.ndarray, out: np.ndarray) -> None:
        n = len(offsets)
        if n == 0:
            return
        aux = np.asarray(aux)
        first = int(aux[0])
        if first != KIND_LZ4 and (aux == first).all():
            self._kernel(first).decode(data, offsets, sizes, aux, out)
            return
        data = np.asarray(data).reshape(-1).view(np.uint8)
        for kind in np.unique(aux):
            idx = np.flatnonzero(aux == kind)
            if kind == KIND_LZ4:
                tmp = np.empty(self.shape, dtype=self.dtype)
                for i in idx:
                    o, s = int(offsets[i]), int(sizes[i])
                    try:
                        decode_lz4_hdf5(data[o:o + s], tmp)
                    except PayloadError as e:
                        e.index = int(i)
                        raise
                    out[i] = tmp
                continue
            sub = np.empty((len(idx), *self.shape), dtype=out.dtype)
            try:
                self._kernel(int(kind)).decode(data, offsets[idx], sizes[idx], aux[idx], sub)
            except PayloadError as e:
                if e.index is not None:
                    e.index = int(idx[e.index])
                raise
            out[idx] = sub

    def _kernel(self, kind: int) -> DectrisDecoder:
        try:
            return self._by_kind[kind]
        except KeyError:
            e = PayloadError(f"unknown stream V2 payload kind {kind}")
            e.index = 0
            raise e from None
