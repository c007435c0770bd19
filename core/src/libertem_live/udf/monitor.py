"""UDFs for live feedback while a scan runs.

``SignalMonitorUDF`` shows the most recent frame, ``PartitionMonitorUDF``
the sum of the most recently finished partition: both answer "is the beam
where it should be?" without waiting for the whole scan.
"""
from __future__ import annotations

from typing import Any

from libertem.udf.base import UDF


class SignalMonitorUDF(UDF):
    """The last frame the workers saw (per merged partition)."""

    def get_result_buffers(self) -> dict[str, Any]:
        return {"intensity": self.buffer(kind="sig", dtype=self.meta.input_dtype)}

    def process_tile(self, tile: Any) -> None:
        self.results.intensity[:] = self.forbuf(tile[-1], self.results.intensity)

    def merge(self, dest: Any, src: Any) -> None:
        dest.intensity[:] = src.intensity


class PartitionMonitorUDF(UDF):
    """The sum of the most recently merged partition."""

    def get_result_buffers(self) -> dict[str, Any]:
        return {"intensity": self.buffer(kind="sig", dtype="float64")}

    def process_tile(self, tile: Any) -> None:
        self.results.intensity[:] += self.forbuf(tile.sum(axis=0), self.results.intensity)

    def merge(self, dest: Any, src: Any) -> None:
        dest.intensity[:] = src.intensity
