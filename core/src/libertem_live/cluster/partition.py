"""The live partition a cluster worker runs: its frames travel with it.

It is a :class:`~libertem_live.acquisition.LivePartition` in every way
LiberTEM sees (meta, slice, tiling, ROI, corrections, sparse tiles), so a
UDF gets the same tiles, of the same depths, as on one machine, and the
results are the same to the last bit.  Only where the encoded frames come
from differs: :class:`~libertem_live.cluster.packing.PackedFrames` carried
in the task instead of ring slots announced through a worker queue.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from libertem_live.acquisition import LivePartition, Tiler
from libertem_live.cluster.packing import PackedFrames
from libertem_live.errors import AcquisitionError, DecodeError
from libertem_live.transport.reader import _decode_error


class PackedLivePartition(LivePartition):
    """A partition of frames ``start .. stop - 1`` with those frames inside."""

    def __init__(self, base: LivePartition, frames: PackedFrames):
        super().__init__(base.meta, base.slice, base._start, base._stop,
                         base._frame_decoder, base._sparse)
        self._idx = getattr(base, "_idx", None)
        if frames.first != self._start or frames.count != self._stop - self._start:
            raise AcquisitionError(
                f"packed frames {frames.first}..{frames.first + frames.count - 1} do not "
                f"match the partition of frames {self._start}..{self._stop - 1}")
        self._frames = frames
        self.decoded = 0
        """Frames decoded by this partition's last read (reported to the main process)."""

    def _walk(self, depth: int, select_all: np.ndarray | None) -> Iterator[Any]:
        """Like :meth:`LivePartition._walk`, over the one run of packed frames
        (nothing to give back: the ring slots were freed when they were packed)."""
        frames = self._frames
        tiler = Tiler(self, depth, select_all)
        for step in tiler.runs(0, frames.count, frames.first):
            if step is None:
                yield None
                continue
            pos, end, sel, k = step
            yield (frames, None, pos, end, frames.first + pos, sel, k)
        yield from tiler.end()
        self.decoded = tiler.decoded

    @staticmethod
    def _rows(frames: PackedFrames, lo: int, hi: int, select: np.ndarray | None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        offsets, sizes, aux = frames.offsets[lo:hi], frames.sizes[lo:hi], frames.aux[lo:hi]
        if select is not None:
            offsets, sizes, aux = offsets[select], sizes[select], aux[select]
        return offsets, sizes, aux

    def _decode_run(self, spec: Any, slot: Any, lo: int, hi: int, out: np.ndarray,
                    first: int, select: np.ndarray | None) -> None:
        offsets, sizes, aux = self._rows(spec, lo, hi, select)
        try:
            self._frame_decoder.decode(spec.payload, offsets, sizes, aux, out)
        except (DecodeError, ValueError, IndexError) as e:
            raise _decode_error(e, first, lo, hi, select) from e

    def _decode_csr_run(self, spec: Any, slot: Any, lo: int, hi: int, first: int,
                        select: np.ndarray | None) -> Any:
        offsets, sizes, aux = self._rows(spec, lo, hi, select)
        try:
            return self._frame_decoder.decode_csr(spec.payload, offsets, sizes, aux)
        except (DecodeError, ValueError, IndexError) as e:
            raise _decode_error(e, first, lo, hi, select) from e
