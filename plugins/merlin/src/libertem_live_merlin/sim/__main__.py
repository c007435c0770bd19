"""``python -m libertem_live_merlin.sim`` (also ``libertem-live sim merlin`` and
``libertem-live-merlin-sim``): a simulated Merlin until Ctrl-C / SIGTERM.

Prints one JSON line with the ports it listens on (useful with port 0).
:mod:`.upstream_cli` (``libertem-live-mib-sim``) translates upstream's options
onto these and serves through :func:`serve`.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from typing import Callable, Optional, Sequence

from .faults import SUPPORTED_FAULTS
from .server import MerlinSim

PROG = "python -m libertem_live_merlin.sim"

#: runs next to the simulator until the event is set (e.g. a trigger source)
Companion = Callable[[MerlinSim, threading.Event], None]


def parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog or PROG,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Simulated Quantum Detectors Merlin (control + data TCP ports). "
                    "Runs until Ctrl-C / SIGTERM.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--control-port", type=int, default=6341, help="0: any free port")
    p.add_argument("--data-port", type=int, default=6342, help="0: any free port")
    p.add_argument("--frames", type=int, default=None,
                   help="NUMFRAMESTOACQUIRE, 0: continuous (None: ScanY*ScanX, or the MIB "
                        "file's count)")
    p.add_argument("--scan", type=int, nargs=2, metavar=("SCANY", "SCANX"), default=None,
                   help="scan shape announced in the acquisition header")
    p.add_argument("--depth", type=int, default=12, choices=[1, 6, 12, 24],
                   help="COUNTERDEPTH")
    p.add_argument("--raw", action="store_true", help="FILEFORMAT 2 (R64) instead of 0")
    p.add_argument("--layout", default="1x1", choices=["1x1", "2x2", "2x2G"])
    p.add_argument("--trigger", type=int, default=0, help="TRIGGERSTART: 0 internal, 5 soft")
    p.add_argument("--pool-size", type=int, default=32, help="distinct synthetic frames")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic frames")
    p.add_argument("--mib", default=None, help="serve this .mib file instead of synthetic frames")
    p.add_argument("--frame-rate", type=float, default=None,
                   help="pace to this many frames/s (None: as fast as possible)")
    p.add_argument("--fault", default=None, metavar="KIND[@FRAME]",
                   help="a stream fault for the first acquisition; KIND one of "
                        + ", ".join(sorted(k.value for k in SUPPORTED_FAULTS)))
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def build(args: argparse.Namespace) -> MerlinSim:
    """The simulator ``args`` (from :func:`parser`) describe, not yet started."""
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    return MerlinSim(args.host, args.control_port, args.data_port, frames=args.frames,
                     scan_shape=tuple(args.scan) if args.scan else None,
                     counter_depth=args.depth, raw=args.raw, layout=args.layout,
                     trigger=args.trigger, pool_size=args.pool_size, seed=args.seed,
                     mib_path=args.mib, frame_rate=args.frame_rate, fault=args.fault)


def serve(sim: MerlinSim, companions: Sequence[Companion] = ()) -> int:
    """Start ``sim``, print its ports, serve until SIGINT / SIGTERM, stop."""
    done = threading.Event()

    def _terminate(signum: int, frame: object) -> None:
        done.set()

    # handlers instead of KeyboardInterrupt: a signal can never land between
    # start() and the try block and skip stop()
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    sim.start()
    threads = [threading.Thread(target=c, args=(sim, done), daemon=True) for c in companions]
    try:
        print(json.dumps({"control_port": sim.control_port, "data_port": sim.data_port}),
              flush=True)
        for t in threads:
            t.start()
        done.wait()
    finally:
        done.set()
        for t in threads:
            if t.is_alive():
                t.join(1.0)
        sim.stop()
    return 0


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Console entry (also ``DetectorInfo.simulator``); ``prog`` names the command."""
    args = parser(prog).parse_args(argv)
    try:
        sim = build(args)
    except (ValueError, OSError) as e:
        print(f"{prog or PROG}: error: {e}", file=sys.stderr)
        return 2
    return serve(sim)


def console() -> int:
    """The ``libertem-live-merlin-sim`` console script."""
    return main(prog="libertem-live-merlin-sim")


if __name__ == "__main__":
    sys.exit(main())
