"""Which dashboards in this process follow acquisitions.

The result hooks (``plugin.py``) hand every event to each registered state;
with no dashboard started the hooks cost one empty loop."""
from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_states: tuple[Any, ...] = ()


def register(state: Any) -> None:
    global _states
    with _lock:
        if state not in _states:
            _states = _states + (state,)


def unregister(state: Any) -> None:
    global _states
    with _lock:
        _states = tuple(s for s in _states if s is not state)


def active() -> tuple[Any, ...]:
    return _states
