"""LiberTEM's own way of feeding live data to workers, for comparison:
frames travel as the payload of ``WorkerQueue.put`` (pickled, through a
pipe).  A minimal DataSet/Partition/TaskCommHandler trio; importable, so
that workers unpickle the classes by reference."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from libertem.common import Shape, Slice
from libertem.common.executor import TaskCommHandler
from libertem.io.dataset.base import DataSet, DataSetMeta, DataTile, Partition
from sparseconverter import CUDA, NUMPY

CHUNK = 32


class QueueComm(TaskCommHandler):
    def __init__(self, pool: np.ndarray):
        self.pool = pool

    def handle_task(self, task: Any, queue: Any) -> None:
        part = task.get_partition()
        start = part.slice.origin[0]
        stop = start + part.slice.shape[0]
        try:
            for i in range(start, stop, CHUNK):
                n = min(CHUNK, stop - i)
                idx = np.arange(i, i + n) % len(self.pool)
                frames = np.ascontiguousarray(self.pool[idx])
                queue.put({"type": "FRAMES", "n": n}, payload=memoryview(frames).cast("B"))
        finally:
            queue.put({"type": "END_PARTITION"})

    def start(self) -> None:
        pass

    def done(self) -> None:
        pass


class QueuePartition(Partition):
    def __init__(self, meta: DataSetMeta, partition_slice: Slice, start: int, stop: int):
        super().__init__(meta=meta, partition_slice=partition_slice, io_backend=None,
                         decoder=None)
        self._start, self._stop = start, stop
        self._wc: Any = None

    def set_corrections(self, corrections: Any) -> None:
        pass

    def set_worker_context(self, worker_context: Any) -> None:
        self._wc = worker_context

    def get_locations(self) -> None:
        return None

    def get_tiles(self, tiling_scheme: Any, dest_dtype: Any = "float32", roi: Any = None,
                  array_backend: Any = None) -> Iterator[DataTile]:
        sig = tuple(self.meta.shape.sig)
        origin = self._start
        q = self._wc.get_worker_queue()
        while True:
            with q.get() as (header, payload):
                if header["type"] == "END_PARTITION":
                    return
                n = header["n"]
                raw = np.frombuffer(payload, dtype=self.meta.raw_dtype).reshape((n,) + sig)
                data = raw.astype(dest_dtype)
            yield DataTile(data, tile_slice=Slice(origin=(origin, 0, 0),
                                                  shape=Shape((n,) + sig, sig_dims=2)),
                           scheme_idx=0)
            origin += n


class QueueDataSet(DataSet):
    def __init__(self, pool: np.ndarray, nframes: int, fpp: int):
        super().__init__()
        self._pool = pool
        self._n = nframes
        self._fpp = fpp
        sig = pool.shape[1:]
        self._meta = DataSetMeta(shape=Shape((nframes,) + sig, sig_dims=2),
                                 array_backends=(NUMPY, CUDA), image_count=nframes,
                                 raw_dtype=pool.dtype, dtype=pool.dtype)

    def initialize(self, executor: Any) -> QueueDataSet:
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
    def array_backends(self) -> tuple[str, ...]:
        return (NUMPY, CUDA)

    def check_valid(self) -> bool:
        return True

    def need_decode(self, read_dtype: Any, roi: Any, corrections: Any) -> bool:
        return True

    def get_base_shape(self, roi: Any) -> tuple[int, ...]:
        return (1,) + tuple(self.shape.sig)

    def adjust_tileshape(self, tileshape: tuple[int, ...], roi: Any) -> tuple[int, ...]:
        return (tileshape[0],) + tuple(self.shape.sig)

    def get_partitions(self) -> Iterator[QueuePartition]:
        sig = tuple(self.shape.sig)
        for start in range(0, self._n, self._fpp):
            stop = min(start + self._fpp, self._n)
            yield QueuePartition(self._meta, Slice(origin=(start, 0, 0), shape=Shape(
                (stop - start,) + sig, sig_dims=2)), start, stop)

    def get_task_comm_handler(self) -> QueueComm:
        return QueueComm(self._pool)
