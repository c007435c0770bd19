"""Upstream LiberTEM-live's asi_tpx3 names that have no other home here."""
from __future__ import annotations

from typing import Any

__all__ = ["AsiTpx3ConnectionBuilder"]


class AsiTpx3ConnectionBuilder:
    """``AsiTpx3ConnectionBuilder().open(**params)``: what
    ``ctx.make_connection('asi_tpx3')`` returns, for scripts that build it directly."""

    def open(self, **params: Any) -> Any:
        from .connection import Tpx3Connection
        return Tpx3Connection(**params)
