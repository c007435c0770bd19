"""Merlin end to end: simulator in its own process (unthrottled), our driver in
passive mode (CMD STARTACQUISITION [+ SOFTTRIGGER] on the control port, as
the microscope software would; wait_for_acquisition; SumUDF; LiveContext
with its default two workers on this box).  Timed like upstream's anchor
benchmark: from STARTACQUISITION to the result.  One JSON line.

Simulators: ``ours`` (MerlinSim, synthetic frames of the given format, or a
MIB file with ``--mib``) or ``upstream`` (upstream's CameraSim from the
anchor venv serving ``--mib``, triggered mode).  ``--recv-only`` measures the
receiver alone (socket -> ring, slots released at once, no decoding) and
reports microseconds per frame.  CPU per frame (this process and its workers;
the simulator) is reported too: on a shared 2-core box it is the steadier
figure.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

OURS = r"""
import json, os, signal, sys, threading
from libertem_live_merlin.sim import MerlinSim
kw = json.loads(sys.argv[1])
sim = MerlinSim(**kw).start()
print(json.dumps({"control_port": sim.control_port, "data_port": sim.data_port,
                  "pid": os.getpid()}), flush=True)
done = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: done.set())
done.wait()
sim.stop()
"""


def start_sim(kind: str, sim_kw: dict, mib: str | None, nav: tuple[int, int],
              cached: str = "MEMFD") -> tuple[subprocess.Popen, dict]:
    import sim_proc
    if kind == "upstream":
        cmd = [str(sim_proc.ANCHOR_VENV / "bin" / "python"),
               str(sim_proc.ANCHOR_BENCH / "sim_merlin.py"), "--file", str(mib),
               "--nav", *map(str, nav), "--cached", cached]
    else:
        cmd = [sys.executable, "-c", OURS, json.dumps(sim_kw)]
    return sim_proc.start_cmd(cmd)


def stop_sim(proc: subprocess.Popen) -> None:
    import sim_proc
    sim_proc.stop(proc)


def recv_only(conn, ctl, n: int, trigger: bool) -> float:
    """Receiver alone: frames land in the ring and are released as soon as a
    stack is published (what a worker does after decoding)."""
    ctl.cmd("STARTACQUISITION")
    if trigger:
        ctl.cmd("SOFTTRIGGER")
    t0 = time.perf_counter()
    pending = conn.wait_for_acquisition(30.0)
    assert pending is not None and pending.nimages == n
    stream = pending.take_stream()
    try:
        got = 0
        while got < n:
            st = stream.next_stack()
            stream.ring.release(st.slot, 0, st.count, st.gen)
            got += st.count
    finally:
        stream.close()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nav", type=int, nargs=2, default=(128, 128))
    p.add_argument("--depth", type=int, default=12)
    p.add_argument("--raw", action="store_true")
    p.add_argument("--layout", default="1x1")
    p.add_argument("--mib", default=None, help="serve this MIB file (gen_mib.py)")
    p.add_argument("--sim", choices=["ours", "upstream"], default="ours")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--recv-only", action="store_true")
    p.add_argument("--label", default="")
    p.add_argument("--cached", default="MEMFD", choices=["NONE", "MEM", "MEMFD"],
                   help="upstream simulator: how it holds the MIB file")
    a = p.parse_args()

    from libertem.udf.sum import SumUDF

    from libertem_live.api import LiveContext
    from cpu import client_pids, cpu_seconds
    from memwatch import MemWatch

    nav = tuple(a.nav)
    n = nav[0] * nav[1]
    sim_kw = {"frames": n, "scan_shape": list(nav), "counter_depth": a.depth, "raw": a.raw,
              "layout": a.layout, "pool_size": 64}
    if a.mib:
        sim_kw = {"mib_path": a.mib, "frames": n, "scan_shape": list(nav)}
        expected = np.load(a.mib + ".sum.npy") if os.path.exists(a.mib + ".sum.npy") else None
    else:
        from libertem_live_merlin.sim import MerlinSim
        expected = MerlinSim(**{**sim_kw, "scan_shape": nav}).expected_sum(n)
    proc, ports = start_sim(a.sim, sim_kw, a.mib, nav, a.cached)
    trigger = a.sim == "upstream"  # upstream's CameraSim waits for a soft trigger
    walls: list[float] = []
    cpu_client: list[float] = []  # CPU seconds per acquisition: wall times swing with
    cpu_sim: list[float] = []     # other load on a shared box, CPU per frame much less
    ok = True
    fmt: dict = {}
    try:
        ctx = LiveContext()
        try:
            with ctx.make_connection("merlin").open(
                    api_host="127.0.0.1", api_port=ports["control_port"],
                    data_host="127.0.0.1", data_port=ports["data_port"],
                    timeout=60.0, short_replies=a.sim == "upstream") as conn:
                ctl = conn.get_control()

                def once() -> float:
                    nonlocal ok
                    if a.recv_only:
                        return recv_only(conn, ctl, n, trigger)
                    t0 = time.perf_counter()
                    ctl.cmd("STARTACQUISITION")
                    if trigger:
                        ctl.cmd("SOFTTRIGGER")
                    pending = conn.wait_for_acquisition(30.0)
                    assert pending is not None
                    fmt.update(sig=list(pending.format.sig_shape),
                               dtype=str(pending.format.dtype),
                               pixel_format=pending.format.metadata["pixel_format"])
                    aq = ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=nav)
                    res = ctx.run_udf(dataset=aq, udf=SumUDF())
                    dt = time.perf_counter() - t0
                    if expected is not None:
                        ok = ok and bool(np.array_equal(
                            res["intensity"].data.astype(np.float64), expected))
                    return dt
                once()
                with MemWatch(exclude={proc.pid}) as mem:
                    for _ in range(a.repeat):
                        c0, s0 = cpu_seconds(client_pids(proc.pid)), cpu_seconds([proc.pid])
                        walls.append(once())
                        cpu_client.append(cpu_seconds(client_pids(proc.pid)) - c0)
                        cpu_sim.append(cpu_seconds([proc.pid]) - s0)
        finally:
            ctx.close()
    finally:
        stop_sim(proc)
    wall = sorted(walls)[len(walls) // 2]
    print(json.dumps({
        "detector": "merlin", "impl": "ours", "sim": a.sim, "label": a.label,
        "mode": "recv-only" if a.recv_only else "SumUDF", "frames": n, **fmt,
        "repeat": a.repeat, "fps_median": round(n / wall), "fps_min": round(n / max(walls)),
        "fps_max": round(n / min(walls)), "fps_all": [round(n / w) for w in walls],
        "us_per_frame": round(wall / n * 1e6, 2),
        "MBps_decoded": (round(n * fmt["sig"][0] * fmt["sig"][1]
                               * np.dtype(fmt["dtype"]).itemsize / wall / 1e6)
                         if fmt else None),
        "cpu_client_us_per_frame": round(sorted(cpu_client)[len(cpu_client) // 2] / n * 1e6, 1),
        "cpu_sim_us_per_frame": round(sorted(cpu_sim)[len(cpu_sim) // 2] / n * 1e6, 1),
        "peak_main_rss_MiB": round(mem.peak_main_rss / 2**20),
        "peak_tree_pss_MiB": round(mem.peak_tree_pss / 2**20),
        "result_ok": ok if expected is not None else None,
        "loadavg": os.getloadavg()[0],
    }), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
