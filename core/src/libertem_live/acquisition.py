"""The LiberTEM DataSet every driver's acquisition is.

``LiveAcquisition`` describes the scan (shape, dtype, partitions) to LiberTEM
and owns the lifecycle of one run: arm (active mode) or take the announced
stream (passive mode), feed the workers through the shared ring, and stop.
Drivers never subclass it; they provide a connection, a controller or
pending acquisition, and a decoder.
"""
from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
from libertem.common import Shape, Slice
from libertem.io.corrections import CorrectionSet
from libertem.io.dataset.base import DataSet, DataSetMeta, DataTile, Partition
from sparseconverter import CUDA, NUMPY, SCIPY_CSR, SPARSE_BACKENDS, for_backend

from libertem_live.errors import AcquisitionError, AcquisitionStateError
from libertem_live.hooks import ReadyForDataEnv
from libertem_live.interrupts import held
from libertem_live.ledger import Ledger
from libertem_live.protocols import (
    AcquisitionController, DetectorConnection, FrameFormat, PendingAcquisition,
)
from libertem_live.transport.feed import FeedCommHandler
from libertem_live.transport.reader import decode_csr_from, decode_into, messages
from libertem_live.transport.ring import attach
from libertem_live.transport.stream import FrameStream


def default_frames_per_partition(nimages: int, sig_shape: tuple[int, ...],
                                 sparse: bool = False) -> int:
    """Enough partitions for live updates and both workers, few enough that
    per-task overhead stays small, and (dense) a float32 partition under
    256 MiB; sparse partitions are small whatever the frame size."""
    by_updates = max(64, -(-nimages // 32))
    if sparse:
        return int(min(by_updates, 16384))
    frame_bytes = 4 * math.prod(sig_shape)
    by_memory = max(1, (256 << 20) // frame_bytes)
    return int(max(1, min(by_memory, by_updates, 4096)))


class LivePartition(Partition):
    def __init__(self, meta: DataSetMeta, partition_slice: Slice, start: int, stop: int,
                 decoder: Any, sparse: bool = False):
        super().__init__(meta=meta, partition_slice=partition_slice,
                         io_backend=None, decoder=None)
        self._start = start
        self._stop = stop
        self._frame_decoder = decoder
        self._sparse = sparse
        self._corrections: CorrectionSet | None = None
        self._worker_context: Any = None

    def set_corrections(self, corrections: CorrectionSet | None) -> None:
        self._corrections = corrections

    def set_worker_context(self, worker_context: Any) -> None:
        self._worker_context = worker_context

    def get_locations(self) -> None:
        return None

    def get_macrotile(self, *args: Any, **kwargs: Any) -> Any:
        raise AcquisitionStateError(
            "a live partition can only be read once, inside a UDF run"
        )

    def get_tiles(self, tiling_scheme: Any, dest_dtype: Any = "float32", roi: Any = None,
                  array_backend: Any = None) -> Iterator[DataTile]:
        if self._worker_context is None:
            raise AcquisitionStateError(
                "live acquisitions need an executor with worker queues: use the "
                "LiveContext default (pipelined) or 'inline'"
            )
        sig_shape = tuple(self.meta.shape.sig)
        sig_dims = len(sig_shape)
        total = self._stop - self._start
        select_all: np.ndarray | None = None
        tile_origin = self._start
        if roi is not None:
            roi_flat = np.asarray(roi).reshape(-1).astype(bool)
            select_all = roi_flat[self._start:self._stop]
            tile_origin = int(roi_flat[:self._start].sum())
            total = int(select_all.sum())
        scheme = tiling_scheme.adjust_for_partition(self)
        depth = total if scheme.intent == "partition" else min(scheme.depth, total)
        depth = max(depth, 1)
        if self._sparse and array_backend in SPARSE_BACKENDS:
            # the negotiated depth is sized for dense frames (2 tiles of a
            # 512x512 frame per MiB); a CSR tile of a whole partition is small
            yield from self._sparse_tiles(max(total, 1), tile_origin, select_all, dest_dtype,
                                          array_backend)
            return
        buf = np.empty((depth,) + sig_shape, dtype=np.dtype(dest_dtype))
        corr = self._corrections
        have_corr = corr is not None and corr.have_corrections()
        fill = 0

        def tile(k: int) -> DataTile:
            tile_slice = Slice(origin=(tile_origin, ) + (0,) * sig_dims,
                               shape=Shape((k,) + sig_shape, sig_dims=sig_dims))
            data = buf[:k]
            if have_corr:
                corr.apply(data, tile_slice)
            if array_backend not in (None, NUMPY, CUDA):
                return DataTile(for_backend(data, array_backend), tile_slice=tile_slice,
                                scheme_idx=0)
            return DataTile(data, tile_slice=tile_slice, scheme_idx=0)

        for run in self._walk(depth, select_all):
            if run is None:
                yield tile(fill)
                tile_origin += fill
                fill = 0
                continue
            spec, slot, lo, hi, first, sel, k = run
            self._decode_run(spec, slot, lo, hi, buf[fill:fill + k], first, sel)
            fill += k

    def _sparse_tiles(self, depth: int, tile_origin: int, select_all: np.ndarray | None,
                      dest_dtype: Any, array_backend: Any) -> Iterator[DataTile]:
        """CSR tiles straight from a sparse-capable decoder, never densified."""
        import scipy.sparse
        sig_shape = tuple(self.meta.shape.sig)
        sig_dims = len(sig_shape)
        parts: list[Any] = []
        fill = 0

        def tile() -> DataTile:
            arr = parts[0] if len(parts) == 1 else scipy.sparse.vstack(parts, format="csr")
            if arr.dtype != np.dtype(dest_dtype):
                arr = arr.astype(dest_dtype)
            tile_slice = Slice(origin=(tile_origin,) + (0,) * sig_dims,
                               shape=Shape((arr.shape[0],) + sig_shape, sig_dims=sig_dims))
            data = arr if array_backend == SCIPY_CSR else for_backend(arr, array_backend)
            return DataTile(data, tile_slice=tile_slice, scheme_idx=0)

        for run in self._walk(depth, select_all):
            if run is None:
                yield tile()
                tile_origin += fill
                parts, fill = [], 0
                continue
            spec, slot, lo, hi, first, sel, k = run
            parts.append(self._decode_csr_run(spec, slot, lo, hi, first, sel))
            fill += k

    def _decode_run(self, spec: Any, slot: Any, lo: int, hi: int, out: np.ndarray,
                    first: int, select: np.ndarray | None) -> None:
        """Decode one run that :meth:`_walk` yielded into ``out``; a partition
        whose frames travelled with it (a cluster worker's) reads them elsewhere."""
        decode_into(self._frame_decoder, spec, slot, lo, hi, out, first, select=select)

    def _decode_csr_run(self, spec: Any, slot: Any, lo: int, hi: int, first: int,
                        select: np.ndarray | None) -> Any:
        return decode_csr_from(self._frame_decoder, spec, slot, lo, hi, first, select)

    def _walk(self, depth: int, select_all: np.ndarray | None) -> Iterator[Any]:
        """The partition's frames as runs to decode, ``(ring, slot, lo, hi,
        first frame index, selected rows or None, frame count)``, with a None
        whenever ``depth`` frames make a full tile (and after the last run).
        Each run's slot generation is checked once the consumer asks for the
        next run (it has decoded this one by then); a piece's frames are given
        back after its last run, in one write, marked decoded (which is where
        the ledger counts them) or skipped (outside the ROI): once given back,
        the receiver may reuse the slot, so nothing here touches it again.
        The decoded count is checked at the end."""
        tiler = Tiler(self, depth, select_all)
        for spec, pieces in messages(self._worker_context.get_worker_queue()):
            for slot, lo, hi, first, gen in pieces:
                views = attach(spec)
                picked: list[np.ndarray] = []
                for step in tiler.runs(lo, hi, first):
                    if step is None:
                        yield None
                        continue
                    pos, end, sel, k = step
                    yield (spec, slot, pos, end, first + pos - lo, sel, k)
                    if views.generation[slot] != gen:
                        raise AcquisitionError(
                            f"ring slot {slot} was taken by the receiver again before "
                            f"frames {first}..{first + hi - lo - 1} were decoded: the "
                            "results would be wrong, so the run stops. This is a bug in "
                            "the frame transport; please report it with the ledger"
                        )
                    if sel is not None:
                        picked.append(pos + sel)
                views.finish(slot, lo, hi, gen, None if select_all is None else picked)
        yield from tiler.end()


class Tiler:
    """Cuts a partition's runs of frames into the steps that fill tiles of
    ``depth`` frames, keeping only the frames the ROI selects; every way a
    partition reads its frames (ring, packed, by reference) walks with one.

    :meth:`runs` gives ``(pos, end, selected rows or None, frame count)``
    for rows ``pos..end`` of a run, or None where a tile is full; the caller
    decodes a step before it asks for the next.  :meth:`end` closes the last
    tile and checks that every selected frame was decoded."""

    def __init__(self, part: LivePartition, depth: int, select_all: np.ndarray | None):
        self.start, self.stop = part._start, part._stop
        self.depth = depth
        self.select_all = select_all
        self.fill = 0
        self.decoded = 0

    def runs(self, lo: int, hi: int, first: int) -> Iterator[tuple[int, int, Any, int] | None]:
        """Steps over rows ``lo..hi`` of a run whose row ``lo`` is frame ``first``."""
        depth, select_all = self.depth, self.select_all
        pos = lo
        while pos < hi:
            sel = None
            if select_all is not None:
                rel = first - self.start + (pos - lo)
                sel = np.flatnonzero(select_all[rel:rel + (hi - pos)])[:depth - self.fill]
                if len(sel) == 0:
                    break
                step = int(sel[-1]) + 1
                k = len(sel)
            else:
                step = k = min(depth - self.fill, hi - pos)
            yield (pos, pos + step, sel, k)
            self.fill += k
            pos += step
            self.decoded += k
            if self.fill == depth:
                yield None
                self.fill = 0

    def end(self) -> Iterator[None]:
        if self.fill:
            yield None
        expected = (self.stop - self.start if self.select_all is None
                    else int(self.select_all.sum()))
        if self.decoded != expected:
            raise AcquisitionError(
                f"partition of frames {self.start}..{self.stop - 1} decoded {self.decoded} "
                f"frames, expected {expected}"
            )


class LiveAcquisition(DataSet):
    """A live acquisition, usable wherever LiberTEM takes a DataSet."""

    def __init__(self, *, conn: DetectorConnection, nav_shape: tuple[int, ...],
                 frame_format: FrameFormat, frames_per_partition: int | None,
                 controller: AcquisitionController | None = None,
                 pending: PendingAcquisition | None = None,
                 hook_caller: Any = None):
        super().__init__()
        self.conn = conn
        self.controller = controller
        self.pending = pending
        self.frame_format = frame_format
        self._hook_caller = hook_caller
        self._nav_shape = tuple(int(n) for n in nav_shape)
        self.nimages = int(math.prod(self._nav_shape))
        sig = tuple(frame_format.sig_shape)
        self.frames_per_partition = int(
            frames_per_partition
            or default_frames_per_partition(self.nimages, sig, frame_format.sparse)
        )
        if self.frames_per_partition < 1:
            raise ValueError("frames_per_partition must be at least 1")
        dtype = np.dtype(frame_format.dtype)
        self._meta = DataSetMeta(
            shape=Shape(self._nav_shape + sig, sig_dims=len(sig)),
            array_backends=self.array_backends,
            image_count=self.nimages,
            raw_dtype=dtype,
            dtype=dtype,
            metadata=dict(frame_format.metadata),
        )
        self._stream: FrameStream | None = None
        self._comm: FeedCommHandler | None = None
        self._runs = 0
        self.ledger: Ledger = Ledger(self.nimages)
        self.run_info: dict[str, Any] = {}
        """What the detector told about the last run's series (its ``series`` id, ...)."""

    # --- what LiberTEM asks ---------------------------------------------------
    @property
    def mode(self) -> str:
        return "passive" if self.pending is not None else "active"

    def initialize(self, executor: Any) -> LiveAcquisition:
        return self

    @property
    def meta(self) -> DataSetMeta:
        return self._meta

    @property
    def shape(self) -> Shape:
        return self._meta.shape

    @property
    def dtype(self) -> np.dtype:
        return self._meta.raw_dtype

    @property
    def raw_dtype(self) -> np.dtype:
        return self._meta.raw_dtype

    @property
    def array_backends(self) -> tuple[str, ...]:
        if self.frame_format.array_backends is not None:
            return tuple(self.frame_format.array_backends)
        if self.frame_format.sparse:
            return (SCIPY_CSR, NUMPY, CUDA)
        return (NUMPY, CUDA)

    def check_valid(self) -> bool:
        return True

    def need_decode(self, read_dtype: Any, roi: Any, corrections: Any) -> bool:
        return True

    def get_max_io_size(self) -> int:
        return 4 << 20

    def get_base_shape(self, roi: Any) -> tuple[int, ...]:
        return (1,) + tuple(self.shape.sig)

    def adjust_tileshape(self, tileshape: tuple[int, ...], roi: Any) -> tuple[int, ...]:
        return (tileshape[0],) + tuple(self.shape.sig)

    def get_correction_data(self) -> CorrectionSet:
        excluded = self.frame_format.metadata.get("excluded_pixels")
        if excluded is not None:
            return CorrectionSet(excluded_pixels=excluded)
        return CorrectionSet()

    def get_partitions(self) -> Iterator[LivePartition]:
        sig = tuple(self.shape.sig)
        fpp = self.frames_per_partition
        for start in range(0, self.nimages, fpp):
            stop = min(start + fpp, self.nimages)
            part_slice = Slice(origin=(start,) + (0,) * len(sig),
                               shape=Shape((stop - start,) + sig, sig_dims=len(sig)))
            yield LivePartition(self._meta, part_slice, start, stop,
                                self.frame_format.decoder, self.frame_format.sparse)

    def get_task_comm_handler(self) -> FeedCommHandler:
        if self._stream is None:
            raise AcquisitionStateError(
                "this acquisition has not been started: run it with a LiveContext "
                "(ctx.run_udf / ctx.run_udf_iter), not a plain libertem Context"
            )
        comm = FeedCommHandler(self._stream)
        self._comm = comm
        return comm

    # --- the run lifecycle, driven by LiveContext --------------------------------
    def start_acquisition(self) -> None:
        if self._stream is not None:
            raise AcquisitionStateError("this acquisition is already running")
        if self.pending is not None and self._runs > 0:
            raise AcquisitionStateError(
                "a passive acquisition can be processed once: its frames are consumed. "
                "Wait for the next one with conn.wait_for_acquisition()"
            )
        try:
            # Ctrl-C waits until the stream is ours, so that it is always stopped
            with held():
                if self.pending is not None:
                    stream = self.pending.take_stream()
                else:
                    assert self.controller is not None
                    stream = self.controller.arm(self.conn, self.nimages)
                self._runs += 1
                self._stream = stream
        except KeyboardInterrupt as e:
            self.end_acquisition(error=e)
            raise
        self.ledger = stream.ledger
        self.run_info = stream.info
        if stream.expected is None:
            stream.set_expected(self.nimages)
        if self.pending is None and self._hook_caller is not None:
            try:
                self._hook_caller.on_ready_for_data(env=ReadyForDataEnv(aq=self))
            except BaseException as e:
                self.end_acquisition(error=e)
                raise

    def end_acquisition(self, error: BaseException | None = None) -> None:
        stream = self._stream
        if stream is None:
            return
        self._stream = None
        try:
            if self._comm is not None:
                self._comm.release_rest()
            if self.controller is not None and self.pending is None:
                self.controller.stop(self.conn, stream, error)
        finally:
            stream.close()
            self._comm = None

    @property
    def stream(self) -> FrameStream | None:
        """The frames of the running acquisition (None outside a run), for a
        consumer in the main process that stores them without the workers
        (``LiveContext.record``)."""
        return self._stream

    @property
    def stream_error(self) -> BaseException | None:
        stream = self._stream
        return None if stream is None else stream.error

    def __repr__(self) -> str:
        return (f"<LiveAcquisition {self.mode} {getattr(self.conn, 'detector_name', '?')} "
                f"nav={tuple(self.shape.nav)} sig={tuple(self.shape.sig)}>")
