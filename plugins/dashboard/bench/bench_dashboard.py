"""Latency frame arrival -> pixel on a page, acquisition frames/s with 0, 1
and 3 pages open, and bytes per update; DECTRIS simulator, 512x512 frames.

    python bench/bench_dashboard.py --nav 32 --scans 4

Arrival: when the receiver's ledger counted the frame (sampled every 0.5 ms).
On the page: when the page acknowledged (after drawing, in
requestAnimationFrame) the first update that contained the frame.
"""
from __future__ import annotations

import argparse
import bisect
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import CHROMEDRIVER, CHROMIUM, make_driver  # noqa: E402

from libertem_live.api import LiveContext  # noqa: E402
from libertem_live_dashboard import Dashboard  # noqa: E402
from libertem_live_dashboard.runner import Runner  # noqa: E402
from libertem_live_dectris.sim import DectrisSim  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nav", type=int, default=32)
    ap.add_argument("--sig", type=int, default=512)
    ap.add_argument("--scans", type=int, default=4)
    ap.add_argument("--frame-time", type=float, default=1e-3)
    ap.add_argument("--executor", default="pipelined")
    args = ap.parse_args()
    if CHROMIUM is None or CHROMEDRIVER is None:
        raise SystemExit("needs chromium and chromedriver")
    n = args.nav * args.nav
    sim = DectrisSim(frames=n, shape=(args.sig, args.sig), dtype="uint16", compression="bslz4",
                     pool_size=64).start()
    sim.wait_for_listen()
    ctx = LiveContext(executor=args.executor)
    dash = Dashboard(port=0, history=50, quiet=True).start()
    conn = ctx.make_connection("dectris").open(api_host="127.0.0.1", api_port=sim.port,
                                               data_host="127.0.0.1", data_port=sim.zmqport)
    versions: dict[int, tuple[int, int]] = {}

    def note() -> None:  # runs in the hook: the ledger at publication, nothing copied
        cur = dash.state.current
        processed = cur.ledger.processed if cur.ledger is not None else 0
        versions.setdefault(cur.version, (processed, cur.run_id))
    dash.state.add_listener(note)
    arrivals: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            aq = dash.state.aq
            if aq is not None:
                arrivals.append((time.monotonic(), aq.ledger.received, dash.state.current.run_id))
            time.sleep(0.0005)
    threading.Thread(target=sample, daemon=True).start()

    def scans(k: int) -> list[float]:
        runner = Runner(ctx, conn, dash.state, mode="active", nav_shape=(args.nav, args.nav),
                        controller_params={"trigger_mode": "exte", "frame_time": args.frame_time})
        rates = []
        for _ in range(k):
            runner.run_once()
            rates.append(dash.state.snapshots()[-1].fps)
        return rates

    scans(1)  # warm-up
    report: dict = {"nav": [args.nav, args.nav], "sig": [args.sig, args.sig]}
    report["fps_0_pages"] = scans(args.scans)
    drivers = [make_driver()]
    drivers[0].get(dash.url)
    time.sleep(2)
    for c in dash.server.clients:
        c.acks.clear()
    t_start = time.monotonic()
    report["fps_1_page"] = scans(args.scans)
    page = next(iter(dash.server.clients))
    acks = list(page.acks)
    report["bytes_per_update_1_page"] = page.bytes_sent / max(page.updates_sent, 1)
    report["updates_per_s_1_page"] = len(acks) / (time.monotonic() - t_start)
    for _ in range(2):
        d = make_driver()
        d.get(dash.url)
        drivers.append(d)
    time.sleep(2)
    report["fps_3_pages"] = scans(args.scans)
    stop.set()
    # latency per frame, from the one-page runs
    lat = []
    by_run: dict[int, tuple[list[int], list[float]]] = {}
    for t, r, run in arrivals:
        if t >= t_start and run is not None:
            recv, times = by_run.setdefault(run, ([], []))
            recv.append(r)
            times.append(t)
    prev = (0, None)
    for t_ack, v in acks:
        if v not in versions:
            continue
        processed, run = versions[v]
        shown = prev[0] if prev[1] == run else 0
        prev = (max(processed, shown), run)
        if processed <= shown or run not in by_run:
            continue
        recv, times = by_run[run]
        for k in range(shown, processed, max(1, (processed - shown) // 16)):
            j = bisect.bisect_right(recv, k)  # first sample with received > k
            if j < len(times) and times[j] <= t_ack:
                lat.append(t_ack - times[j])
    if lat:
        report["latency_ms_median"] = 1e3 * float(np.median(lat))
        report["latency_ms_p95"] = 1e3 * float(np.percentile(lat, 95))
        report["latency_samples"] = len(lat)
    for key in ("fps_0_pages", "fps_1_page", "fps_3_pages"):
        report[key] = round(float(np.mean(report[key])), 1)
    print(json.dumps(report, indent=1))
    for d in drivers:
        d.quit()
    conn.close()
    dash.stop()
    ctx.close()
    sim.stop()


if __name__ == "__main__":
    main()
