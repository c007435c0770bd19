"""The list of upstream tests the ``compat`` session leaves out agrees with
docs/upstream-differences.rst: every deliberate difference has its section
there, every section is used, and every entry says why."""
from __future__ import annotations

import re
from importlib import util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "upstream-differences.rst"


def _entries() -> list:
    spec = util.spec_from_file_location("compat_deselected", ROOT / "compat" / "deselected.py")
    assert spec is not None and spec.loader is not None
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.DESELECTED)


def _labels() -> set[str]:
    return set(re.findall(r"^\.\. _upstream-diff-([a-z0-9-]+):$", PAGE.read_text(), re.M))


def test_every_entry_has_a_kind_and_a_reason() -> None:
    for e in _entries():
        assert e.kind in ("internal", "data", "difference"), e
        assert len(e.reason) > 20, e
        assert e.node_id.startswith("tests/"), e
        assert (e.ref is not None) == (e.kind == "difference"), e


def test_node_ids_are_unique() -> None:
    ids = [e.node_id for e in _entries()]
    assert len(ids) == len(set(ids))


def test_every_difference_has_its_section_on_the_page() -> None:
    labels = _labels()
    missing = {e.node_id: e.ref for e in _entries()
               if e.kind == "difference" and e.ref not in labels}
    assert not missing, f"no section on {PAGE.name} for: {missing}"


def test_every_section_on_the_page_is_a_deselected_difference() -> None:
    used = {e.ref for e in _entries() if e.kind == "difference"}
    assert _labels() == used
