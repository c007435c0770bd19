#!/usr/bin/env python3
"""Set up and run the project with nothing but Python 3.11+ and pip.

    python3 dev.py demo      # main job: a live acquisition from a simulator
    python3 dev.py test      # every package's tests, each in its own environment
    python3 dev.py bench     # throughput benchmark (nox -s bench)
    python3 dev.py -- ...    # anything else: passed to nox as-is

The first call creates ``.bootstrap/`` (a virtual environment holding the
pinned nox and uv); nox then builds one environment per session under
``.nox/``.  Only the standard library is used here, on purpose.
"""
from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BOOT = ROOT / ".bootstrap"
TOOLS = ["nox==2026.10.20", "uv==0.13.9"]
SESSIONS = {
    "demo": ["-s", "demo"],
    "test": ["-t", "tests"],
    "bench": ["-s", "bench"],
    "docs": ["-s", "docs"],
}


def _bin(name: str) -> Path:
    sub = "Scripts" if os.name == "nt" else "bin"
    return BOOT / sub / name


def bootstrap() -> None:
    stamp = BOOT / "tools.txt"
    if stamp.exists() and stamp.read_text() == "\n".join(TOOLS):
        return
    if sys.version_info < (3, 11):
        sys.exit(f"Python 3.11 or newer is needed, this is {sys.version.split()[0]}")
    print(f"setting up {BOOT.name}/ with {', '.join(TOOLS)}", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(BOOT)
    subprocess.run([str(_bin("python")), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", *TOOLS], check=True)
    stamp.write_text("\n".join(TOOLS))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "--":
        nox_args = rest
    elif command in SESSIONS:
        nox_args = SESSIONS[command] + (["--", *rest] if rest else [])
    else:
        print(f"unknown command {command!r}; use one of {', '.join(SESSIONS)} or -- NOX-ARGS")
        return 2
    bootstrap()
    env = dict(os.environ)
    env["PATH"] = str(_bin("python").parent) + os.pathsep + env.get("PATH", "")
    return subprocess.run([str(_bin("nox")), "-f", str(ROOT / "noxfile.py"), *nox_args],
                          cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
