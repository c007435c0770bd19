"""Upstream LiberTEM-live's dectris names that have no other home here."""
from __future__ import annotations

from libertem_live.driver import UpstreamConnectionBuilder

__all__ = ["DectrisConnectionBuilder"]


class DectrisConnectionBuilder(UpstreamConnectionBuilder):
    """``DectrisConnectionBuilder().open(**params)``: what ``ctx.make_connection('dectris')``
    returns, for scripts that build it directly."""

    connection = "libertem_live_dectris.connection:DectrisConnection"
