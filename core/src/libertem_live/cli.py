"""The ``libertem-live`` console command."""
from __future__ import annotations

import argparse
import sys

from libertem_live import __version__, list_detectors


def _list(args: argparse.Namespace) -> int:
    """One line per installed driver; imports only the drivers' plugin modules."""
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


def _show(name: str) -> int:
    """One driver in full: what it is and the parameters its ``open`` takes."""
    from libertem_live.errors import DriverError, UnknownDetectorError
    from libertem_live.registry import default_registry

    registry = default_registry()
    try:
        info = registry.get(name)
        params = info.describe_parameters()
    except UnknownDetectorError as e:
        print(f"libertem-live: {e.args[0]}", file=sys.stderr)
        return 1
    except DriverError as e:
        print(f"libertem-live: {e}", file=sys.stderr)
        return 2
    record = next(r for r in registry.records() if r.name == name)
    print(f"{name} ({record.distribution} {record.version})")
    if info.description:
        print(f"  {info.description}")
    print()
    if not params:
        print(f"ctx.make_connection({name!r}).open() takes no parameters")
        return 0
    print(f"parameters of ctx.make_connection({name!r}).open(...):")
    nwidth = max(len(p.name) for p in params)
    dwidth = max(len(p.default_text) for p in params)
    for p in params:
        line = f"  {p.name:<{nwidth}}  {p.default_text:<{dwidth}}  {p.description}"
        print(line.rstrip())
    return 0


def _detectors(args: argparse.Namespace) -> int:
    return _show(args.name) if args.name else _list(args)


def _new_driver(args: argparse.Namespace) -> int:
    """Write a new driver distribution from the template."""
    from pathlib import Path

    from libertem_live.scaffold import new_driver

    try:
        root = new_driver(args.name, Path(args.dest))
    except (ValueError, FileExistsError) as e:
        print(f"libertem-live: {e}", file=sys.stderr)
        return 1
    print(f"wrote {root}")
    print("next:")
    print(f"  pip install -e {root} libertem-live-testing pytest")
    print(f"  pytest {root / 'tests'}      # the conformance kit against its simulator")
    print("  then replace wire.py, receiver.py and sim/ with your detector's")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="libertem-live", description="live processing of 4D-STEM detector streams")
    parser.add_argument("--version", action="version", version=f"libertem-live-core {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "detectors", help="list installed detector drivers, or show one driver's parameters",
        description="Without NAME: list installed detector drivers and their versions. "
                    "With NAME: that driver's connection parameters, their defaults and "
                    "meaning.")
    p.add_argument("name", nargs="?", metavar="NAME", help="a driver's name, e.g. memory")
    p.set_defaults(func=_detectors)
    n = sub.add_parser(
        "new-driver", help="write a new driver distribution (driver, simulator, conformance test)",
        description="Write libertem-live-NAME: a complete driver for a small TCP detector, its "
                    "simulator and its conformance test, which pass the kit as generated. "
                    "Replace the wire format with your detector's.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    n.add_argument("name", metavar="NAME", help="the driver's name, e.g. mycam")
    n.add_argument("--dest", default=".", help="folder to write libertem-live-NAME into")
    n.set_defaults(func=_new_driver)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
