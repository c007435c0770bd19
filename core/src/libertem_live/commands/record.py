"""``libertem-live record NAME``: acquire from a detector (or its simulator) into a
``.npy`` file with :class:`~libertem_live.udf.record.RecordUDF`, or, for an
``.h5`` / ``.hdf5`` name, into an HDF5 file with ``LiveContext.record`` (the
frames stored as they came, still compressed, at the detector's rate).

Both write atomically (a complete file, or ``<stem>.incomplete.npy`` /
``<stem>.incomplete.h5`` after a failure) and describe the recording (a JSON
sidecar, or the HDF5 file's attributes); this command adds the connection,
the mode, a progress bar, and the ledger at the end, so that a recording made
from a shell says how many frames arrived.
"""
from __future__ import annotations

import argparse
import ast
import os
import sys
from typing import Any


class UsageError(ValueError):
    """A command-line value that cannot be used; exit status 2."""


def parse_params(items: list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; each VALUE a Python literal where it parses as one
    (``8910``, ``(2, 2)``, ``None``), else the plain string (a host name)."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise UsageError(
                f"--param {item!r}: expected KEY=VALUE with KEY a parameter name, e.g. "
                "--param api_host=127.0.0.1 (libertem-live detectors NAME lists them)")
        if key in params:
            raise UsageError(f"--param {key} given twice")
        try:
            params[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            params[key] = text
    return params


def check_names(name: str, params: dict[str, Any]) -> None:
    """Refuse parameter names the driver's ``open`` does not take, before
    LiberTEM starts (seconds) and with the names it does take."""
    import inspect

    from libertem_live.parameters import describe, signature_source
    from libertem_live.registry import default_registry

    info = default_registry().get(name)
    try:
        sig = inspect.signature(signature_source(info))
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return
    known = [p.name for p in describe(info)]
    unknown = [k for k in params if k not in known]
    if unknown:
        raise UsageError(
            f"the {name} driver takes no parameter {', '.join(map(repr, unknown))}; it takes "
            f"{', '.join(known)} (libertem-live detectors {name} says what each means)")


def _acquire(args: argparse.Namespace, params: dict[str, Any]) -> int:
    from libertem_live.api import LiveContext
    from libertem_live.udf.record import RecordUDF

    nav_shape = tuple(args.nav_shape) if args.nav_shape else None
    ctx = LiveContext(executor=args.executor)
    try:
        builder = ctx.make_connection(args.name)
        try:
            conn = builder.open(**params)
        except TypeError as e:
            raise UsageError(
                f"{args.name} connection: {e}; libertem-live detectors {args.name} "
                "lists the parameters") from e
        with conn:
            if args.passive:
                print(f"waiting up to {args.timeout:g} s for an acquisition started on the "
                      "detector...", file=sys.stderr, flush=True)
                pending = conn.wait_for_acquisition(args.timeout)
                if pending is None:
                    print(f"libertem-live record: no acquisition started within "
                          f"{args.timeout:g} s on {args.name}; start it on the detector and "
                          "run again, or wait longer (--timeout)", file=sys.stderr)
                    return 1
                aq = ctx.make_acquisition(conn=conn, nav_shape=nav_shape, pending_aq=pending)
            else:
                aq = ctx.make_acquisition(conn=conn, nav_shape=nav_shape)
            try:
                if is_hdf5(args.out):
                    summary = ctx.record(aq, args.out, overwrite=args.overwrite,
                                         progress=not args.no_progress)
                else:
                    ctx.run_udf(dataset=aq, udf=RecordUDF(args.out, overwrite=args.overwrite),
                                progress=not args.no_progress)
            finally:
                print(aq.ledger.describe(), flush=True)
    finally:
        ctx.close()
    if is_hdf5(args.out):
        print(f"wrote {args.out} ({tuple(aq.shape)}, {summary.stored_as}, "
              f"{summary.nbytes / 2**20:.1f} MiB, {summary.frames_per_s:.0f} frames/s)")
    else:
        print(f"wrote {args.out} ({tuple(aq.shape)}) and its sidecar "
              f"{os.path.splitext(args.out)[0]}.json")
    return 0


def is_hdf5(path: str) -> bool:
    """Whether ``--out`` names an HDF5 recording (else a ``.npy`` one)."""
    return os.path.splitext(path)[1].lower() in (".h5", ".hdf5")


def run(args: argparse.Namespace) -> int:
    from libertem_live.errors import LiveError
    try:
        params = parse_params(args.param)
        if os.path.exists(args.out) and not args.overwrite:
            raise UsageError(f"{args.out} exists; pass --overwrite or choose another --out")
        check_names(args.name, params)
        return _acquire(args, params)
    except UsageError as e:
        print(f"libertem-live record: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        stem, ext = os.path.splitext(args.out)
        partial = stem + (f".incomplete{ext}" if is_hdf5(args.out) else ".incomplete.npy")
        kept = f"; what arrived is in {partial}" if os.path.exists(partial) else ""
        print(f"libertem-live record: interrupted{kept}", file=sys.stderr)
        return 130
    except (LiveError, OSError, ValueError) as e:
        if args.debug:
            raise
        print(f"libertem-live record: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
