"""The heap policy the LiveContext applies in its process and its workers."""
from __future__ import annotations

import sys

import pytest

from libertem_live import heap


def test_applied_once_per_process() -> None:
    first = heap.keep_freed_memory()
    if sys.platform.startswith("linux"):
        assert first is True, "glibc's mallopt should take both settings"
    assert heap.keep_freed_memory() is first


def test_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_applied", {})
    monkeypatch.setenv("LIBERTEM_LIVE_KEEP_HEAP", "0")
    assert heap.keep_freed_memory() is False
