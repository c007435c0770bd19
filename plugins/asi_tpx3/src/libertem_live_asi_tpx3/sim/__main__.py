"""``python -m libertem_live_asi_tpx3.sim`` / ``libertem-live-tpx3-sim`` /
``libertem-live sim asi_tpx3``: serve synthetic or replayed TPX3 acquisitions
until Ctrl-C, or write a capture file.  :mod:`.upstream_cli` gives upstream's
``libertem-live-asi-tpx-sim`` options."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from typing import Optional, Sequence

from libertem_live.driver import parse_fault

from ..headers import DType, FormatType
from .faults import SUPPORTED_FAULTS
from .server import DEFAULT_PORT, Tpx3Sim, write_capture
from .source import SynthConfig


def _dtype_arg(s: str) -> DType:
    return DType[s.upper()]


def parser(prog: Optional[str] = None) -> argparse.ArgumentParser:
    kinds = ", ".join(sorted(k.value for k in SUPPORTED_FAULTS))
    p = argparse.ArgumentParser(
        prog=prog, description="ASI TPX3 sparse CSR stream simulator",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: any free)")
    p.add_argument("--nav", type=int, nargs=2, default=(256, 256), metavar=("H", "W"),
                   help="scan shape")
    p.add_argument("--sig", type=int, nargs=2, default=(512, 512), metavar=("H", "W"),
                   help="frame shape")
    p.add_argument("--events", type=float, default=100.0, help="mean events per frame")
    p.add_argument("--tot", action="store_true", help="ToT values instead of counts")
    p.add_argument("--frames-per-chunk", type=int, default=None,
                   help="scan positions per ArrayChunk; None: one scan row")
    p.add_argument("--value-dtypes", type=_dtype_arg, nargs="+", default=["u32"],
                   help="cycled over chunks: u8 u16 u32 u64")
    p.add_argument("--indptr-dtype", type=_dtype_arg, default="u32", help="u8 .. u64")
    p.add_argument("--indices-dtype", type=_dtype_arg, default="u32", help="u8 .. u64")
    p.add_argument("--align", type=int, default=1, help="alignment of the payload regions")
    p.add_argument("--extra-pad", type=int, default=0, help="junk bytes before each region")
    p.add_argument("--seed", type=int, default=0, help="random seed of the synthetic data")
    p.add_argument("--metadata", default=None, help="JSON sent after ScanStart")
    p.add_argument("--scans", type=int, default=1, help="scans per acquisition")
    p.add_argument("--acquisitions", type=int, default=0,
                   help="per connection; 0 = forever")
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between acquisitions")
    p.add_argument("--replay", default=None, help="capture file to replay instead of synthetic data")
    p.add_argument("--write-capture", default=None, metavar="PATH",
                   help="write a capture file instead of serving")
    p.add_argument("--fault", default=None, metavar="KIND[@FRAME]",
                   help=f"break the first acquisition: one of {kinds}; FRAME is the scan "
                        "position where it happens, the middle if left out")
    return p


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Console entry: serve until Ctrl-C, or write a capture file."""
    args = parser(prog).parse_args(argv)
    fault = None
    if args.fault is not None:
        try:
            fault = parse_fault(args.fault)
        except ValueError as e:
            print(f"error: --fault: {e}", file=sys.stderr)
            return 2
    synth_kwargs = {}
    if args.replay is None:
        synth_kwargs = dict(config=SynthConfig(
            nav_shape=tuple(args.nav), sig_shape=tuple(args.sig),
            events_per_frame=args.events,
            format_type=FormatType.TOT if args.tot else FormatType.CSR,
            frames_per_chunk=args.frames_per_chunk,
            value_dtypes=tuple(_dtype_arg(d) if isinstance(d, str) else d
                               for d in args.value_dtypes),
            indptr_dtype=args.indptr_dtype, indices_dtype=args.indices_dtype,
            align=args.align, extra_pad=args.extra_pad, seed=args.seed))
    if args.write_capture:
        synth = write_capture(args.write_capture, scans_per_acquisition=args.scans,
                              acquisitions=max(1, args.acquisitions),
                              metadata=args.metadata, **synth_kwargs)
        print(json.dumps({"path": args.write_capture,
                          "bytes": os.path.getsize(args.write_capture),
                          "frames": synth.config.nframes,
                          "nnz": synth.expected_nnz_total()}))
        return 0
    try:
        sim = Tpx3Sim(args.host, args.port, capture=args.replay,
                      scans_per_acquisition=args.scans,
                      acquisitions_per_connection=args.acquisitions or None,
                      acquisition_interval=args.interval, metadata=args.metadata,
                      fault=fault, **synth_kwargs)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # Ctrl-C stops it, also when it was started as a background job (SIGINT
    # ignored), and SIGTERM too.  Handlers that set an event, not
    # KeyboardInterrupt: a Ctrl-C that lands before the wait (a client may
    # read the port and be served before this thread runs again) must stop
    # it the same way
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with sim:
        print(f"TPX3 simulator listening on {args.host}:{sim.port}", flush=True)
        while not done.wait(0.5):
            pass
        print("stopping", file=sys.stderr)
    return 0


def console() -> int:
    """The ``libertem-live-tpx3-sim`` console script."""
    return main(prog="libertem-live-tpx3-sim")


if __name__ == "__main__":
    sys.exit(main(prog="python -m libertem_live_asi_tpx3.sim"))
