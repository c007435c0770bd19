"""The LiberTEM private API we override is still the one we wrote against.

When this fails, LiberTEM moved: read its new code for the symbol named,
adapt ``libertem_live/_libertem_compat.py`` and widen the pin in
``core/pyproject.toml``."""
from __future__ import annotations

import pytest

from libertem_live import _libertem_compat as compat


def test_overridden_privates_are_unchanged() -> None:
    problems = compat.mismatches()
    assert not problems, "LiberTEM's private API moved:\n  " + "\n  ".join(problems)


def test_every_override_is_listed() -> None:
    """An override added to the compat module without an entry would go unchecked."""
    from libertem.api import Context
    from libertem.executor.pipelined import PipelinedExecutor
    overridden = {
        f"libertem.api:Context.{name}" for name in vars(compat.ContextOverrides)
        if name.startswith("_") and not name.startswith("__") and hasattr(Context, name)
    } | {
        f"libertem.executor.pipelined:PipelinedExecutor.{name}"
        for name in vars(compat.LivePipelinedExecutor)
        if name.startswith("_") and not name.startswith("__")
        and hasattr(PipelinedExecutor, name)
    }
    assert overridden <= set(compat.EXPECTED), overridden - set(compat.EXPECTED)


def test_the_check_names_a_moved_symbol(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(compat.EXPECTED, "libertem.api:Context._run_sync", "(self, dataset)")
    monkeypatch.setitem(compat.EXPECTED, "libertem.api:Context._gone", "(self)")
    monkeypatch.setitem(compat.COPIED_SOURCE,
                        "libertem.executor.pipelined:PipelinedExecutor._run_function", "0" * 16)
    problems = "\n".join(compat.mismatches())
    assert "libertem.api:Context._run_sync has the signature (self, dataset, udf" in problems
    assert "libertem.api:Context._gone is gone" in problems
    assert "PipelinedExecutor._run_function changed" in problems


def test_pin_matches_the_checked_series() -> None:
    from pathlib import Path
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("not running from a source tree")
    major, minor = (int(n) for n in compat.CHECKED_SERIES.split("."))
    assert f'"libertem>={major}.{minor},<{major}.{minor + 1}"' in pyproject.read_text()
