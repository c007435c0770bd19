"""The ``libertem-live`` console command: argparse wiring only; each
subcommand's work is in :mod:`libertem_live.commands`."""
from __future__ import annotations

import argparse
import sys

from libertem_live import __version__

_Defaults = argparse.ArgumentDefaultsHelpFormatter


def _detectors(args: argparse.Namespace) -> int:
    from libertem_live.commands import detectors
    return detectors.run(args)


def _sim(args: argparse.Namespace) -> int:
    from libertem_live.commands import sim
    return sim.run(args)


def _record(args: argparse.Namespace) -> int:
    from libertem_live.commands import record
    return record.run(args)


def _new_driver(args: argparse.Namespace) -> int:
    from libertem_live.commands import new_driver
    return new_driver.run(args)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="libertem-live", description="live processing of 4D-STEM detector streams",
        formatter_class=_Defaults)
    parser.add_argument("--version", action="version", version=f"libertem-live-core {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "detectors", help="list installed detector drivers, or show one driver's parameters",
        description="Without NAME: list installed detector drivers and their versions. "
                    "With NAME: that driver's connection parameters, their defaults and "
                    "meaning.", formatter_class=_Defaults)
    p.add_argument("name", nargs="?", metavar="NAME", help="a driver's name, e.g. memory")
    p.set_defaults(func=_detectors)

    s = sub.add_parser(
        "sim", help="run the simulator of an installed driver",
        description="Without NAME: list the installed drivers that ship a simulator. With "
                    "NAME: run that simulator; the arguments after NAME are its own "
                    "(libertem-live sim NAME --help shows them with their defaults).",
        formatter_class=_Defaults)
    s.add_argument("name", nargs="?", metavar="NAME", help="a driver's name, e.g. dectris")
    s.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                   help="arguments of the simulator")
    s.set_defaults(func=_sim)

    r = sub.add_parser(
        "record", help="acquire from a detector into a .npy or .h5 file",
        description="Acquire one scan from a detector or simulator into a .npy file (decoded, "
                    "with a JSON sidecar) or an .h5/.hdf5 file (the frames as they came, still "
                    "compressed, at the detector's rate; the description in its attributes), "
                    "written atomically (an incomplete run leaves STEM.incomplete.npy or "
                    "STEM.incomplete.h5), and print the frame ledger. Active mode arms the "
                    "detector; --passive waits for an acquisition started elsewhere.",
        formatter_class=_Defaults)
    r.add_argument("name", metavar="NAME", help="a driver's name, e.g. dectris")
    r.add_argument("--out", required=True, metavar="FILE",
                   help="the file to write: .npy, or .h5/.hdf5 for an HDF5 recording")
    r.add_argument("--nav-shape", type=int, nargs="+", metavar="N",
                   help="scan shape, e.g. 128 128 (passive mode: may come from the detector)")
    r.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a connection parameter, repeatable; VALUE is read as a Python literal "
                        "where it is one (libertem-live detectors NAME lists them)")
    r.add_argument("--passive", action="store_true",
                   help="wait for an acquisition started on the detector instead of arming it")
    r.add_argument("--timeout", type=float, default=60.0,
                   help="passive mode: seconds to wait for the acquisition to start")
    r.add_argument("--overwrite", action="store_true", help="replace an existing FILE")
    r.add_argument("--executor", default="pipelined", choices=["pipelined", "inline"],
                   help="LiberTEM executor: worker processes, or all in this process")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    r.add_argument("--debug", action="store_true", help="show the traceback of errors")
    r.set_defaults(func=_record)

    n = sub.add_parser(
        "new-driver", help="write a new driver distribution (driver, simulator, conformance test)",
        description="Write libertem-live-NAME: a complete driver for a small TCP detector, its "
                    "simulator and its conformance test, which pass the kit as generated. "
                    "Replace the wire format with your detector's.",
        formatter_class=_Defaults)
    n.add_argument("name", metavar="NAME", help="the driver's name, e.g. mycam")
    n.add_argument("--dest", default=".", help="folder to write libertem-live-NAME into")
    n.set_defaults(func=_new_driver)

    from libertem_live.commands import plugins
    found, left_out = plugins.installed(taken=set(sub.choices))
    for name, (info, dist) in sorted(found.items()):
        c = sub.add_parser(name, help=f"{info.help} [{dist}]".lstrip(), add_help=False)
        c.add_argument("args", nargs=argparse.REMAINDER, help="the command's own arguments")
    if left_out:
        parser.epilog = "plugin commands left out: " + "; ".join(left_out)
    parser.set_defaults(plugin_commands=found)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    found = p.get_default("plugin_commands")
    if argv and argv[0] in found:  # its own parser reads the rest, --help included
        from libertem_live.commands import plugins
        info, dist = found[argv[0]]
        return plugins.run(argv[0], info, dist, argv[1:])
    args = p.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
