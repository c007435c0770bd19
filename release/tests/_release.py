"""What the release tests share: the built files, a local package index made of
them, and fresh virtual environments that install from it as users do."""
from __future__ import annotations

import email.parser
import html
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The one place the repository's address is stated; every distribution's
#: project URLs must start with it (checked in test_contents.py).
REPO_URL = "https://github.com/libertem-live/libertem-live"

#: Folders that hold a distribution (each with a pyproject.toml).
SOURCES = ("core", "testing", "plugins/*")

#: The detector drivers shipped as distributions of their own.
DRIVERS = {"dectris": "libertem-live-dectris", "merlin": "libertem-live-merlin",
           "asi_tpx3": "libertem-live-asi-tpx3"}


def dist_dir() -> Path:
    return Path(os.environ.get("LIBERTEM_LIVE_DIST", ROOT / "dist"))


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def source_dirs() -> list[Path]:
    found: list[Path] = []
    for pattern in SOURCES:
        found += sorted(p for p in ROOT.glob(pattern) if (p / "pyproject.toml").is_file())
    return found


@dataclass(frozen=True)
class Built:
    """One file in dist/: a wheel or an sdist."""

    path: Path

    @property
    def kind(self) -> str:
        return "wheel" if self.path.suffix == ".whl" else "sdist"

    @property
    def project(self) -> str:
        return normalize(self.path.name.split("-")[0])

    @property
    def version(self) -> str:
        stem = self.path.name.removesuffix(".tar.gz").removesuffix(".whl")
        return stem.split("-")[1]

    def names(self) -> list[str]:
        if self.kind == "wheel":
            with zipfile.ZipFile(self.path) as z:
                return z.namelist()
        with tarfile.open(self.path) as t:
            return [m.name for m in t.getmembers() if m.isfile()]

    def read(self, suffix: str) -> str:
        """The text of the one member whose name ends with ``suffix``."""
        hits = [n for n in self.names() if n.endswith(suffix)]
        assert len(hits) == 1, f"{self.path.name}: {len(hits)} members end with {suffix!r}"
        if self.kind == "wheel":
            with zipfile.ZipFile(self.path) as z:
                return z.read(hits[0]).decode()
        with tarfile.open(self.path) as t:
            f = t.extractfile(hits[0])
            assert f is not None
            return f.read().decode()

    def metadata(self) -> email.message.Message:
        member = ".dist-info/METADATA" if self.kind == "wheel" else "/PKG-INFO"
        return email.parser.Parser().parsestr(self.read(member))


def built(directory: Path | None = None) -> list[Built]:
    directory = directory or dist_dir()
    return sorted((Built(p) for p in directory.iterdir()
                   if p.name.endswith((".whl", ".tar.gz"))), key=lambda b: b.path.name)


@dataclass(frozen=True)
class Index:
    """A local package index: its URL and the projects it holds."""

    url: str
    projects: tuple[str, ...]


def make_index(files: list[Path], dest: Path) -> Index:
    """A static simple repository (PEP 503) in ``dest`` holding ``files``.

    Served as an index of its own, not as ``--find-links``: uv's default index
    strategy (``first-index``) then takes every project it holds from it alone,
    so a distribution of the same name on PyPI (none of the libertem-live-*
    names exists there today; one may appear) can never be picked instead of
    the file under test, while the third-party dependencies still come from
    the default index (through uv's cache)."""
    projects: dict[str, list[Path]] = {}
    for f in files:
        projects.setdefault(Built(f).project, []).append(f)
    dest.mkdir(parents=True, exist_ok=True)
    links = []
    for project, members in sorted(projects.items()):
        pdir = dest / project
        pdir.mkdir()
        rows = []
        for f in members:
            shutil.copy2(f, pdir / f.name)
            rows.append(f'<a href="{html.escape(f.name)}">{html.escape(f.name)}</a><br>')
        (pdir / "index.html").write_text(
            "<!DOCTYPE html><html><body>\n" + "\n".join(rows) + "\n</body></html>\n")
        links.append(f'<a href="{project}/">{project}</a><br>')
    (dest / "index.html").write_text(
        "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n")
    return Index(dest.resolve().as_uri(), tuple(sorted(projects)))


def find_uv() -> str | None:
    return os.environ.get("LIBERTEM_LIVE_UV") or shutil.which("uv")


def clean_env(venv: Path) -> dict[str, str]:
    """The environment a user's shell would give the venv: nothing of this
    checkout or of the test's own environment on the import path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP",
                        "PYTHONDONTWRITEBYTECODE")}
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = str(venv / "bin") + os.pathsep + env.get("PATH", "")
    env["MPLBACKEND"] = "Agg"
    env["PYTHONNOUSERSITE"] = "1"
    return env


class Venv:
    """A fresh virtual environment outside the checkout; commands run from
    ``cwd`` (a temp folder), never from the source tree."""

    def __init__(self, uv: str, path: Path, cwd: Path):
        self.uv = uv
        self.path = path
        self.cwd = cwd
        cwd.mkdir(parents=True, exist_ok=True)
        self._uv("venv", "--quiet", "--python", sys.executable, str(path))

    @property
    def python(self) -> str:
        return str(self.path / "bin" / "python")

    def _uv(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.uv, *args], cwd=self.cwd, env=clean_env(self.path),
                              capture_output=True, text=True, timeout=600)
        if check and proc.returncode != 0:
            raise AssertionError(f"uv {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def install(self, index: Index, *requirements: str,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """``uv pip install`` from ``index`` first, the default index after it.
        --no-config: no uv.toml or pyproject.toml of a folder around counts;
        --refresh-package: the local projects are read afresh, never a cached
        file of the same name and version from an earlier build."""
        refresh = [a for p in index.projects for a in ("--refresh-package", p)]
        return self._uv("pip", "install", "--no-config", "--quiet", "--python", self.python,
                        "--index", index.url, *refresh, *requirements, check=check)

    def installed(self) -> dict[str, str]:
        """Distribution name (normalised) -> version."""
        out = self._uv("pip", "list", "--python", self.python, "--format", "freeze").stdout
        pairs = (line.split("==", 1) for line in out.splitlines() if "==" in line)
        return {normalize(n): v for n, v in pairs}

    def run(self, *args: str, timeout: float = 300,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a program of the venv (``python``, ``libertem-live``, ...) from ``cwd``."""
        exe = str(self.path / "bin" / args[0])
        proc = subprocess.run([exe, *args[1:]], cwd=self.cwd, env=clean_env(self.path),
                              capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def run_script(self, name: str, *args: str, timeout: float = 300) -> str:
        """Copy ``scripts/<name>`` next to nothing but itself and run it with the
        venv's python (so no folder of the checkout is on ``sys.path``)."""
        src = Path(__file__).parent / "scripts" / name
        dst = self.cwd / name
        shutil.copy2(src, dst)
        return self.run("python", str(dst), *args, timeout=timeout).stdout
