"""The ``libertem-live`` console command."""
from __future__ import annotations

import argparse
import sys

from libertem_live import __version__, list_detectors


def _detectors(args: argparse.Namespace) -> int:
    rows = list_detectors()
    if not rows:
        print("no detector drivers installed")
        return 1
    width = max(len(r["name"]) for r in rows)
    dwidth = max(len(f"{r['distribution']} {r['version']}") for r in rows)
    for r in rows:
        dist = f"{r['distribution']} {r['version']}"
        detail = r["description"] if r["status"] == "ok" else f"{r['status'].upper()}: {r['error']}"
        print(f"{r['name']:<{width}}  {dist:<{dwidth}}  {detail}")
    return 0 if all(r["status"] == "ok" for r in rows) else 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="libertem-live", description="live processing of 4D-STEM detector streams")
    parser.add_argument("--version", action="version", version=f"libertem-live-core {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("detectors", help="list installed detector drivers and their versions")
    p.set_defaults(func=_detectors)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
