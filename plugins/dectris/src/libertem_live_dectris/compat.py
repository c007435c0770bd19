"""Upstream LiberTEM-live's dectris names that have no other home here."""
from __future__ import annotations

from typing import Any

__all__ = ["DectrisConnectionBuilder"]


class DectrisConnectionBuilder:
    """``DectrisConnectionBuilder().open(**params)``: what
    ``ctx.make_connection('dectris')`` returns, for scripts that build it directly."""

    def open(self, **params: Any) -> Any:
        from .connection import DectrisConnection
        return DectrisConnection(**params)
