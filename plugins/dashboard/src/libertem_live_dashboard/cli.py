"""``libertem-live-dashboard``: serve the dashboard and run acquisitions for it.

    libertem-live-dashboard --detector dectris --api-host 10.0.0.5 --scan continuous
    libertem-live-dashboard --detector memory            # demo, no detector needed
"""
from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

CONNECTION_FLAGS = ("api_host", "api_port", "data_host", "data_port", "host", "port")


def _value(text: str) -> Any:
    """A parameter value from the command line: int, float, bool or the text."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def _pairs(items: list[str], flag: str) -> dict[str, Any]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"{flag} needs KEY=VALUE, got {item!r}")
        out[key] = _value(value)
    return out


def _shape(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        raise ValueError(f"a shape is like 128,128, got {text!r}")


def parser(prog: str = "libertem-live-dashboard") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="A live dashboard in the browser: sum frame, virtual bright/dark field "
                    "with draggable regions, centre of mass, the frame under the pointer, "
                    "frames/s and the ledger, while the scan runs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--detector", required=True,
                   help="driver name (see 'libertem-live detectors'); 'memory' runs a demo")
    p.add_argument("--scan", choices=["single", "continuous"], default="single",
                   help="one acquisition, or one after another with a history slider")
    p.add_argument("--mode", choices=["passive", "active"], default=None,
                   help="passive: wait for acquisitions armed elsewhere; active: arm them "
                        "(default: active for memory, passive otherwise)")
    p.add_argument("--nav-shape", default=None, help="scan shape, e.g. 128,128")
    p.add_argument("--bind", default="127.0.0.1",
                   help="address to serve on; any other than loopback needs the token")
    p.add_argument("--serve-port", type=int, default=8050, help="port to serve on")
    p.add_argument("--token", default=None,
                   help="token for the page (generated and printed for non-loopback --bind)")
    p.add_argument("--history", type=int, default=10, help="scans kept for the slider")
    p.add_argument("--max-fps", type=float, default=60.0, help="updates per second per page")
    p.add_argument("--sum-fps", type=float, default=2.0,
                   help="while a scan runs, the frame-sized sum image is updated at most this "
                        "often (it costs most of an update, on the server and in the browser)")
    p.add_argument("--behind-gap", type=float, default=2.0,
                   help="while the acquisition is behind the detector, each page gets at most "
                        "one update every this many seconds, leaving the CPU to the acquisition")
    p.add_argument("--executor", choices=["pipelined", "inline"], default="pipelined")
    p.add_argument("--frames-per-partition", type=int, default=None)
    for flag in CONNECTION_FLAGS:
        p.add_argument("--" + flag.replace("_", "-"), dest=flag, default=None,
                       help=f"connection parameter {flag} (passed to the driver's open)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="any other connection parameter")
    p.add_argument("--controller-param", action="append", default=[], metavar="KEY=VALUE",
                   help="active mode: parameter of conn.get_active_controller")
    p.add_argument("--demo-nav", default="64,64", help="memory demo: scan shape")
    p.add_argument("--demo-sig", default="128,128", help="memory demo: frame shape")
    return p


def main(argv: list[str] | None = None, prog: str = "libertem-live-dashboard") -> int:
    """The ``libertem-live-dashboard`` program, also ``libertem-live dashboard``
    (the plugin's command hook calls it with that ``prog``)."""
    p = parser(prog)
    args = p.parse_args(argv)
    try:
        params = {k: _value(v) for k in CONNECTION_FLAGS if (v := getattr(args, k)) is not None}
        params.update(_pairs(args.param, "--param"))
        controller_params = _pairs(args.controller_param, "--controller-param")
        nav_shape = _shape(args.nav_shape)
        demo_nav, demo_sig = _shape(args.demo_nav), _shape(args.demo_sig)
    except ValueError as e:
        p.error(str(e))
    from libertem_live.api import LiveContext

    from libertem_live_dashboard.dashboard import Dashboard
    from libertem_live_dashboard.runner import Runner

    mode = args.mode or ("active" if args.detector == "memory" else "passive")
    if args.detector == "memory":
        from libertem_live_dashboard.demo import demo_data
        params.setdefault("data", demo_data(demo_nav, demo_sig))  # type: ignore[arg-type]
        nav_shape = nav_shape or demo_nav
    dash = Dashboard(host=args.bind, port=args.serve_port, token=args.token,
                     history=args.history, max_fps=args.max_fps, sum_fps=args.sum_fps,
                     behind_gap_s=args.behind_gap).start()
    ctx = LiveContext(executor=args.executor)
    try:
        conn = ctx.make_connection(args.detector).open(**params)
    except Exception as e:
        dash.stop()
        ctx.close()
        print(f"{prog}: cannot connect to {args.detector} with "
              f"{sorted(params)}: {e}", file=sys.stderr)
        return 1
    runner = Runner(ctx, conn, dash.state, mode=mode, nav_shape=nav_shape,
                    continuous=args.scan == "continuous",
                    controller_params=controller_params,
                    frames_per_partition=args.frames_per_partition)
    worker = threading.Thread(target=runner.run, name="dashboard-runner", daemon=True)
    try:
        worker.start()
        worker.join()
        if args.scan == "single":
            print("acquisition done; the page stays up until Ctrl-C", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()
        worker.join(10)
        conn.close()
        ctx.close()
        dash.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
