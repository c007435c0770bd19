"""Upstream LiberTEM-live's Merlin names that have no other home here."""
from __future__ import annotations

from libertem_live.driver import UpstreamConnectionBuilder

__all__ = ["MerlinConnectionBuilder"]


class MerlinConnectionBuilder(UpstreamConnectionBuilder):
    """``MerlinConnectionBuilder().open(**params)``: what ``ctx.make_connection('merlin')``
    returns, for scripts that build it directly."""

    connection = "libertem_live_merlin.connection:MerlinConnection"
