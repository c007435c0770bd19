"""A live dashboard in the browser for libertem-live.

``Dashboard`` serves the page from Python beside a script;
``libertem-live-dashboard`` (``cli.py``) runs acquisitions for it.  Names load
on first use so that registering the result hooks stays cheap.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Dashboard": "libertem_live_dashboard.dashboard",
    "DashboardUDF": "libertem_live_dashboard.udf",
    "demo_data": "libertem_live_dashboard.demo",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
