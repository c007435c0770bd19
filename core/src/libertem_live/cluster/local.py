"""Dask workers on the receiving machine read their frames from the ring.

A worker process on the machine that receives the stream can map the
shared-memory ring by its name, as LiberTEM's local workers do, so its
task carries only the ring slot references of its frames, not the frames.
Which workers can: those that see the very same segment (same device and
inode of ``/dev/shm/<name>``); a worker in another container or on
another machine cannot, whatever its address.

Unlike a local LiberTEM worker, a dask worker never marks the frames it
read as consumed: the main process gives the slots back when the task's
answer came (or the run ended).  Why: dask runs a task again on another
worker when its worker dies, and the second run must find the same frames
in the same slots; a slot given back by the dead worker could already be
refilled.  A straggler (a cancelled task still running) writes nothing, so
it cannot touch the ring's state either; it only reads.
"""
from __future__ import annotations

import os
from typing import Any, Iterator

import numpy as np

from libertem_live.acquisition import LivePartition, Tiler
from libertem_live.cluster.packing import Piece
from libertem_live.errors import AcquisitionError
from libertem_live.transport.ring import RingSpec, attach



def segment_identity(name: str) -> tuple[int, int] | None:
    """(device, inode) of the ring's segment as this process sees it."""
    try:
        st = os.stat(os.path.join("/dev/shm", name.lstrip("/")))
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def sees_segment(name: str, identity: tuple[int, int]) -> bool:
    """Runs on each dask worker: does it see the main process's ring?"""
    return segment_identity(name) == tuple(identity)


class RingRefPartition(LivePartition):
    """A partition whose frames a worker reads from the ring by reference."""

    def __init__(self, base: LivePartition, spec: RingSpec, pieces: list[Piece]):
        super().__init__(base.meta, base.slice, base._start, base._stop,
                         base._frame_decoder, base._sparse)
        self._idx = getattr(base, "_idx", None)
        self._spec = spec
        self._pieces = pieces
        self.decoded = 0
        """Frames decoded by this partition's last read (reported to the main process)."""

    def _walk(self, depth: int, select_all: np.ndarray | None) -> Iterator[Any]:
        """Like :meth:`LivePartition._walk` over the given pieces, but the
        frames are not marked consumed (the main process gives them back)."""
        spec = self._spec
        tiler = Tiler(self, depth, select_all)
        for slot, lo, hi, first, gen in self._pieces:
            views = attach(spec)
            if views.generation[slot] != gen:
                raise _refilled(slot, first, hi - lo)
            for step in tiler.runs(lo, hi, first):
                if step is None:
                    yield None
                    continue
                pos, end, sel, k = step
                yield (spec, slot, pos, end, first + pos - lo, sel, k)
                if views.generation[slot] != gen:
                    raise _refilled(slot, first, hi - lo)
        yield from tiler.end()
        self.decoded = tiler.decoded


def _refilled(slot: int, first: int, count: int) -> AcquisitionError:
    return AcquisitionError(
        f"ring slot {slot} was refilled before frames {first}..{first + count - 1} were "
        "read on this dask worker (the run they belonged to ended or was cancelled)")
