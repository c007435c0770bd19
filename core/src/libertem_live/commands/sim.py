"""``libertem-live sim [NAME [ARGS...]]``: run the simulator an installed driver ships.

Simulators are found through the plugin API (``DetectorInfo.simulator``), so a
third-party driver's simulator appears here as soon as it is installed.  The
simulator's module is imported only when it is run: listing stays cheap.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from libertem_live.commands import find_driver
from libertem_live.errors import DriverError
from libertem_live.parameters import load_named


def with_simulator() -> dict[str, Any]:
    """Name -> DetectorInfo of every usable driver that declares a simulator."""
    from libertem_live.registry import default_registry
    return {r.name: r.info for r in default_registry().records()
            if r.status == "ok" and r.info is not None and r.info.simulator}


def _entry(name: str, target: str) -> Callable[..., Any]:
    try:
        obj = load_named(target)
    except Exception as e:
        raise DriverError(
            f"the {name!r} driver names {target!r} as its simulator "
            f"(DetectorInfo.simulator), which cannot be loaded: {type(e).__name__}: {e}. "
            "Reinstall the driver's distribution, or report it to its authors") from e
    if not callable(obj):
        raise DriverError(f"the {name!r} driver's simulator {target!r} is not callable")
    return obj


def _list(sims: dict[str, Any]) -> int:
    if not sims:
        print("no installed driver ships a simulator")
        return 1
    width = max(len(n) for n in sims)
    for name, info in sorted(sims.items()):
        print(f"{name:<{width}}  {info.description}".rstrip())
    print("\nrun one with: libertem-live sim NAME [--help]")
    return 0


def run(args: argparse.Namespace) -> int:
    sims = with_simulator()
    if not args.name:
        return _list(sims)
    name = args.name
    if name not in sims:
        found = find_driver(name, "libertem-live sim")
        if isinstance(found, int):
            return found
        have = ", ".join(sorted(sims)) or "none"
        print(f"libertem-live sim: the {name!r} driver ships no simulator; drivers with one: "
              f"{have}", file=sys.stderr)
        return 1
    try:
        main = _entry(name, sims[name].simulator)
    except DriverError as e:
        print(f"libertem-live sim: {e}", file=sys.stderr)
        return 2
    status = main(list(args.args), prog=f"libertem-live sim {name}")
    return 0 if status is None else int(status)
