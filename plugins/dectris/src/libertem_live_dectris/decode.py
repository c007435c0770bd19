"""Decode DECTRIS image payloads into caller-provided arrays (worker hot path).

The receiver copies the raw part-3 blobs into shared-memory slots; worker
processes call :meth:`DectrisDecoder.decode` on a whole batch, which decodes
straight into the tile buffer with the dtype conversion folded in, so each
pixel is written once and no per-frame array is allocated.

Backends, fastest first (measured numbers in ``plugins/dectris/DECODE_NOTES.md``):

``"bitshuffle"``
    bitshuffle's C ``bshuf_decompress_lz4`` (SIMD) called from a numba loop;
    bslz4 only. Needs the ``bitshuffle`` wheel.
``"lz4lib"``
    liblz4 from ``python-lz4`` for the LZ4 part, numba for the bit-unshuffle.
``"numba"``
    pure numba, no C library at all: the fallback that always works.

``backend="auto"`` picks the first available one per encoding. All backends
validate every length field before use and report problems as
:class:`~libertem_live_dectris.errors.PayloadError` (the core turns it into
its ``DecodeError`` naming the frame); corrupt input never crashes the process.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from libertem_live.driver import HDF5Filter

from libertem_live_dectris import chunks, ckernels, kernels
from libertem_live_dectris.errors import PayloadError
from libertem_live_dectris.kernels import (
    E_BLOCK_OVERRUN, E_BLOCK_SIZE, E_BOUNDS, E_HEADER_SIZE, E_LZ4, E_LZ4_SIZE,
    E_RAW_SIZE, E_TAIL, E_TRUNC_BLOCKLEN, E_TRUNC_HEADER, ERR_LEN,
    KIND_BSLZ4, KIND_LZ4, KIND_RAW, LZ4_BAD_OFFSET, LZ4_OUTPUT_OVERFLOW, LZ4_TRUNCATED,
    default_block_elements,
)


_ENCODING_RE = re.compile(r"^(?:bs(?P<bits>8|16|32)-)?(?P<lz4>lz4)?(?P<order>[<>])$")
_PIXEL_TYPES = {"uint8": 1, "uint16": 2, "uint32": 4}


@dataclass(frozen=True)
class Encoding:
    """A parsed ``encoding`` string of ``dimage_d-1.0``: ``bs<bits>-lz4<``
    (bitshuffled blocks, each LZ4-compressed), ``lz4<`` (one LZ4 block) or
    ``<`` (raw little-endian pixels)."""

    kind: int  # kernels.KIND_*
    bits: int | None  # bitshuffle element bits, None if not bitshuffled


def parse_encoding(encoding: str, dtype: str | np.dtype) -> Encoding:
    """Validate ``encoding`` against the pixel ``dtype``; raise PayloadError if unsupported."""
    m = _ENCODING_RE.match(encoding)
    if m is None or (m["bits"] and not m["lz4"]):
        raise PayloadError(f"unsupported encoding {encoding!r}")
    if m["order"] != "<":
        raise PayloadError(f"unsupported encoding {encoding!r}: only little-endian ('<') pixels are supported")
    itemsize = pixel_itemsize(dtype)
    if m["bits"]:
        bits = int(m["bits"])
        if bits != itemsize * 8:
            raise PayloadError(
                f"encoding {encoding!r} shuffles {bits}-bit elements but the pixel type "
                f"{np.dtype(dtype).name} has {itemsize * 8} bits"
            )
        return Encoding(KIND_BSLZ4, bits)
    if m["lz4"]:
        return Encoding(KIND_LZ4, None)
    return Encoding(KIND_RAW, None)


def pixel_itemsize(dtype: str | np.dtype) -> int:
    """Bytes per pixel for the wire pixel types uint8/16/32; PayloadError otherwise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise PayloadError(f"unknown pixel type {dtype!r}")
    if dt.kind != "u" or dt.itemsize not in (1, 2, 4):
        raise PayloadError(f"unsupported pixel type {dt.name!r}, expected uint8, uint16 or uint32")
    return dt.itemsize


_LZ4_REASONS = {
    LZ4_TRUNCATED: "truncated or malformed",
    LZ4_OUTPUT_OVERFLOW: "decodes to more bytes than expected",
    LZ4_BAD_OFFSET: "match offset points before the start of the block",
}


def _message(err: np.ndarray) -> str:
    i, code, a, b, c = (int(x) for x in err)
    where = f"frame {i} of the batch"
    if code == E_BOUNDS:
        return f"{where}: payload slice [{a}, {a}+{b}) is outside the data buffer of {c} bytes"
    if code == E_TRUNC_HEADER:
        return f"{where}: truncated bslz4 header ({a} bytes, need at least 12)"
    if code == E_HEADER_SIZE:
        return f"{where}: size mismatch: expected {a} uncompressed bytes, got {b} in the bslz4 header"
    if code == E_BLOCK_SIZE:
        return f"{where}: invalid bslz4 block size {a} bytes for {b}-byte pixels (must be a multiple of 8 elements)"
    if code == E_TRUNC_BLOCKLEN:
        return f"{where}: truncated payload: no room for the length of LZ4 block {a} ({b} bytes left)"
    if code == E_BLOCK_OVERRUN:
        return f"{where}: corrupt LZ4 block {a}: length {b} exceeds the {c} bytes left in the payload"
    if code == E_LZ4:
        block = "" if a < 0 else f" {a}"
        reason = _LZ4_REASONS.get(b, f"liblz4 error {b}")
        return f"{where}: corrupt LZ4 block{block}: {reason}"
    if code == E_LZ4_SIZE:
        return f"{where}: size mismatch in LZ4 block {a}: expected {c} bytes, got {b}"
    if code == E_TAIL:
        return f"{where}: size mismatch after the last block: expected {a} tail bytes, got {b}"
    if code == E_RAW_SIZE:
        return f"{where}: size mismatch: expected {a} bytes of raw pixels, got {b}"
    return f"{where}: decode error code {code} ({a}, {b}, {c})"


BACKENDS = ("auto", "bitshuffle", "lz4lib", "numba")


def available_backends(encoding_kind: int) -> list[str]:
    """Backends usable in this process for an encoding kind, fastest first."""
    names = []
    if encoding_kind == KIND_BSLZ4 and ckernels.HAVE_BSHUF:
        names.append("bitshuffle")
    if ckernels.HAVE_LZ4:
        names.append("lz4lib")
    names.append("numba")
    return names


@dataclass
class DectrisDecoder:
    """Batch decoder for one acquisition's frames; picklable, sent to workers.

    ``encoding`` and ``dtype`` come from ``dimage_d-1.0`` (or the detector
    config), ``shape`` is the numpy frame shape (height, width).
    """

    encoding: str
    dtype: str
    shape: tuple[int, int]
    backend: str = "auto"
    _enc: Encoding = field(init=False, repr=False)
    _itemsize: int = field(init=False, repr=False)
    _chosen: str = field(init=False, repr=False)
    _chunk_filter: Any = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.shape = (int(self.shape[0]), int(self.shape[1]))
        self._enc = parse_encoding(self.encoding, self.dtype)
        self._itemsize = pixel_itemsize(self.dtype)
        avail = available_backends(self._enc.kind)
        if self.backend == "auto":
            self._chosen = avail[0]
        elif self.backend in avail:
            self._chosen = self.backend
        else:
            raise ValueError(f"backend {self.backend!r} not available here for {self.encoding!r}; have {avail}")

    def __getstate__(self) -> dict:
        # re-resolve the backend in the receiving process: the libraries
        # available there may differ
        return {"encoding": self.encoding, "dtype": self.dtype, "shape": self.shape, "backend": self.backend}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    @property
    def warmup_key(self) -> tuple:
        """Decoders with the same key share compiled kernels (see ``warmup``)."""
        return ("dectris", self.encoding, str(self.dtype), self.backend)

    @property
    def chosen_backend(self) -> str:
        return self._chosen

    def decode(
        self, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
        aux: np.ndarray, out: np.ndarray,
    ) -> None:
        """Decode frame i = ``data[offsets[i]:offsets[i]+sizes[i]]`` into ``out[i]``.

        ``out`` is (n, height, width) of any numeric dtype. ``aux`` is not used.
        Raises PayloadError naming the failing frame's index in the batch.
        """
        n = len(offsets)
        if out.shape != (n, *self.shape):
            raise ValueError(f"out has shape {out.shape}, expected {(n, *self.shape)}")
        if len(sizes) != n:
            raise ValueError(f"{n} offsets but {len(sizes)} sizes")
        if n == 0:
            return
        data = np.asarray(data)
        if data.dtype != np.uint8 or data.ndim != 1 or not data.flags.c_contiguous:
            data = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        sizes = np.ascontiguousarray(sizes, dtype=np.int64)
        if out.flags.c_contiguous:
            self._decode_into(data, offsets, sizes, out.reshape(n, -1))
        else:
            tmp = np.empty((n, self.shape[0] * self.shape[1]), dtype=out.dtype)
            self._decode_into(data, offsets, sizes, tmp)
            out[...] = tmp.reshape(out.shape)

    def _decode_into(self, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray, out2: np.ndarray) -> None:
        err = np.zeros(ERR_LEN, dtype=np.int64)
        kind = self._enc.kind
        if self._chosen == "bitshuffle":
            code = ckernels.decode_batch_bshuf(data, offsets, sizes, out2, self._itemsize, err)
        elif self._chosen == "lz4lib":
            code = ckernels.decode_batch_lz4lib(kind, data, offsets, sizes, out2, self._itemsize, err)
        else:
            code = kernels.decode_batch(kind, data, offsets, sizes, out2, self._itemsize, err)
        if code != 0:
            e = PayloadError(
                f"{self.encoding} {self.dtype} {self.shape}: {_message(err)}. The payload does "
                "not decode as announced: the transfer corrupted it, or the detector sends "
                "another compression or pixel type than its header says")
            e.index = int(err[0])
            raise e

    def hdf5_chunk(self, payload: np.ndarray, aux: int) -> tuple[Any, Any] | None:
        """The frame as an HDF5 chunk for recording without decoding: a
        ``bs<N>-lz4<`` payload as it is (bitshuffle filter), ``lz4<`` framed
        for the LZ4 filter, raw pixels as they are; None (decode it) where
        the payload's size does not fit the frame."""
        nbytes = self._itemsize * self.shape[0] * self.shape[1]
        kind = self._enc.kind
        if kind == KIND_BSLZ4:
            if self._chunk_filter is None:
                self._chunk_filter = HDF5Filter.bitshuffle_lz4(self._itemsize)
            return chunks.bslz4_chunk(payload, nbytes, self._chunk_filter)
        if kind == KIND_LZ4:
            return chunks.lz4_block_chunk(payload, nbytes)
        return chunks.raw_chunk(payload, nbytes)

    def decode_one(self, blob: bytes | bytearray | memoryview | np.ndarray, out: np.ndarray) -> None:
        """Decode a single payload into a (height, width) array."""
        arr = np.frombuffer(blob, dtype=np.uint8) if not isinstance(blob, np.ndarray) else blob
        self.decode(
            arr, np.zeros(1, np.int64), np.array([arr.size], np.int64),
            np.zeros(1, np.int64), out.reshape(1, *out.shape),
        )

    def warmup(self, out_dtype: np.dtype | str = np.float32) -> None:
        """Compile the kernels for ``out_dtype`` now instead of on the first batch."""
        from libertem_live_dectris.sim.encode import encode

        compression = {KIND_BSLZ4: "bslz4", KIND_LZ4: "lz4", KIND_RAW: "none"}[self._enc.kind]
        blob = encode(np.zeros(self.shape, dtype=self.dtype), compression)
        self.decode_one(blob, np.empty(self.shape, dtype=out_dtype))


def _check_out(out: np.ndarray) -> None:
    if out.ndim != 2:
        raise ValueError(f"out must be 2-D (height, width), got shape {out.shape}")


def decode_bslz4(blob: bytes | np.ndarray, out: np.ndarray, dtype: str | np.dtype | None = None,
                 backend: str = "auto") -> None:
    """Decode one ``bs<N>-lz4<`` payload into ``out`` (height, width).

    ``dtype`` is the wire pixel type (uint8/16/32); if None it is ``out.dtype``
    when that is one of them, else derived from the header's size field.
    """
    _check_out(out)
    arr = np.frombuffer(blob, dtype=np.uint8) if not isinstance(blob, np.ndarray) else blob
    if dtype is None:
        dtype = _infer_bslz4_dtype(arr, out)
    itemsize = pixel_itemsize(dtype)
    DectrisDecoder(f"bs{itemsize * 8}-lz4<", np.dtype(dtype).name, out.shape, backend).decode_one(arr, out)


def _infer_bslz4_dtype(arr: np.ndarray, out: np.ndarray) -> str:
    if out.dtype.kind == "u" and out.dtype.itemsize in (1, 2, 4):
        return out.dtype.name
    if arr.size < 12:
        raise PayloadError(f"truncated bslz4 header ({arr.size} bytes, need at least 12)")
    total = int.from_bytes(arr[:8].tobytes(), "big")
    for itemsize in (1, 2, 4):
        if total == out.size * itemsize:
            return f"uint{itemsize * 8}"
    raise PayloadError(f"size mismatch: bslz4 header says {total} bytes, not a multiple of {out.size} pixels")


def decode_lz4(blob: bytes | np.ndarray, out: np.ndarray, dtype: str | np.dtype = "uint16",
               backend: str = "auto") -> None:
    """Decode one ``lz4<`` payload (a raw LZ4 block) of ``dtype`` pixels into ``out``."""
    _check_out(out)
    DectrisDecoder("lz4<", np.dtype(dtype).name, out.shape, backend).decode_one(blob, out)


def decode_raw(blob: bytes | np.ndarray, out: np.ndarray, dtype: str | np.dtype = "uint16") -> None:
    """Decode one uncompressed little-endian payload (encoding ``<``) into ``out``."""
    _check_out(out)
    DectrisDecoder("<", np.dtype(dtype).name, out.shape, "numba").decode_one(blob, out)


__all__ = [
    "PayloadError", "DectrisDecoder", "Encoding", "available_backends", "decode_bslz4",
    "decode_lz4", "decode_raw", "default_block_elements", "parse_encoding", "pixel_itemsize",
]
