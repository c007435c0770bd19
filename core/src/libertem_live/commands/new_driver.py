"""``libertem-live new-driver NAME``: write a new driver distribution from the template."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def run(args: argparse.Namespace) -> int:
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
