"""A live dashboard in the browser for libertem-live.

``Dashboard`` serves the page from Python beside a script;
``libertem-live-dashboard`` (``cli.py``) runs acquisitions for it.  Names load
on first use so that registering the result hooks stays cheap.
"""
from __future__ import annotations

from libertem_live.driver import lazy_names

__version__ = "0.1.0"

_LAZY = {
    "Dashboard": "libertem_live_dashboard.dashboard",
    "DashboardUDF": "libertem_live_dashboard.udf",
    "demo_data": "libertem_live_dashboard.demo",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_names(__name__, _LAZY, also=["__version__"])
