"""``libertem-live-asi-tpx-sim``: upstream LiberTEM-live's TPX3 simulator
command, translated onto this simulator's options (:mod:`.__main__`), so
that upstream's docs and scripts keep working.

Upstream sent the bytes of its ``PATHS`` (raw stream captures) to each client
over and over, sleeping ``--sleep`` seconds between passes, or a mock
acquisition of ``--mock-nav-shape`` scan positions (512x512 frames).  Here:

* ``PATH`` (one capture file) is replayed the same way: every pass is one
  acquisition, ``--sleep`` seconds apart, until the client leaves; several
  paths are refused (concatenate them into one file);
* ``--mock-nav-shape H W`` serves this simulator's synthetic 512x512 data of
  that scan shape (random events with a known ground truth), not upstream's
  one-event-per-frame pattern: a warning says so;
* ``--cached``: data is always served from memory; ``MEMFD`` says so in a
  warning;
* ``--port`` (8283) is the same; the simulator listens on 127.0.0.1, as
  upstream listened on localhost.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import __main__ as cli

PROG = "libertem-live-asi-tpx-sim"


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="ASI TPX3 simulator with the options of upstream LiberTEM-live's "
                    "libertem-live-asi-tpx-sim: replay a capture file, or serve a mock "
                    "acquisition. For all options of this simulator run "
                    "libertem-live sim asi_tpx3 --help.")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="capture file to replay (raw stream bytes; one file)")
    p.add_argument("--sleep", type=float, default=0.0,
                   help="seconds between two passes (acquisitions)")
    p.add_argument("--port", type=int, default=8283, help="TCP port (0: any free)")
    p.add_argument("--cached", default="MEM", type=str.upper, choices=["MEM", "MEMFD"],
                   help="accepted for upstream's scripts: data is always served from memory")
    p.add_argument("--mock-nav-shape", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="serve synthetic 512x512 frames of this scan shape instead of a file")
    return p


def _warn(message: str) -> None:
    print(f"{PROG}: note: {message}", file=sys.stderr, flush=True)


def translate(a: argparse.Namespace) -> list[str]:
    """Upstream's options as this simulator's own command line; warns on stderr
    about what behaves differently."""
    if not a.paths and a.mock_nav_shape is None:
        raise ValueError("need PATH (a capture file) or --mock-nav-shape H W")
    if a.paths and a.mock_nav_shape is not None:
        raise ValueError("give PATH or --mock-nav-shape, not both")
    if len(a.paths) > 1:
        raise ValueError(f"{len(a.paths)} capture files given; this simulator replays one: "
                         "concatenate them (cat a b > all) and pass that")
    if a.cached == "MEMFD":
        _warn("--cached MEMFD: data is served from ordinary memory (same bytes)")
    argv = ["--port", str(a.port), "--acquisitions", "0", "--interval", repr(a.sleep)]
    if a.paths:
        argv += ["--replay", a.paths[0]]
    else:
        h, w = a.mock_nav_shape
        _warn("--mock-nav-shape: serving this simulator's synthetic events (random, with a "
              "known ground truth), not upstream's one-event-per-frame pattern")
        argv += ["--nav", str(h), str(w), "--sig", "512", "512"]
    return argv


def main(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> int:
    p = parser(prog)
    upstream = p.parse_args(argv)
    try:
        ours = translate(upstream)
    except ValueError as e:
        p.error(str(e))
    return cli.main(ours, prog=prog)


if __name__ == "__main__":
    raise SystemExit(main())
