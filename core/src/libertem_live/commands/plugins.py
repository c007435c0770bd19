"""``libertem-live NAME ...`` for the subcommands installed plugins add
(``libertem_live_commands``): found when the command line is built, their
modules imported only when one runs."""
from __future__ import annotations

import sys
from typing import Any

def installed(taken: set[str]) -> tuple[dict[str, tuple[Any, str]], list[str]]:
    """Name -> (CommandInfo, distribution) of the plugins' subcommands other
    than the core's own (``taken``), and the ones left out with why; nothing
    at all if the plugins cannot load."""
    from libertem_live.registry import default_registry
    try:
        return default_registry().commands(taken=taken)
    except Exception as e:  # the core's own commands must work whatever is installed
        return {}, [f"the plugins' commands could not be read: {type(e).__name__}: {e}"]


def run(name: str, info: Any, dist: str, argv: list[str]) -> int:
    from libertem_live.parameters import load_named
    prog = f"libertem-live {name}"
    try:
        main = load_named(info.main)
    except Exception as e:
        print(f"{prog}: {dist} names {info.main!r} for this command (CommandInfo.main), "
              f"which cannot be loaded: {type(e).__name__}: {e}. Reinstall {dist}, or "
              "report it to its authors", file=sys.stderr)
        return 2
    status = main(list(argv), prog=prog)
    return 0 if status is None else int(status)
