"""What each built file carries: one wheel and one sdist per distribution,
the metadata users see on an index, and no file that must not ship."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from _release import REPO_URL, Built, normalize, source_dirs

SOURCES = {normalize(tomllib.loads((d / "pyproject.toml").read_text())["project"]["name"]): d
           for d in source_dirs()}

#: Never shipped: bytecode and numba's on-disk caches (they live in __pycache__).
BUILD_LEFTOVERS = re.compile(r"(^|/)__pycache__/|\.py[cod]$|\.nbi$|\.nbc$")
#: Not shipped either: the distributions' own tests.
TESTS = re.compile(r"(^|/)(tests?/|conftest\.py$|test_[^/]*\.py$)")
#: Test-like names that ARE the product: the kit's shared suite, and the test
#: the scaffold writes into a new driver (package data, ``*.tmpl``).
SHIPPED_ON_PURPOSE = ("libertem_live_testing/suite/", "libertem_live/scaffold/template/")


def _project(path: Path) -> dict:
    return tomllib.loads((path / "pyproject.toml").read_text())["project"]


def _inner(b: Built) -> list[str]:
    """Member names relative to the distribution's root (an sdist's top folder
    stripped)."""
    if b.kind == "wheel":
        return b.names()
    return [str(PurePosixPath(*PurePosixPath(n).parts[1:])) for n in b.names()]


def _offending(b: Built) -> list[str]:
    names = _inner(b)
    return ([n for n in names if BUILD_LEFTOVERS.search(n)]
            + [n for n in names if TESTS.search(n) and not
               any(p in n for p in SHIPPED_ON_PURPOSE)])


def test_one_wheel_and_one_sdist_per_distribution(dists: list[Built]) -> None:
    kinds = {(d.project, d.kind) for d in dists}
    assert kinds == {(p, k) for p in SOURCES for k in ("wheel", "sdist")}, kinds
    for d in dists:
        assert d.version == _project(SOURCES[d.project])["version"], d.path.name


@pytest.mark.parametrize("kind", ["wheel", "sdist"])
def test_no_tests_bytecode_or_numba_caches(dists: list[Built], kind: str) -> None:
    bad = {d.path.name: _offending(d) for d in dists if d.kind == kind}
    assert not any(bad.values()), bad


def test_metadata(dists: list[Built]) -> None:
    for d in (d for d in dists if d.kind == "wheel"):
        src = SOURCES[d.project]
        meta = d.metadata()
        where = d.path.name
        assert meta["Description-Content-Type"] == "text/markdown", where
        assert meta.get_payload().strip() == (src / "README.md").read_text().strip(), where
        assert meta["License-Expression"] == "MIT", where
        assert meta.get_all("License-File") == ["LICENSE"], where
        urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
        assert set(urls) == {"Homepage", "Documentation", "Changelog", "Source"}, where
        assert all(u.startswith(REPO_URL) for u in urls.values()), urls
        rel = src.relative_to(src.parents[1] if src.parent.name == "plugins" else src.parent)
        assert urls["Changelog"] == f"{REPO_URL}/blob/main/{rel}/CHANGELOG.md", urls
        classifiers = meta.get_all("Classifier")
        for c in ("Development Status :: 3 - Alpha", "Programming Language :: Python :: 3.11",
                  "Operating System :: POSIX :: Linux",
                  "Topic :: Scientific/Engineering :: Physics"):
            assert c in classifiers, (where, c)
        assert meta["Requires-Python"] == ">=3.11", where
        licence = d.read(".dist-info/licenses/LICENSE")
        assert "MIT License" in licence and "the libertem-live authors" in licence, where


def test_entry_points_are_exactly_the_declared_ones(dists: list[Built]) -> None:
    import configparser
    for d in (d for d in dists if d.kind == "wheel"):
        project = _project(SOURCES[d.project])
        want = {"console_scripts": project.get("scripts", {}),
                **project.get("entry-points", {})}
        want = {g: eps for g, eps in want.items() if eps}
        parser = configparser.ConfigParser(delimiters=("=",))
        parser.optionxform = str  # type: ignore[assignment, method-assign]
        if any(n.endswith(".dist-info/entry_points.txt") for n in d.names()):
            parser.read_string(d.read(".dist-info/entry_points.txt"))
        got = {g: {k: v.strip() for k, v in parser[g].items()} for g in parser.sections()}
        assert got == want, d.path.name


def test_simulators_and_package_data_are_shipped(dists: list[Built]) -> None:
    wheels = {d.project: set(d.names()) for d in dists if d.kind == "wheel"}
    for project in ("libertem-live-dectris", "libertem-live-merlin", "libertem-live-asi-tpx3"):
        module = project.replace("-", "_")
        assert f"{module}/sim/__init__.py" in wheels[project]
        assert f"{module}/sim/__main__.py" in wheels[project]
    core = wheels["libertem-live-core"]
    template = (SOURCES["libertem-live-core"] / "src" / "libertem_live" / "scaffold" / "template")
    for f in template.rglob("*.tmpl"):
        assert f"libertem_live/scaffold/template/{f.relative_to(template).as_posix()}" in core
    static = SOURCES["libertem-live-dashboard"] / "src" / "libertem_live_dashboard" / "static"
    names = {f.name for f in static.iterdir() if f.is_file()}
    assert names, "the dashboard has no static files?"
    for name in names:
        assert f"libertem_live_dashboard/static/{name}" in wheels["libertem-live-dashboard"]


def test_sdist_carries_licence_changelog_and_readme(dists: list[Built]) -> None:
    for d in (d for d in dists if d.kind == "sdist"):
        inner = set(_inner(d))
        for f in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml"):
            assert f in inner, (d.path.name, f)
