"""Upstream LiberTEM-live's memory-driver names that have no other home here."""
from __future__ import annotations

from libertem_live.driver import UpstreamConnectionBuilder

__all__ = ["MemoryConnectionBuilder"]


class MemoryConnectionBuilder(UpstreamConnectionBuilder):
    """``MemoryConnectionBuilder().open(data=..., ...)``: what
    ``ctx.make_connection('memory')`` returns, for scripts that build it directly."""

    connection = "libertem_live.detectors.memory.connection:MemoryConnection"
