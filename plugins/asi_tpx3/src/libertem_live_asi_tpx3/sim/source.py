"""Where the simulator's bytes come from: synthetic acquisitions with a known
ground truth, or a capture file to replay.

The simulator and the tests need the same frames twice: once as wire bytes
and once as the truth to compare decoded results with. :class:`SynthAcquisition`
builds both from a seed, so neither has to be stored.

Event model: per frame a Poisson number of events (mean
``events_per_frame``), 70 % inside a centred disk and 30 % flat background
(the shape of a bright-field disk in 4D-STEM). Counts mode (format_type
CSR) stores value 1 per event and keeps duplicate pixels as separate entries
- decoders must add them up. ToT mode stores random values in
``1..value_max``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..headers import (
    AcquisitionEnd, AcquisitionStart, ArrayChunk, DType, FormatType, ScanEnd, ScanStart,
    dtype_code, numpy_dtype,
)
from ..wire import iter_stream
from .encode import encode_chunk

__all__ = ["SynthConfig", "SynthAcquisition", "SynthSource", "CaptureSource",
           "metadata_bytes"]


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. ``value_dtypes`` are cycled over the chunks of a scan."""

    nav_shape: Tuple[int, int] = (16, 16)
    sig_shape: Tuple[int, int] = (512, 512)
    events_per_frame: float = 100.0
    format_type: FormatType = FormatType.CSR
    frames_per_chunk: Optional[int] = None  # default: one scan row per chunk
    value_dtypes: Sequence[DType] = (DType.U32,)
    indptr_dtype: DType = DType.U32
    indices_dtype: DType = DType.U32
    align: int = 1  # region alignment in the payload (1 = packed)
    extra_pad: int = 0  # extra junk bytes before the indices and values regions
    value_max: Optional[int] = None  # ToT only; default min(1023, smallest dtype max)
    seed: int = 0

    @property
    def nframes(self) -> int:
        return self.nav_shape[0] * self.nav_shape[1]

    @property
    def sig_size(self) -> int:
        return self.sig_shape[0] * self.sig_shape[1]

    @property
    def chunk_frames(self) -> int:
        return self.frames_per_chunk or self.nav_shape[1]


@dataclass
class SynthAcquisition:
    """One scan's worth of frames as CSR arrays plus their ArrayChunk records."""

    config: SynthConfig
    indptr: np.ndarray = field(repr=False)  # int64, nframes + 1
    indices: np.ndarray = field(repr=False)  # int64
    values: np.ndarray = field(repr=False)  # int64
    chunks: List[bytes] = field(repr=False)  # header + payload per chunk
    chunk_rows: List[int]

    @classmethod
    def generate(cls, config: SynthConfig) -> "SynthAcquisition":
        cfg = config
        rng = np.random.default_rng(cfg.seed)
        h, w = cfg.sig_shape
        n = cfg.nframes
        counts = rng.poisson(cfg.events_per_frame, size=n)
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        total = int(indptr[-1])
        in_disk = rng.random(total) < 0.7
        r = np.sqrt(rng.random(total)) * (min(h, w) / 4)
        phi = rng.random(total) * (2 * np.pi)
        y = np.where(in_disk, (h / 2 + r * np.sin(phi)).astype(np.int64),
                     rng.integers(0, h, total))
        x = np.where(in_disk, (w / 2 + r * np.cos(phi)).astype(np.int64),
                     rng.integers(0, w, total))
        indices = np.clip(y, 0, h - 1) * w + np.clip(x, 0, w - 1)
        if cfg.format_type == FormatType.TOT:
            vmax = cfg.value_max or min(
                1023, min(int(np.iinfo(numpy_dtype(dtype_code(d))).max) for d in cfg.value_dtypes))
            values = rng.integers(1, vmax + 1, total)
        else:
            values = np.ones(total, np.int64)
        acq = cls(config=cfg, indptr=indptr, indices=indices, values=values, chunks=[],
                  chunk_rows=[])
        acq._encode()
        return acq

    def _encode(self) -> None:
        cfg = self.config
        fpc = cfg.chunk_frames
        ip_max = int(np.iinfo(numpy_dtype(dtype_code(cfg.indptr_dtype))).max)
        ix_max = int(np.iinfo(numpy_dtype(dtype_code(cfg.indices_dtype))).max)
        if cfg.sig_size - 1 > ix_max:
            raise ValueError(f"sig_shape {cfg.sig_shape} does not fit indices dtype "
                             f"{DType(cfg.indices_dtype).name}")
        for c, a in enumerate(range(0, cfg.nframes, fpc)):
            b = min(a + fpc, cfg.nframes)
            lo, hi = int(self.indptr[a]), int(self.indptr[b])
            if hi - lo > ip_max:
                raise ValueError(f"chunk {c} has {hi - lo} entries, too many for indptr dtype "
                                 f"{DType(cfg.indptr_dtype).name}; use fewer frames per chunk")
            self.chunks.append(self.encode(c, *self.rows(a, b)))
            self.chunk_rows.append(b - a)

    def rows(self, a: int, b: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR arrays (indptr from 0, indices, values) of scan positions a..b-1."""
        lo, hi = int(self.indptr[a]), int(self.indptr[b])
        return self.indptr[a:b + 1] - lo, self.indices[lo:hi], self.values[lo:hi]

    def encode(self, c: int, indptr: np.ndarray, indices: np.ndarray,
               values: np.ndarray) -> bytes:
        """An ArrayChunk message in chunk ``c``'s encoding (its value dtype)."""
        cfg = self.config
        return encode_chunk(indptr, indices, values, indptr_dtype=cfg.indptr_dtype,
                            indices_dtype=cfg.indices_dtype,
                            value_dtype=cfg.value_dtypes[c % len(cfg.value_dtypes)],
                            align=cfg.align, extra_pad=cfg.extra_pad)

    def chunk_of(self, k: int) -> Tuple[int, int]:
        """(chunk number, first scan position of that chunk) for position ``k``."""
        fpc = self.config.chunk_frames
        return k // fpc, (k // fpc) * fpc

    # -- ground truth --------------------------------------------------------
    def expected_sum(self) -> np.ndarray:
        """float64 (H, W) sum over all frames of one scan."""
        s = np.bincount(self.indices, weights=self.values, minlength=self.config.sig_size)
        return s.reshape(self.config.sig_shape)

    def expected_frame(self, k: int) -> np.ndarray:
        """float64 (H, W) frame at scan position ``k`` (row-major nav index)."""
        lo, hi = int(self.indptr[k]), int(self.indptr[k + 1])
        f = np.bincount(self.indices[lo:hi], weights=self.values[lo:hi],
                        minlength=self.config.sig_size)
        return f.reshape(self.config.sig_shape)

    def expected_nnz_total(self) -> int:
        """Stored entries (duplicates included) over one scan."""
        return int(self.indptr[-1])

    @property
    def body(self) -> bytes:
        """All ArrayChunk messages of one scan, concatenated."""
        return b"".join(self.chunks)


def metadata_bytes(metadata: Union[None, bytes, str, dict]) -> bytes:
    """What follows ScanStart: bytes as given, str encoded, dict as JSON."""
    if metadata is None:
        return b""
    if isinstance(metadata, bytes):
        return metadata
    if isinstance(metadata, str):
        return metadata.encode()
    return json.dumps(metadata).encode()


class SynthSource:
    """The messages of one acquisition of synthetic data (ground truth built in)."""

    def __init__(self, synth: SynthAcquisition, scans: int, metadata: bytes,
                 sequence: int) -> None:
        cfg = synth.config
        self.synth = synth
        self.acq_start = AcquisitionStart(
            nav_shape=cfg.nav_shape, sig_shape=cfg.sig_shape, indptr_dtype=cfg.indptr_dtype,
            indices_dtype=cfg.indices_dtype, format_type=cfg.format_type, sequence=sequence,
        ).pack()
        self.scan_start = ScanStart(sequence=sequence, metadata_length=len(metadata)).pack() \
            + metadata
        self.scan_end = ScanEnd(sequence=sequence).pack()
        self.acq_end = AcquisitionEnd(sequence=sequence).pack()
        self.body = synth.body
        self.chunk_starts = np.concatenate(
            [[0], np.cumsum([len(c) for c in synth.chunks])]).astype(np.int64)
        self.scans = scans

    def segments(self) -> List[Any]:
        """The byte segments of one clean acquisition."""
        segs: List[Any] = [self.acq_start]
        for _ in range(self.scans):
            segs += [self.scan_start, memoryview(self.body), self.scan_end]
        segs.append(self.acq_end)
        return segs


class CaptureSource:
    """Acquisition bytes replayed from a capture file (one whole file per acquisition)."""

    def __init__(self, path: Union[str, Path]) -> None:
        self.data = Path(path).read_bytes()
        self._first_scan: Optional[list] = None

    def segments(self) -> List[Any]:
        return [memoryview(self.data)]

    def first_scan(self) -> list:
        """[AcquisitionStart, [chunk record views]] of the first scan in the file."""
        if self._first_scan is None:
            acq, records, seen_scan = None, [], False
            for _, hdr, rec in iter_stream(self.data):
                if isinstance(hdr, AcquisitionStart) and acq is None:
                    acq = hdr
                elif isinstance(hdr, ScanStart):
                    if seen_scan:
                        break
                    seen_scan = True
                elif isinstance(hdr, ArrayChunk):
                    records.append(rec)
                elif isinstance(hdr, (ScanEnd, AcquisitionEnd)) and seen_scan:
                    break
            self._first_scan = [acq, records]
        return self._first_scan

    def truth(self) -> Tuple[Tuple[int, int], np.ndarray, list, int]:
        """(sig_shape, sum, [(indices, values) per frame], nnz) of the first scan."""
        from ..decode import chunk_arrays  # numba: only for replayed captures
        acq, records = self.first_scan()
        sig = acq.sig_shape
        size = sig[0] * sig[1]
        total = np.zeros(size, np.float64)
        frames = []
        nnz = 0
        for rec in records:
            ca = chunk_arrays(rec, acq.indptr_dtype, acq.indices_dtype, sig_size=size)
            ix = ca.indices.astype(np.int64)
            vals = ca.values.astype(np.float64)
            total += np.bincount(ix, weights=vals, minlength=size)
            nnz += ca.header.nnz
            for r in range(ca.nframes):
                a, b = int(ca.indptr[r]), int(ca.indptr[r + 1])
                frames.append((ix[a:b], vals[a:b]))
        return sig, total, frames, nnz
