"""``python -m libertem_live_merlin.sim``: a simulated Merlin until Ctrl-C / SIGTERM.

Prints one JSON line with the ports it listens on (useful with port 0).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from typing import Optional

from .faults import SUPPORTED_FAULTS
from .server import MerlinSim


def _parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    script = os.path.basename(sys.argv[0])
    p = argparse.ArgumentParser(
        prog="python -m libertem_live_merlin.sim" if script in ("__main__.py", "-c", "")
        else script,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="Simulated Quantum Detectors Merlin (control + data TCP ports). "
                    "Runs until Ctrl-C / SIGTERM.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--control-port", type=int, default=6341, help="0: any free port")
    p.add_argument("--data-port", type=int, default=6342, help="0: any free port")
    p.add_argument("--frames", type=int, default=None,
                   help="NUMFRAMESTOACQUIRE (None: ScanY*ScanX, or the MIB file's count)")
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
    return p.parse_args(argv)


def main(argv: Optional[list[str]] = None) -> None:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO)
    sim = MerlinSim(args.host, args.control_port, args.data_port, frames=args.frames,
                    scan_shape=tuple(args.scan) if args.scan else None,
                    counter_depth=args.depth, raw=args.raw, layout=args.layout,
                    trigger=args.trigger, pool_size=args.pool_size, seed=args.seed,
                    mib_path=args.mib, frame_rate=args.frame_rate, fault=args.fault)
    done = threading.Event()

    def _terminate(signum: int, frame: object) -> None:
        done.set()

    # handlers instead of KeyboardInterrupt: a signal can never land between
    # start() and the try block and skip stop()
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, _terminate)
    sim.start()
    try:
        print(json.dumps({"control_port": sim.control_port, "data_port": sim.data_port}),
              flush=True)
        done.wait()
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
