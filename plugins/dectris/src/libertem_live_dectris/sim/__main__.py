"""``python -m libertem_live_dectris.sim`` (also ``libertem-live sim dectris``, and
the ``libertem-live-dectris-sim`` command through :mod:`.upstream_cli`): run the
simulator until Ctrl-C / SIGTERM, or write a synthetic dump."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from typing import Sequence

import zmq

from libertem_live.driver import FaultKind

from libertem_live_dectris.sim.faults import SUPPORTED_FAULTS


PROG = "python -m libertem_live_dectris.sim"


def parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The simulator's own options (:mod:`.upstream_cli` adds upstream's forms)."""
    kinds = ", ".join(k.value for k in FaultKind if k in SUPPORTED_FAULTS)
    p = argparse.ArgumentParser(
        prog=prog or PROG,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description="DECTRIS DCU simulator (SIMPLON REST + ZeroMQ stream V1 or V2), or write a "
                    "synthetic dump file.")
    p.add_argument("--path", help="replay this dump file (stream V1 or V2, as recorded) instead "
                                  "of synthetic data")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8910, help="REST port (0 = any free)")
    p.add_argument("--zmqport", type=int, default=9999,
                   help="ZeroMQ port of stream V1 (0 = any free)")
    p.add_argument("--v2-port", type=int, default=31001,
                   help="ZeroMQ port of stream V2 (0 = any free)")
    p.add_argument("--stream", default="legacy", choices=["legacy", "v2"],
                   help="initial stream format: V1 (legacy JSON parts, on --zmqport) or V2 "
                        "(CBOR, on --v2-port); switchable later with PUT "
                        "stream/api/1.8.0/config/format (legacy / cbor)")
    p.add_argument("--channels", nargs="+", default=["threshold_1"],
                   help="channel names of stream V2 images")
    p.add_argument("--frames", type=int, default=16384, help="images per series (synthetic)")
    p.add_argument("--shape", type=int, nargs=2, default=(512, 512), metavar=("H", "W"),
                   help="frame shape (synthetic)")
    p.add_argument("--dtype", default="uint16", choices=["uint8", "uint16", "uint32"],
                   help="pixel type (synthetic)")
    p.add_argument("--compression", default="bslz4", choices=["bslz4", "lz4", "none"],
                   help="image encoding (synthetic)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic frames")
    p.add_argument("--sample", default="disk", choices=["disk", "specimen"],
                   help="synthetic frames: a disk circling the centre, or a specimen (grains, an "
                        "edge, magnetic domains) whose virtual images show structure")
    p.add_argument("--scan", type=int, nargs=2, default=None, metavar=("H", "W"),
                   help="scan shape of --sample specimen (None: a square of --frames positions)")
    p.add_argument("--series", type=int, default=34, help="series id written into a dump")
    p.add_argument("--dwelltime", type=float, default=None, help="pace images, microseconds")
    p.add_argument("--fault", default=None, metavar="KIND[@FRAME]",
                   help=f"inject a stream fault into the first series ({kinds}); FRAME: "
                        "0-based image where it happens (default: the middle)")
    p.add_argument("--write-dump", metavar="PATH",
                   help="write a synthetic dump file and exit (--stream v2: a stream V2 recording)")
    p.add_argument("-v", "--verbose", action="store_true", help="log every REST request")
    return p


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Console entry (also ``DetectorInfo.simulator``); ``prog`` names the command."""
    return run(parser(prog).parse_args(argv), prog or PROG)


def run(args: argparse.Namespace, prog: str) -> int:
    """Serve (or write a dump) as ``args`` from :func:`parser` say."""
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    from libertem_live_dectris.sim.server import DectrisSim
    from libertem_live_dectris.sim.source import write_dump
    if args.write_dump:
        t = time.monotonic()
        write_dump(args.write_dump, args.frames, tuple(args.shape), args.dtype, args.compression,
                   args.series, args.seed, stream=args.stream)
        print(f"wrote {args.write_dump} ({os.path.getsize(args.write_dump)} bytes, "
              f"{args.frames} frames) in {time.monotonic() - t:.1f} s")
        return 0
    try:
        sim = DectrisSim(
            path=args.path, port=args.port, verbose=True, host=args.host,
            zmqport=args.zmqport, v2_port=args.v2_port, stream=args.stream,
            channels=tuple(args.channels),
            shape=tuple(args.shape), dtype=args.dtype, compression=args.compression,
            frames=args.frames, seed=args.seed, dwelltime=args.dwelltime, fault=args.fault,
            sample=args.sample, scan=tuple(args.scan) if args.scan else None)
    except ValueError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    # SIGTERM (service managers) and Ctrl-C (also when started as a background
    # job, SIGINT ignored) set an event rather than raise KeyboardInterrupt,
    # which could land after start() printed the ports and before the try
    # below, and leave the simulator unstopped
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        sim.start()
    except (OSError, zmq.ZMQError) as e:
        print(f"{prog}: error: cannot listen: {e}; pick free ports with --port, --zmqport, "
              "--v2-port (0 = any free)", file=sys.stderr)
        return 1
    try:
        while not done.wait(0.5):  # a timeout keeps Ctrl-C responsive on all platforms
            pass
    finally:
        sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(prog=PROG))
