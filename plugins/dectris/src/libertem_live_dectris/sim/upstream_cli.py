"""``libertem-live-dectris-sim``: the simulator's own options plus the forms
upstream LiberTEM-live's command of the same name took, so that its docs and
scripts keep working.

Upstream took ``PATH`` (a ZeroMQ dump to replay) as a positional argument,
``--port`` (REST, 8910), ``--zmqport`` (9999), ``--dwelltime`` (microseconds
per image) and ``--verbose BOOL``.  The first four mean the same here (a dump
written by upstream replays as it is); ``PATH`` is the same as ``--path``.
``--verbose true|false`` turns request logging on or off, like ``-v``; a
bare ``--verbose`` still works.
"""
from __future__ import annotations

import sys
from typing import Sequence

from . import __main__ as cli

PROG = "libertem-live-dectris-sim"
_TRUE = {"true", "1", "yes", "y", "on", "t"}
_FALSE = {"false", "0", "no", "n", "off", "f"}


def _verbose_values(argv: list[str]) -> list[str]:
    """Rewrite upstream's ``--verbose BOOL`` / ``--verbose=BOOL`` as ``--verbose`` or nothing."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        value = None
        if arg.startswith("--verbose="):
            value = arg.split("=", 1)[1]
        elif arg == "--verbose" and i + 1 < len(argv) and argv[i + 1].lower() in _TRUE | _FALSE:
            value = argv[i + 1]
            i += 1
        if value is None:
            out.append(arg)
        elif value.lower() in _TRUE:
            out.append("--verbose")
        elif value.lower() not in _FALSE:
            raise ValueError(f"--verbose: {value!r} is not a boolean (true/false)")
        i += 1
    return out


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = cli.parser(prog)
    p.add_argument("dump", nargs="?", metavar="PATH",
                   help="dump file to replay (upstream's form of --path)")
    try:
        argv = _verbose_values(argv)
    except ValueError as e:
        p.error(str(e))
    args = p.parse_args(argv)
    if args.dump is not None:
        if args.path is not None and args.path != args.dump:
            p.error(f"two dump files: PATH {args.dump!r} and --path {args.path!r}; give one")
        args.path = args.dump
    return cli.run(args, prog)


if __name__ == "__main__":
    raise SystemExit(main())
