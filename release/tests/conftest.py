"""Fixtures of the release tests: the built files in dist/, a local index made
of them, and fresh virtual environments that install from it.

These tests need the distributions built first: ``python3 dev.py -- -s
test_release`` builds them and runs this folder (``-s build`` builds only).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _release import Built, Index, Venv, built, dist_dir, find_uv, make_index  # noqa: E402


@pytest.fixture(scope="session")
def dists() -> list[Built]:
    where = dist_dir()
    found = built(where) if where.is_dir() else []
    if not found:
        pytest.skip(f"no built distributions in {where}: run `python3 dev.py -- -s "
                    "test_release` (it builds them, then runs these tests) or `-s build`")
    return found


@pytest.fixture(scope="session")
def uv() -> str:
    found = find_uv()
    if found is None:
        pytest.skip("uv is needed to make the virtual environments: put it on PATH "
                    "or name it in LIBERTEM_LIVE_UV")
    return found


@pytest.fixture(scope="session")
def index(dists: list[Built], tmp_path_factory: pytest.TempPathFactory) -> Index:
    """Everything in dist/, served as a local simple index."""
    return make_index([d.path for d in dists], tmp_path_factory.mktemp("index") / "simple")


@pytest.fixture
def make_venv(uv: str, tmp_path: Path) -> Iterator[Callable[[str], Venv]]:
    def make(name: str) -> Venv:
        return Venv(uv, tmp_path / f"venv-{name}", tmp_path / f"cwd-{name}")
    yield make
