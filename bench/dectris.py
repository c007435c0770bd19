"""DECTRIS end to end: simulator in its own process (unthrottled), our driver,
SumUDF, two workers.  Timed like upstream's anchor benchmark: from
make_acquisition (REST arm included) to the result.  One JSON line.

``--stream v2`` replays a stream V2 recording (``write_dump(stream="v2")``)
with our simulator, which sends recorded messages as fast as the receiver
takes them; ``--receivers N`` opens N sockets on it.  CPU per frame is split
into the simulator, the main process (receiver thread included) and the
worker processes: on a 2-core machine they share the same cores."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--dump", required=True)
    p.add_argument("--nav", type=int, nargs=2, required=True)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--fpp", type=int, default=None)
    p.add_argument("--sim", choices=["ours", "upstream"], default="ours")
    p.add_argument("--label", default="")
    p.add_argument("--stream", choices=["legacy", "v2"], default="legacy")
    p.add_argument("--receivers", type=int, default=1)
    a = p.parse_args()
    if a.stream == "v2" and a.sim != "ours":
        p.error("--stream v2 needs --sim ours (upstream's simulator sends stream V1 only)")

    from libertem.udf.sum import SumUDF

    from libertem_live.api import LiveContext
    from cpu import client_pids, cpu_seconds
    from memwatch import MemWatch
    import sim_proc

    meta = json.load(open(a.dump + ".json")) if os.path.exists(a.dump + ".json") else {}
    expected = np.load(a.dump + ".sum.npy")
    n = a.nav[0] * a.nav[1]
    proc, ports = sim_proc.start(a.sim, a.dump)
    walls: list[float] = []
    cpu: dict[str, list[float]] = {"sim": [], "main": [], "workers": []}
    ok = True
    try:
        ctx = LiveContext()
        try:
            stream_kw = {"stream": "v2", "receivers": a.receivers} if a.stream == "v2" else {}
            data_port = ports["v2_port"] if a.stream == "v2" else ports["zmq_port"]
            with ctx.make_connection("dectris").open(
                    api_host="127.0.0.1", api_port=ports["api_port"],
                    data_host="127.0.0.1", data_port=data_port, **stream_kw) as conn:
                def cpu_now() -> tuple[float, float, float]:
                    workers = client_pids(proc.pid)[1:]
                    return (cpu_seconds([proc.pid]), cpu_seconds([os.getpid()]),
                            cpu_seconds(workers))

                def once() -> float:
                    nonlocal ok
                    kw = {"frames_per_partition": a.fpp} if a.fpp else {}
                    c0 = cpu_now()
                    t0 = time.perf_counter()
                    aq = ctx.make_acquisition(
                        conn=conn, nav_shape=tuple(a.nav),
                        controller=conn.get_active_controller(trigger_mode="exte"), **kw)
                    res = ctx.run_udf(dataset=aq, udf=SumUDF())
                    dt = time.perf_counter() - t0
                    for key, before, after in zip(cpu, c0, cpu_now()):
                        cpu[key].append(after - before)
                    ok = ok and bool(np.array_equal(
                        res["intensity"].data.astype(np.float64), expected))
                    return dt
                once()
                with MemWatch(exclude={proc.pid}) as mem:
                    for _ in range(a.repeat):
                        walls.append(once())
        finally:
            ctx.close()
    finally:
        sim_proc.stop(proc)
    wall = sorted(walls)[len(walls) // 2]
    shape = meta.get("shape", list(expected.shape))
    itemsize = np.dtype(meta.get("dtype", "uint16")).itemsize
    def us_per_frame(xs: list[float]) -> float:
        xs = sorted(xs[1:]) or sorted(xs)  # the warm-up run is not counted
        return round(xs[len(xs) // 2] / n * 1e6, 2)

    print(json.dumps({
        "detector": "dectris", "impl": "ours", "sim": a.sim, "label": a.label, "frames": n,
        "stream": a.stream, "receivers": a.receivers,
        "sig": shape, "fpp": a.fpp, "repeat": a.repeat,
        "fps_median": round(n / wall), "fps_min": round(n / max(walls)),
        "fps_max": round(n / min(walls)),
        "MBps_decoded": round(n * shape[0] * shape[1] * itemsize / wall / 1e6),
        "peak_main_rss_MiB": round(mem.peak_main_rss / 2**20),
        "peak_tree_pss_MiB": round(mem.peak_tree_pss / 2**20),
        "cpu_us_per_frame": {k: us_per_frame(v) for k, v in cpu.items()},
        "result_ok": ok,
    }), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
