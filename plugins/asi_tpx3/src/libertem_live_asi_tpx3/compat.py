"""Upstream LiberTEM-live's asi_tpx3 names that have no other home here."""
from __future__ import annotations

from libertem_live.driver import UpstreamConnectionBuilder

__all__ = ["AsiTpx3ConnectionBuilder"]


class AsiTpx3ConnectionBuilder(UpstreamConnectionBuilder):
    """``AsiTpx3ConnectionBuilder().open(**params)``: what ``ctx.make_connection('asi_tpx3')``
    returns, for scripts that build it directly."""

    connection = "libertem_live_asi_tpx3.connection:Tpx3Connection"
