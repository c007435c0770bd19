"""The subcommands of ``libertem-live``, one module each; :mod:`libertem_live.cli`
only wires them into argparse, so that ``--help`` stays cheap to import."""
from __future__ import annotations

import sys
from typing import Any


def find_driver(name: str, prog: str) -> Any:
    """The installed driver ``name`` (its DetectorInfo), or the exit status
    after saying on stderr why not: 1 for a name no driver has (with the
    registry's did-you-mean), 2 for a driver that is installed but broken."""
    from libertem_live.errors import DriverError, UnknownDetectorError
    from libertem_live.registry import default_registry
    try:
        return default_registry().get(name)
    except UnknownDetectorError as e:
        print(f"{prog}: {e.args[0]}", file=sys.stderr)
        return 1
    except DriverError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
