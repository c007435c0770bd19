"""Upstream LiberTEM-live's Merlin names that have no other home here."""
from __future__ import annotations

from typing import Any

__all__ = ["MerlinConnectionBuilder"]


class MerlinConnectionBuilder:
    """``MerlinConnectionBuilder().open(**params)``: what
    ``ctx.make_connection('merlin')`` returns, for scripts that build it directly."""

    def open(self, **params: Any) -> Any:
        from .connection import MerlinConnection
        return MerlinConnection(**params)
