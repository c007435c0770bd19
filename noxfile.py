"""Sessions for the whole repository.

Every package is installed and tested in an environment of its own, so a
package that only works because a sibling happens to be installed fails
here.  ``python3 dev.py test`` runs every session tagged ``tests``.
"""
from __future__ import annotations

import os
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
# Containers often set PYTHONDONTWRITEBYTECODE, and uv installs no bytecode:
# then every process (each LiberTEM worker, each simulator, each subprocess
# test) compiles numpy, dask, numba and LiberTEM from source again, about 8 s
# a time on two cores.  With the cache written once, a test run takes a third
# of the time.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

CORE = str(ROOT / "core")
TESTING = str(ROOT / "testing")
PLUGINS = {
    "dectris": str(ROOT / "plugins" / "dectris"),
    "merlin": str(ROOT / "plugins" / "merlin"),
    "asi_tpx3": str(ROOT / "plugins" / "asi_tpx3"),
}
SHARED = ROOT.parent / "shared"


def _env() -> dict[str, str]:
    env = {"MPLBACKEND": "Agg", "PYTHONFAULTHANDLER": "1"}
    if SHARED.exists():
        env["LIBERTEM_LIVE_SHARED"] = str(SHARED)
    return env


def _installable(path: str) -> bool:
    return (Path(path) / "pyproject.toml").exists()


@nox.session(tags=["tests"])
def test_core(session: nox.Session) -> None:
    """The core alone (with the conformance kit it is certified by)."""
    session.install("-e", CORE, "-e", TESTING, "pytest")
    session.run("pytest", "-q", str(ROOT / "core" / "tests"), *session.posargs, env=_env())


@nox.session(tags=["tests"])
def test_testing(session: nox.Session) -> None:
    """The conformance kit's own tests (including the broken toy driver)."""
    session.install("-e", CORE, "-e", TESTING, "pytest")
    session.run("pytest", "-q", str(ROOT / "testing" / "tests"), *session.posargs, env=_env())


def _plugin_session(name: str):
    path = PLUGINS[name]

    def run(session: nox.Session) -> None:
        if not _installable(path):
            session.skip(f"plugins/{name} has no pyproject.toml yet")
        session.install("-e", CORE, "-e", TESTING, "-e", path, "pytest")
        session.run("pytest", "-q", str(Path(path) / "tests"), *session.posargs, env=_env())

    run.__doc__ = f"The {name} driver with its simulator and the conformance kit."
    return run


for _name in PLUGINS:
    nox.session(name=f"test_{_name}", tags=["tests"])(_plugin_session(_name))

DASHBOARD = str(ROOT / "plugins" / "dashboard")


@nox.session(tags=["tests"])
def test_dashboard(session: nox.Session) -> None:
    """The browser dashboard: server and hooks over real sockets, and the page in a real
    headless Chromium (Debian's package, installed here when missing and possible;
    otherwise those tests skip and say why)."""
    import shutil
    session.install("-e", CORE, "-e", TESTING, "-e", PLUGINS["dectris"], "-e", DASHBOARD,
                    "pytest", "selenium")

    def missing() -> bool:
        return not (shutil.which("chromium") or shutil.which("chromium-browser")) \
            or not shutil.which("chromedriver")
    if missing() and shutil.which("apt-get") and os.geteuid() == 0:
        install = ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]
        session.run(*install, external=True, success_codes=[0, 100])
        if missing():  # no package lists yet (a fresh container)
            session.run("apt-get", "update", "-q", external=True, success_codes=[0, 100])
            session.run(*install, external=True, success_codes=[0, 100])
    if missing():
        session.log("no chromium/chromedriver here and none could be installed: "
                    "the browser tests skip")
    session.run("pytest", "-q", str(Path(DASHBOARD) / "tests"), *session.posargs, env=_env())


@nox.session(tags=["tests"])
def new_driver(session: nox.Session) -> None:
    """`libertem-live new-driver acme` in a temp dir, installed beside core and the kit,
    passes the conformance suite as generated (what a vendor gets on day one)."""
    session.install("-e", CORE, "-e", TESTING, "pytest")
    tmp = Path(session.create_tmp()) / "new-driver"
    if tmp.exists():
        import shutil
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    session.run("libertem-live", "new-driver", "acme", "--dest", str(tmp))
    dist = tmp / "libertem-live-acme"
    session.install(str(dist))
    session.run("libertem-live", "detectors", env=_env())
    session.run("pytest", "-q", "-p", "no:cacheprovider", str(dist / "tests"), *session.posargs,
                env=_env())


UPSTREAM = "libertem-live==0.3.0"
COMPAT = ROOT / "compat"


def _upstream_sdist(session: nox.Session) -> Path:
    """The released sdist of upstream LiberTEM-live, fetched from the package
    index once into .nox/ (it is upstream's code: never copied into this repo)."""
    cache = ROOT / ".nox" / "_upstream_sdist"
    found = sorted(cache.glob("libertem_live-*.tar.gz")) if cache.exists() else []
    if found:
        return found[-1]
    session.install("pip")
    session.run("python", "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
                "--dest", str(cache), UPSTREAM)
    found = sorted(cache.glob("libertem_live-*.tar.gz"))
    if not found:
        session.error(f"pip download {UPSTREAM} left no sdist in {cache}")
    return found[-1]


def _deselected() -> list:
    from importlib import util
    spec = util.spec_from_file_location("compat_deselected", COMPAT / "deselected.py")
    module = util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return list(module.DESELECTED)


@nox.session(tags=["tests"])
def compat(session: nox.Session) -> None:
    """Upstream LiberTEM-live 0.3.0's own test suite (from its sdist, with its conftest.py
    and pytest.ini) against our packages: the drop-in promise.  Deselections, each with
    its reason, are in compat/deselected.py; deliberate differences are on
    docs/upstream-differences.rst."""
    import shutil
    import tarfile
    session.install("-e", CORE, "-e", TESTING, *(a for p in PLUGINS.values() for a in ("-e", p)),
                    "pytest", "pytest-benchmark", "pytest-asyncio", "pytest-timeout", "psutil")
    session.run("pytest", "-q", "-p", "no:cacheprovider", str(COMPAT / "tests"), env=_env())
    sdist = _upstream_sdist(session)
    tmp = Path(session.create_tmp()) / "upstream"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    wanted = ("tests/", "conftest.py", "pytest.ini")
    with tarfile.open(sdist) as tar:
        members = []
        for m in tar.getmembers():
            rel = m.name.partition("/")[2]
            if m.isfile() and rel.startswith(wanted):
                m.name = rel
                members.append(m)
        tar.extractall(tmp, members=members, filter="data")
    testdata = (Path(session.create_tmp()) / "testdata").resolve()
    session.run("python", str(COMPAT / "testdata.py"), str(testdata), env=_env())
    args: list[str] = []
    for entry in _deselected():
        # a whole module (no "::") is ignored: it may not even import here
        args += ["--deselect" if "::" in entry.node_id else "--ignore", entry.node_id]
    session.chdir(str(tmp))
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "log_cli=false",
                "--timeout=120", "-rs", "--durations=15",
                *args, "tests", *session.posargs,
                env={**_env(), "TESTDATA_BASE_PATH": str(testdata)})


def _install_all(session: nox.Session) -> None:
    paths = [CORE, TESTING] + [p for p in PLUGINS.values() if _installable(p)]
    args: list[str] = []
    for p in paths:
        args += ["-e", p]
    session.install(*args)


@nox.session
def demo(session: nox.Session) -> None:
    """The main job: a live acquisition from a simulator, with a picture of the result."""
    _install_all(session)
    session.install("-e", DASHBOARD)
    out = session.posargs or [str(ROOT / "out" / "demo.png")]
    session.run("python", str(ROOT / "examples" / "live_demo.py"), "--out", *out, env=_env())
    bin_dir = os.path.relpath(session.bin, ROOT)
    print("\nThe same simulator live in the browser: run these two in two terminals, then open "
          "http://127.0.0.1:8050/\n"
          f"  {bin_dir}/libertem-live sim dectris --sample specimen --scan 96 96 --frames 9216 "
          "--shape 128 128 --dwelltime 500\n"
          f"  {bin_dir}/libertem-live dashboard --detector dectris --api-host 127.0.0.1 "
          "--api-port 8910 --data-host 127.0.0.1 --mode active --scan continuous "
          "--nav-shape 96,96 --controller-param trigger_mode=exte", flush=True)


@nox.session
def bench(session: nox.Session) -> None:
    """Throughput of the transport and the drivers (prints a table, writes JSON)."""
    _install_all(session)
    session.run("python", str(ROOT / "bench" / "run.py"), *session.posargs, env=_env())


@nox.session
def soak(session: nox.Session) -> None:
    """300 acquisitions in one context, every driver, both modes, a real SIGINT
    every 25th run: RSS, fds, threads, child processes and shared memory must
    stay flat (bench/soak.py; several minutes, so not part of `tests`)."""
    _install_all(session)
    session.run("python", str(ROOT / "bench" / "soak.py"), *session.posargs, env=_env())


@nox.session(tags=["tests"])
def docs(session: nox.Session) -> None:
    """The documentation builds with no warning, and its examples run: the user
    guide's code blocks as Sphinx doctests against the simulators, its notebook
    in a Jupyter kernel (the usage page runs in the dectris tests)."""
    _install_all(session)
    session.install("pytest", "sphinx>=7", "nbclient", "nbformat", "ipykernel", "matplotlib")
    out = Path(session.create_tmp()) / "html"
    session.run("sphinx-build", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"),
                str(out), env=_env())
    session.log(f"documentation: {out / 'index.html'}")
    session.run("pytest", "-q", str(ROOT / "docs" / "tests"), *session.posargs, env=_env())


# ------------------------------------------------------------------ releases

DIST = ROOT / "dist"


def _distributions() -> list[Path]:
    """Every distribution of the repository (a folder with a pyproject.toml under
    core/, testing/ or plugins/), found rather than listed so a new one is built too."""
    candidates = [ROOT / "core", ROOT / "testing", *sorted((ROOT / "plugins").iterdir())]
    return [p for p in candidates if (p / "pyproject.toml").is_file()]


def _members(path: Path) -> int:
    import tarfile
    import zipfile
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as z:
            return len(z.namelist())
    with tarfile.open(path) as t:
        return sum(1 for m in t.getmembers() if m.isfile())


def _build_dists(session: nox.Session) -> None:
    """An sdist, then a wheel built from that sdist (so the sdist is known to be
    complete), for every distribution into an emptied dist/; two builds at a time."""
    import shutil
    import subprocess
    import time
    from concurrent.futures import ThreadPoolExecutor

    session.install("twine>=6.1")
    shutil.rmtree(DIST, ignore_errors=True)
    DIST.mkdir()
    uv = nox.virtualenv.UV
    python = str(Path(session.bin) / "python")

    def build(path: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
        return path, subprocess.run(
            [uv, "build", "--quiet", "--no-config", "--python", python, "--out-dir", str(DIST),
             str(path)], capture_output=True, text=True)

    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        for path, proc in pool.map(build, _distributions()):
            if proc.returncode != 0:
                session.error(f"building {path.relative_to(ROOT)} failed:\n"
                              f"{proc.stdout}{proc.stderr}")
    files = sorted(p for p in DIST.iterdir() if p.name.endswith((".whl", ".tar.gz")))
    session.log(f"built {len(files)} files in {time.monotonic() - start:.0f} s")
    session.run("twine", "check", "--strict", *map(str, files))
    rows = [(f.name.split("-")[0].replace("_", "-"), f.name.split("-")[1].removesuffix(".tar.gz"),
             "wheel" if f.suffix == ".whl" else "sdist", f.stat().st_size, _members(f), f.name)
            for f in files]
    print(f"{'distribution':<26} {'version':<8} {'kind':<6} {'KiB':>6} {'files':>5}  file")
    for name, version, kind, size, members, fname in rows:
        print(f"{name:<26} {version:<8} {kind:<6} {size / 1024:>6.1f} {members:>5}  {fname}")


@nox.session
def build(session: nox.Session) -> None:
    """sdists and wheels of every distribution in dist/, metadata checked with
    `twine check --strict` (test_release builds them too, then tests them)."""
    _build_dists(session)


@nox.session(tags=["tests"])
def test_release(session: nox.Session) -> None:
    """Build every distribution (as `build`), then release/tests: what the files
    carry, each driver installed alone from a local index into a fresh venv
    (simulator + ground truth), the kit alone, and the version policy
    (docs/releasing.rst) from wheels."""
    _build_dists(session)
    session.install("pytest")
    env = {**_env(), "LIBERTEM_LIVE_DIST": str(DIST), "LIBERTEM_LIVE_UV": nox.virtualenv.UV}
    session.run("pytest", "-q", "-p", "no:cacheprovider", "--durations=8",
                str(ROOT / "release" / "tests"), *session.posargs, env=env)
