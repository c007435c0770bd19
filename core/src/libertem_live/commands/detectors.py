"""``libertem-live detectors [NAME]``: the installed drivers, or one driver's parameters."""
from __future__ import annotations

import argparse
import sys

from libertem_live import list_detectors


def _list() -> int:
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
    from libertem_live.commands import find_driver
    from libertem_live.errors import DriverError
    from libertem_live.parameters import default_memory_mib
    from libertem_live.registry import default_registry

    info = find_driver(name, "libertem-live")
    if isinstance(info, int):
        return info
    try:
        params = info.describe_parameters()
    except DriverError as e:
        print(f"libertem-live: {e}", file=sys.stderr)
        return 2
    registry = default_registry()
    record = next(r for r in registry.records() if r.name == name)
    print(f"{name} ({record.distribution} {record.version})")
    if info.description:
        print(f"  {info.description}")
    if info.simulator:
        print(f"  simulator: libertem-live sim {name} --help")
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
    mib = default_memory_mib(info, params)
    if mib is not None:
        print()
        print(f"memory: {mib:g} MiB of shared memory per connection (the ring each acquisition "
              "receives into), allocated at the first acquisition and kept until close()"
              + ("; buffer_size= (MiB) changes it" if any(p.name == "buffer_size"
                                                           for p in params) else ""))
    return 0


def run(args: argparse.Namespace) -> int:
    return _show(args.name) if args.name else _list()
