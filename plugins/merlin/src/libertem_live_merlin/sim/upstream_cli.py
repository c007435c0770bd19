"""``libertem-live-mib-sim``: upstream LiberTEM-live's Merlin simulator command,
translated onto this simulator's options (:mod:`.__main__`), so that upstream's
docs and scripts keep working.

Upstream replayed a recording named by its ``.hdr`` file; here ``PATH`` is
optional (without it the frames are synthetic) and may name the ``.hdr`` or
the ``.mib`` file, but the recording must be ONE ``.mib`` file.  What differs
from upstream is said on stderr when the simulator starts:

* without ``--wait-trigger`` upstream streamed acquisitions back to back to
  whoever connected to the data port; here too (a new acquisition is armed
  whenever none is running, and waits for a data client), so a passive-mode
  client receives data without any control command;
* ``--wait-trigger``: acquisitions start with ``CMD STARTACQUISITION`` and
  their frames with ``CMD SOFTTRIGGER`` on the control port (what the driver's
  active mode sends); upstream's separate trigger socket (``--trigger-port``)
  is not served;
* ``--manual-trigger``: as ``--wait-trigger``, plus Enter on stdin sends a
  trigger;
* ``--garbage`` (junk before the first header) is not sent: a warning;
* ``--cached``: frames are always served from memory, already encoded;
  ``MEMFD`` says so in a warning;
* ``--continuous``: one acquisition of unlimited length (NUMFRAMESTOACQUIRE
  0), cycling over the frames; with ``--max-runs N`` it ends after N passes,
  announcing that many frames;
* ``--dwelltime`` (microseconds per frame) paces the frames.
"""
from __future__ import annotations

import argparse
import glob
import os
import sys
import threading
from typing import Optional, Sequence

from . import __main__ as cli
from .server import MerlinSim

PROG = "libertem-live-mib-sim"


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Merlin simulator with the options of upstream LiberTEM-live's "
                    "libertem-live-mib-sim. Serves PATH (a recording: its .hdr or its one "
                    ".mib file) or synthetic frames. For all options of this simulator run "
                    "libertem-live sim merlin --help.")
    p.add_argument("path", nargs="?", metavar="PATH",
                   help="recording to replay: its .hdr file, or the .mib file; without it "
                        "the frames are synthetic")
    p.add_argument("--nav-shape", type=int, nargs=2, default=(0, 0), metavar=("H", "W"),
                   help="scan shape; 0 0: the recording's frame count (synthetic: 16 frames)")
    p.add_argument("--continuous", action="store_true",
                   help="one acquisition that repeats the frames until stopped (or "
                        "--max-runs passes)")
    p.add_argument("--cached", default="NONE", type=str.upper, choices=["NONE", "MEM", "MEMFD"],
                   help="accepted for upstream's scripts: frames are always served from memory")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (upstream's default was 0.0.0.0)")
    p.add_argument("--data-port", type=int, default=6342, help="0: any free port")
    p.add_argument("--control-port", type=int, default=6341, help="0: any free port")
    p.add_argument("--trigger-port", type=int, default=None,
                   help="accepted for upstream's scripts; no trigger socket is served")
    p.add_argument("--wait-trigger", action="store_true",
                   help="start on CMD STARTACQUISITION, send frames on CMD SOFTTRIGGER")
    p.add_argument("--manual-trigger", action="store_true",
                   help="like --wait-trigger, and Enter on stdin sends a trigger")
    p.add_argument("--garbage", action="store_true",
                   help="accepted for upstream's scripts (implies --wait-trigger); no junk "
                        "is sent")
    p.add_argument("--max-runs", type=int, default=-1,
                   help="with --continuous: passes over the frames, -1: unlimited")
    p.add_argument("--dwelltime", type=int, default=None, help="microseconds per frame")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def _warn(message: str) -> None:
    print(f"{PROG}: note: {message}", file=sys.stderr, flush=True)


def mib_file(path: str) -> str:
    """The one ``.mib`` file of a recording named by its ``.hdr`` (or the ``.mib`` itself)."""
    if not path.lower().endswith(".hdr"):
        return path
    stem = os.path.splitext(path)[0]
    found = sorted(glob.glob(glob.escape(stem) + "*.mib"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(f"{path}: no {os.path.basename(stem)}*.mib next to it; pass the "
                         ".mib file of the recording")
    raise ValueError(f"{path}: the recording has {len(found)} .mib files; this simulator "
                     "replays one: concatenate them in order (cat a.mib b.mib > all.mib) "
                     "and pass that")


def translate(a: argparse.Namespace) -> list[str]:
    """Upstream's options as this simulator's own command line; warns on stderr
    about what behaves differently."""
    if a.wait_trigger and a.manual_trigger:
        raise ValueError("--wait-trigger and --manual-trigger exclude each other")
    if a.garbage:
        _warn("--garbage: no junk is sent before the header (acting as --wait-trigger)")
    if a.cached == "MEMFD":
        _warn("--cached MEMFD: frames are served from ordinary memory (same data)")
    if a.trigger_port is not None:
        _warn("--trigger-port: no trigger socket is served; trigger with CMD SOFTTRIGGER "
              "on the control port")
    argv = ["--host", a.host, "--data-port", str(a.data_port),
            "--control-port", str(a.control_port)]
    if a.path is not None:
        argv += ["--mib", mib_file(a.path)]
    h, w = a.nav_shape
    if (h, w) != (0, 0):
        argv += ["--scan", str(h), str(w)]
    if a.continuous:
        if a.max_runs > 0:
            runs = a.max_runs * (h * w if h * w else frame_count(a.path))
            _warn(f"--max-runs {a.max_runs}: one acquisition of {runs} frames (announced as "
                  "such, not as 0); the simulator keeps running after it")
            argv += ["--frames", str(runs)]
        else:
            argv += ["--frames", "0"]
    elif a.max_runs != -1:
        _warn("--max-runs only has an effect with --continuous; ignored")
    if a.wait_trigger or a.manual_trigger or a.garbage:
        argv += ["--trigger", "5"]
    if a.dwelltime:
        argv += ["--frame-rate", repr(1e6 / a.dwelltime)]
    if a.verbose:
        argv.append("--verbose")
    return argv


def frame_count(path: Optional[str]) -> int:
    """Frames of one pass: the recording's, or the synthetic default (16)."""
    if path is None:
        return 16
    from .source import MibSource
    return MibSource(mib_file(path)).num_frames


def free_run(sim: MerlinSim, done: threading.Event) -> None:
    """Arm a new acquisition whenever none is running (upstream streamed to
    every data client without control commands)."""
    while not done.is_set():
        if sim.wait_idle(0.1) and not done.is_set():
            sim.control_cmd("STARTACQUISITION")
            done.wait(0.05)


def manual_trigger(sim: MerlinSim, done: threading.Event) -> None:
    """Enter on stdin: one SOFTTRIGGER."""
    print("press Enter to trigger an armed acquisition", file=sys.stderr, flush=True)
    for _ in sys.stdin:
        if done.is_set():
            return
        sim.control_cmd("SOFTTRIGGER")
        print("triggered", file=sys.stderr, flush=True)


def main(argv: Optional[Sequence[str]] = None, prog: str = PROG) -> int:
    p = parser(prog)
    upstream = p.parse_args(argv)
    try:
        args = cli.parser(prog).parse_args(translate(upstream))
        sim = cli.build(args)
    except (ValueError, OSError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    if upstream.manual_trigger:
        companions: list[cli.Companion] = [manual_trigger]
    elif upstream.wait_trigger or upstream.garbage:
        companions = []
    else:
        _warn("acquisitions are armed back to back and sent to whoever connects to the data "
              "port (use --wait-trigger for the driver's active mode)")
        companions = [free_run]
    return cli.serve(sim, companions)


if __name__ == "__main__":
    raise SystemExit(main())
