"""UDFs for live feedback while a scan runs.

``SignalMonitorUDF`` shows the most recent frame, ``PartitionMonitorUDF``
the sum of the most recently finished partition: both answer "is the beam
where it should be?" without waiting for the whole scan.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from libertem.udf.base import UDF


class SignalMonitorUDF(UDF):
    """The last frame the workers saw (per merged partition)."""

    def get_backends(self) -> tuple[str, ...]:
        # every backend whose tiles can be indexed by frame: COO arrays cannot
        coo = {self.BACKEND_SCIPY_COO, self.BACKEND_CUPY_SCIPY_COO,
               getattr(self, "BACKEND_SCIPY_COO_ARRAY", None)}
        return tuple(b for b in self.BACKEND_ALL if b not in coo)

    def get_result_buffers(self) -> dict[str, Any]:
        return {"intensity": self.buffer(kind="sig", dtype=self.meta.input_dtype,
                                         where="device")}

    def process_tile(self, tile: Any) -> None:
        # tile[[-1]] (not tile[-1]): sparse matrices keep their 2D form that way
        self.results.intensity[:] = self.forbuf(tile[[-1]], self.results.intensity)

    def merge(self, dest: Any, src: Any) -> None:
        dest.intensity[:] = src.intensity


class PartitionMonitorUDF(UDF):
    """The sum of the most recently merged partition.

    ``dtype``: the dtype to sum in, combined with the acquisition's dtype by
    :func:`numpy.result_type` (default ``'float32'``: enough for a monitor,
    half the memory of float64).
    """

    def __init__(self, dtype: Any = "float32"):
        super().__init__(dtype=dtype)

    def get_preferred_input_dtype(self) -> Any:
        return self.params.dtype

    def get_backends(self) -> tuple[str, ...]:
        return tuple(self.BACKEND_ALL)

    def get_result_buffers(self) -> dict[str, Any]:
        return {"intensity": self.buffer(kind="sig", dtype=self.meta.input_dtype,
                                         where="device")}

    def process_tile(self, tile: Any) -> None:
        self.results.intensity[:] += self.forbuf(np.sum(tile, axis=0), self.results.intensity)

    def merge(self, dest: Any, src: Any) -> None:
        dest.intensity[:] = src.intensity
