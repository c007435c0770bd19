"""What a dashboard costs an acquisition: frames/s with 0, 1 and 3 real
headless Chromium pages open, latency from a frame's arrival to its pixel on
a page, and bytes per update; 512 x 512 DECTRIS frames from the simulator
(u16, bslz4), default executor (a worker process per core).

    python plugins/dashboard/bench/bench_dashboard.py --nav 64 --repeats 5 \\
        [--paced-repeats 3] [--paced-fraction 0.75] [--max-fps 60] [--sum-fps 2] [--nice 10]
        [--behind-gap 2] [--frames-per-partition 16] [--json out.json]

Frames/s: the three conditions in one run, alternating (0, 1, 3 pages, the
order rotated each repeat), ``--scans`` scans each time, the median over all
scans of a condition; this machine's other processes move the rate by more
than the effect measured, alternation spreads that over the conditions.
Three browsers are started once; a page "not open" shows about:blank.  The
simulator sends as fast as it can (no dwell time), so the acquisition is
CPU-bound and every CPU second the server or a browser takes is missing
from it: where that CPU goes is printed per condition (cores: CPU seconds
per wall second) for the acquisition's process (and within it the
dashboard's server threads), the worker processes and Chromium, and as CPU
seconds per scan: their sum per scan predicts the ratio of frames/s on a
machine the acquisition alone keeps busy, whatever else runs here.

Paced (``--paced-repeats``): the same alternation with the simulator paced
like a detector at ``--paced-fraction`` (0.75) of the median rate measured
without a page in the same run: whether the acquisition still keeps the
detector's rate with pages open (scan time against the detector's, frames
missing, time the receiver was blocked on a full ring).  Besides the
CPU-per-scan prediction, a prediction from cores: pages and server cost per
wall second (they pace themselves), so on ``cpus`` cores that the
acquisition alone keeps busy, k pages leave it ``cpus`` minus their cores.
The 1-minute load average (other processes) is recorded for each block.

Latency: the simulator paced (``--latency-dwell`` us per frame; by default
60 % of the rate measured without a page: a detector the acquisition keeps
up with, else the latency is the backlog), one page.
Arrival: when the receiver's ledger counted the frame (sampled every
0.5 ms); on the page: when the page acknowledged the first update whose
scan images contain the frame (it acknowledges after drawing, in
requestAnimationFrame).  A frame is in a partial result only once its
partition is processed and merged, so the latency includes the partition
(``--frames-per-partition``, default: the core's choice).

``--nice N`` starts Chromium under ``nice -n N`` (all its processes), as a
user at a microscope may run the browser beside the acquisition.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import CHROMEDRIVER, CHROMIUM, make_driver  # noqa: E402

from libertem_live.api import LiveContext  # noqa: E402
from libertem_live_dashboard import Dashboard  # noqa: E402
from libertem_live_dashboard.runner import Runner  # noqa: E402
from libertem_live_dashboard.server import BEHIND_GAP_S, SUM_FPS  # noqa: E402
from libertem_live_dectris.sim import DectrisSim  # noqa: E402

CONDITIONS = (0, 1, 3)


def wait_for(cond, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def niced_binary(nice: int, tmp: Path) -> str | None:
    if not nice:
        return None
    wrapper = tmp / "chromium-niced"
    wrapper.write_text(f'#!/bin/sh\nexec nice -n {int(nice)} "{CHROMIUM}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper)


class CpuClock:
    """CPU seconds of the groups of processes and threads that share the machine."""

    def __init__(self, drivers: list[Any]) -> None:
        self.me = psutil.Process()
        self.drivers = drivers

    def _server_threads(self) -> set[int]:
        return {t.native_id for t in threading.enumerate()
                if t.name == "libertem-live-dashboard" or t.name.startswith("asyncio_")}

    def read(self) -> dict[str, dict[int, float]]:
        def cpu(p: psutil.Process) -> float:
            try:
                t = p.cpu_times()
                return t.user + t.system
            except psutil.Error:
                return 0.0
        browsers: dict[int, float] = {}
        for d in self.drivers:
            try:
                root = psutil.Process(d.service.process.pid)
                for p in [root, *root.children(recursive=True)]:
                    browsers[p.pid] = cpu(p)
            except psutil.Error:
                pass
        workers = {p.pid: cpu(p) for p in self.me.children(recursive=True)
                   if p.pid not in browsers}
        server = self._server_threads()
        threads = {t.id: t.user_time + t.system_time for t in self.me.threads()}
        return {"acquisition process": {0: cpu(self.me)},
                "  of it dashboard server": {k: v for k, v in threads.items() if k in server},
                "worker processes": workers, "chromium": browsers}

    @staticmethod
    def seconds(before: dict[str, dict[int, float]],
                after: dict[str, dict[int, float]]) -> dict[str, float]:
        return {group: sum(v - before[group].get(k, 0.0) for k, v in now.items())
                for group, now in after.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--nav", type=int, default=64, help="scan of NAV x NAV frames")
    ap.add_argument("--sig", type=int, default=512, help="frames of SIG x SIG pixels")
    ap.add_argument("--repeats", type=int, default=5, help="rounds over the three conditions")
    ap.add_argument("--scans", type=int, default=2, help="scans per condition and round")
    ap.add_argument("--max-fps", type=float, default=60.0, help="the dashboard's update cap")
    ap.add_argument("--sum-fps", type=float, default=SUM_FPS,
                    help="the dashboard's update cap of the frame-sized sum image")
    ap.add_argument("--behind-gap", type=float, default=BEHIND_GAP_S,
                    help="the dashboard's update gap per page while the acquisition is behind "
                         "the detector (0: no stepping back)")
    ap.add_argument("--nice", type=int, default=0, help="run Chromium under nice -n NICE")
    ap.add_argument("--latency-dwell", type=float, default=None,
                    help="simulator dwell time (us per frame) for the latency runs; default: "
                         "frames at 60 %% of the median rate measured without a page")
    ap.add_argument("--latency-scans", type=int, default=2, help="0: no latency runs")
    ap.add_argument("--paced-repeats", type=int, default=3,
                    help="rounds over the three conditions with the simulator paced like a "
                         "detector (0: none)")
    ap.add_argument("--paced-fraction", type=float, default=0.75,
                    help="the paced detector's rate as a fraction of the median rate "
                         "measured without a page in the same run")
    ap.add_argument("--paced-fps", type=float, default=None,
                    help="the paced detector's rate in frames/s (instead of --paced-fraction), "
                         "to compare runs at the same rate")
    ap.add_argument("--frames-per-partition", type=int, default=None)
    ap.add_argument("--json", default=None, help="also write the report here")
    args = ap.parse_args()
    if CHROMIUM is None or CHROMEDRIVER is None:
        raise SystemExit("needs chromium and chromedriver (apt-get install chromium "
                         "chromium-driver, or set CHROMIUM and CHROMEDRIVER)")
    n = args.nav * args.nav
    sim = DectrisSim(frames=n, shape=(args.sig, args.sig), dtype="uint16", compression="bslz4",
                     pool_size=64).start()
    sim.wait_for_listen()
    ctx = LiveContext()
    dash = Dashboard(port=0, history=4, quiet=True, max_fps=args.max_fps,
                     sum_fps=args.sum_fps, behind_gap_s=args.behind_gap).start()
    conn = ctx.make_connection("dectris").open(api_host="127.0.0.1", api_port=sim.port,
                                               data_host="127.0.0.1", data_port=sim.zmqport)
    runner = Runner(ctx, conn, dash.state, mode="active", nav_shape=(args.nav, args.nav),
                    frames_per_partition=args.frames_per_partition,
                    controller_params={"trigger_mode": "exte", "frame_time": 1e-3})
    tmp = Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    drivers: list[Any] = []
    try:
        binary = niced_binary(args.nice, tmp)
        for _ in range(max(CONDITIONS)):
            d = make_driver(binary=binary)
            d.get("about:blank")
            drivers.append(d)
        report = run(args, n, sim, dash, runner, drivers)
    finally:
        for d in drivers:
            d.quit()
        conn.close()
        dash.stop()
        ctx.close()
        sim.stop()
    report["command"] = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


def show(drivers: list[Any], dash: Dashboard, k: int) -> None:
    """Pages 0..k-1 on the dashboard, the others on about:blank; returns when
    the server has exactly the open pages and each has drawn."""
    for i, d in enumerate(drivers):
        want = i < k
        has = d.current_url.startswith("http")
        if want and not has:
            d.get(dash.url)
        elif has and not want:
            d.get("about:blank")
    wait_for(lambda: len(dash.server.clients) == k, 60, f"{k} pages connected")
    for d in drivers[:k]:
        wait_for(lambda: d.execute_script("return window.__dash && window.__dash.drawn") > 0,
                 60, "a page to draw")


def alternate(args: Any, sim: Any, dash: Dashboard, runner: Runner, drivers: list[Any],
              clock: CpuClock, repeats: int, dwell_us: float | None, n: int
              ) -> dict[str, Any]:
    """The three conditions alternating for ``repeats`` rounds, ``args.scans``
    scans each; ``dwell_us`` paces the simulator (None: as fast as it can)."""
    def scan() -> dict[str, float]:
        failed = len(runner.errors)
        runner.run_once()
        if len(runner.errors) > failed:
            raise SystemExit(f"a scan failed: {runner.errors[-1]}")
        snap = dash.state.snapshots()[-1]
        if not snap.status.startswith("complete"):
            raise SystemExit(f"a scan did not complete: {snap.status}, {snap.ledger_dict()}")
        led = snap.ledger
        return {"fps": float(snap.fps), "elapsed_s": float(snap.elapsed_s),
                "missing": int(led.missing), "blocked_s": float(led.blocked_s)}

    sim.dwelltime = dwell_us
    try:
        scans: dict[int, list[dict[str, float]]] = {k: [] for k in CONDITIONS}
        cores: dict[int, list[dict[str, float]]] = {k: [] for k in CONDITIONS}
        per_scan: dict[int, list[dict[str, float]]] = {k: [] for k in CONDITIONS}
        sent: dict[int, list[tuple[int, int]]] = {k: [] for k in CONDITIONS}
        wall = {k: 0.0 for k in CONDITIONS}
        load: list[float] = []
        for r in range(repeats):
            order = CONDITIONS[r % 3:] + CONDITIONS[:r % 3]
            for k in order:
                show(drivers, dash, k)
                start = {id(c): (c.bytes_sent, c.updates_sent) for c in dash.server.clients}
                c0, t0 = clock.read(), time.monotonic()
                for _ in range(args.scans):
                    scans[k].append(scan())
                dt = time.monotonic() - t0
                wall[k] += dt
                load.append(os.getloadavg()[0])
                used = CpuClock.seconds(c0, clock.read())
                cores[k].append({g: v / dt for g, v in used.items()})
                per_scan[k].append({g: v / args.scans for g, v in used.items()})
                for c in dash.server.clients:
                    b, u = start.get(id(c), (0, 0))
                    sent[k].append((c.bytes_sent - b, c.updates_sent - u))
                fps = statistics.median(x["fps"] for x in scans[k][-args.scans:])
                print(f"{'paced' if dwell_us else 'unpaced'} round {r + 1}: {k} pages "
                      f"{fps:.0f} frames/s, load {load[-1]:.1f}, cores "
                      f"{ {g: round(v, 3) for g, v in cores[k][-1].items()} }",
                      file=sys.stderr, flush=True)
    finally:
        sim.dwelltime = None
    med = {k: statistics.median(x["fps"] for x in v) for k, v in scans.items()}
    out: dict[str, Any] = {
        "load_average_1min": [round(min(load), 1), round(statistics.median(load), 1),
                              round(max(load), 1)],
        "fps_median": {f"{k} pages": round(v) for k, v in med.items()},
        "fps_ratio_to_no_page": {f"{k} pages": round(v / med[0], 3) for k, v in med.items()},
        "fps_all": {f"{k} pages": [round(x["fps"]) for x in v] for k, v in scans.items()},
        "cores_median": {f"{k} pages": {g: round(statistics.median(c[g] for c in cores[k]), 3)
                                        for g in cores[k][0]} for k in CONDITIONS},
        "cpu_s_per_scan_median": {f"{k} pages": {
            g: round(statistics.median(c[g] for c in per_scan[k]), 3) for g in per_scan[k][0]}
            for k in CONDITIONS},
    }
    if dwell_us:
        ideal = n * dwell_us * 1e-6
        out["detector_fps"] = round(1e6 / dwell_us)
        out["scan_s_median_vs_detector"] = {
            f"{k} pages": [round(statistics.median(x["elapsed_s"] for x in v), 3), round(ideal, 3)]
            for k, v in scans.items()}
        out["frames_missing"] = {f"{k} pages": sum(x["missing"] for x in v)
                                 for k, v in scans.items()}
        out["receiver_blocked_s_max"] = {f"{k} pages": round(max(x["blocked_s"] for x in v), 3)
                                         for k, v in scans.items()}
    # On a machine the acquisition alone keeps busy, frames/s scale with the
    # CPU seconds a scan takes in all: the ratio below does not depend on
    # what else this machine runs, the measured one does.
    total = {k: statistics.median(sum(v for g, v in c.items() if not g.startswith(" "))
                                  for c in per_scan[k]) for k in CONDITIONS}
    out["cpu_s_per_scan_total"] = {f"{k} pages": round(v, 3) for k, v in total.items()}
    out["fps_ratio_predicted_from_cpu"] = {f"{k} pages": round(total[0] / v, 3)
                                           for k, v in total.items()}
    # The pages and the server cost per second of wall time (they pace
    # themselves), not per frame: on a machine of `cpus` cores that the
    # acquisition alone keeps busy, k pages leave it cpus - (their cores).
    extra = {k: statistics.median(c["chromium"] + c["  of it dashboard server"] for c in cores[k])
             for k in CONDITIONS}
    cpus = os.cpu_count() or 1
    out["page_and_server_cores"] = {f"{k} pages": round(v, 3) for k, v in extra.items()}
    out["fps_ratio_predicted_from_cores"] = {
        f"{k} pages": round(1 - (v - extra[0]) / cpus, 3) for k, v in extra.items()}
    for k in (1, 3):
        b = sum(x for x, _ in sent[k])
        u = sum(y for _, y in sent[k])
        out[f"bytes_per_update_{k}_pages"] = round(b / max(u, 1))
        out[f"updates_per_s_per_page_{k}_pages"] = round(u / k / wall[k], 1)
    return out


def run(args: Any, n: int, sim: Any, dash: Dashboard, runner: Runner,
        drivers: list[Any]) -> dict[str, Any]:
    clock = CpuClock(drivers)
    show(drivers, dash, 0)
    runner.run_once()
    show(drivers, dash, 3)
    runner.run_once()
    report: dict[str, Any] = {
        "frames": f"{args.nav}x{args.nav} scan of {args.sig}x{args.sig} u16 bslz4",
        "max_fps": args.max_fps, "sum_fps": args.sum_fps, "behind_gap_s": args.behind_gap,
        "chromium_nice": args.nice,
        "cpus": os.cpu_count(),
    }
    unpaced = alternate(args, sim, dash, runner, drivers, clock, args.repeats, None, n)
    report["unpaced"] = unpaced
    no_page = unpaced["fps_median"]["0 pages"]
    if args.paced_repeats:
        rate = args.paced_fps or args.paced_fraction * no_page
        dwell = round(1e6 / rate, 1)
        report["paced_fraction_of_no_page_rate"] = round(rate / no_page, 3)
        report["paced"] = alternate(args, sim, dash, runner, drivers, clock,
                                    args.paced_repeats, dwell, n)
    if args.latency_scans:
        if args.latency_dwell is None:
            args.latency_dwell = round(1e6 / (0.6 * no_page))
        report.update(latency(args, n, sim, dash, runner, drivers))
    return report


def latency(args: Any, n: int, sim: Any, dash: Dashboard, runner: Runner,
            drivers: list[Any]) -> dict[str, Any]:
    show(drivers, dash, 1)
    published: dict[int, tuple[int, int | None]] = {}

    def note() -> None:  # in the hook: the ledger's count at publication, nothing copied
        cur = dash.state.current
        published.setdefault(cur.version, (cur.ledger.processed if cur.ledger is not None else 0,
                                           cur.run_id))
    dash.state.add_listener(note)
    samples: list[tuple[float, int, int | None]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            aq = dash.state.aq
            if aq is not None:
                samples.append((time.monotonic(), aq.ledger.received, dash.state.current.run_id))
            time.sleep(0.0005)
    sim.dwelltime = args.latency_dwell
    page = next(iter(dash.server.clients))
    page.acks.clear()
    b0, u0, t0 = page.bytes_sent, page.updates_sent, time.monotonic()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rates = []
    try:
        for _ in range(args.latency_scans):
            runner.run_once()
            rates.append(dash.state.snapshots()[-1].fps)
    finally:
        stop.set()
        sampler.join()
        sim.dwelltime = None
        dash.state.remove_listener(note)
    wall = time.monotonic() - t0
    updates, sent = page.updates_sent - u0, page.bytes_sent - b0
    arrival: dict[int | None, list[float]] = {}  # run -> time frame k arrived, by k
    for t, received, run_id in samples:
        times = arrival.setdefault(run_id, [])
        while len(times) < min(received, n):
            times.append(t)
    lat: list[float] = []
    shown: dict[int | None, int] = {}
    for t_ack, version in sorted(page.acks):
        if version not in published:
            continue
        processed, run_id = published[version]
        first = shown.get(run_id, 0)
        if processed <= first or run_id not in arrival:
            continue
        shown[run_id] = processed
        times = arrival[run_id]
        lat += [t_ack - times[k] for k in range(first, min(processed, len(times)))]
    out: dict[str, Any] = {
        "latency_dwell_us": args.latency_dwell,
        "latency_runs_fps": [round(r) for r in rates],
        "latency_frames": len(lat),
        "bytes_per_update_latency_runs": round(sent / max(updates, 1)),
        "updates_per_s_latency_runs": round(updates / wall, 1),
    }
    if lat:
        out["latency_ms_median"] = round(1e3 * float(np.median(lat)), 1)
        out["latency_ms_p95"] = round(1e3 * float(np.percentile(lat, 95)), 1)
    return out


if __name__ == "__main__":
    main()
