"""UDFs and checks shared by the driver tests."""
from __future__ import annotations

import threading
from typing import Any

import numpy as np
import scipy.sparse
from libertem.udf.base import UDF

RECEIVER_THREAD = "libertem-live-asi-tpx3-receiver"


class DenseSumUDF(UDF):
    """Sum of frames that accepts numpy tiles only, in the native dtype.

    Native dtype (uint32) keeps the dense tiles at 4 bytes per pixel; the
    sum itself is exact in uint64.
    """

    def get_preferred_input_dtype(self) -> Any:
        return self.USE_NATIVE_DTYPE

    def get_backends(self) -> Any:
        return (self.BACKEND_NUMPY,)

    def get_result_buffers(self) -> dict:
        return {"intensity": self.buffer(kind="sig", dtype=np.uint64),
                "dense_tiles": self.buffer(kind="single", dtype=np.int64)}

    def process_tile(self, tile: Any) -> None:
        assert isinstance(tile, np.ndarray), type(tile)
        self.results.intensity[:] += tile.sum(axis=0, dtype=np.uint64)
        self.results.dense_tiles[:] += 1

    def merge(self, dest: Any, src: Any) -> None:
        dest.intensity[:] += src.intensity
        dest.dense_tiles[:] += src.dense_tiles


class TileKindUDF(UDF):
    """Counts the tiles it sees by kind; runs beside SumUDF to show which path was used."""

    def get_backends(self) -> Any:
        return self.BACKEND_ALL

    def get_result_buffers(self) -> dict:
        return {"sparse": self.buffer(kind="single", dtype=np.int64),
                "dense": self.buffer(kind="single", dtype=np.int64)}

    def process_tile(self, tile: Any) -> None:
        if scipy.sparse.issparse(tile):
            self.results.sparse[:] += 1
        else:
            self.results.dense[:] += 1

    def merge(self, dest: Any, src: Any) -> None:
        dest.sparse[:] += src.sparse
        dest.dense[:] += src.dense


def receiver_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == RECEIVER_THREAD and t.is_alive()]
