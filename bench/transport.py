"""Transport benchmark: the shared-memory ring (memory driver, end to end
through LiveContext) against LiberTEM's queue payload path, 512x512 uint16
frames into SumUDF on two workers.  One configuration per process."""
from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np


def make_pool(n: int = 64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 1024, size=(n, 512, 512), dtype=np.uint16)


def expected(pool: np.ndarray, nframes: int) -> np.ndarray:
    counts = np.bincount(np.arange(nframes) % len(pool), minlength=len(pool))
    return np.tensordot(counts, pool.astype(np.float64), axes=1)


def run(mode: str, nframes: int, repeat: int, fpp: int) -> dict:
    from libertem.udf.sum import SumUDF

    from libertem_live.api import LiveContext
    from libertem_live.transport.stream import RingConfig
    from cpu import client_pids, cpu_seconds
    from memwatch import MemWatch
    from queue_path import QueueDataSet

    pool = make_pool()
    truth = expected(pool, nframes)
    ctx = LiveContext()
    ring = RingConfig(num_slots=16, slot_bytes=16 * pool[0].nbytes, max_frames=16)
    ring_frames = ring.num_slots * ring.max_frames
    walls, cpus, ok = [], [], True
    # one connection for all runs, as at the microscope (it keeps its ring)
    conn = ctx.make_connection("memory").open(
        data=pool, nav_shape=(nframes,), frames_per_stack=16, ring=ring)
    try:
        def once(n: int) -> float:
            nonlocal ok
            if mode == "ring":
                aq = ctx.make_acquisition(conn=conn, nav_shape=(n,), frames_per_partition=fpp)
                t0 = time.perf_counter()
                res = ctx.run_udf(dataset=aq, udf=SumUDF())
                dt = time.perf_counter() - t0
            else:
                ds = QueueDataSet(pool, n, fpp)
                t0 = time.perf_counter()
                res = ctx.run_udf(dataset=ds, udf=SumUDF())
                dt = time.perf_counter() - t0
            if n == nframes:
                ok = ok and bool(np.array_equal(res["intensity"].data.astype(np.float64), truth))
            return dt

        once(2 * fpp)  # warm-up: worker imports, numba, page faults
        with MemWatch() as mem:
            for _ in range(repeat):
                c0 = cpu_seconds(client_pids())
                walls.append(once(nframes))
                cpus.append(cpu_seconds(client_pids()) - c0)
    finally:
        conn.close()
        ctx.close()
    wall = sorted(walls)[len(walls) // 2]
    mb = nframes * pool[0].nbytes / 1e6
    return {
        "mode": mode, "frames": nframes, "frame": "512x512 uint16", "udf": "SumUDF",
        "workers": 2, "frames_per_partition": fpp, "repeat": repeat,
        "ring_frames": ring_frames if mode == "ring" else None,
        "median_s": round(wall, 3), "frames_per_s": round(nframes / wall),
        "MB_per_s": round(mb / wall), "MB_per_s_range": [round(mb / max(walls)),
                                                         round(mb / min(walls))],
        "cpu_us_per_frame": round(sorted(cpus)[len(cpus) // 2] / nframes * 1e6),
        "peak_main_rss_MiB": round(mem.peak_main_rss / 2**20),
        "peak_tree_pss_MiB": round(mem.peak_tree_pss / 2**20),
        "result_ok": ok,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["ring", "queue"], required=True)
    p.add_argument("--frames", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--fpp", type=int, default=256)
    a = p.parse_args()
    print(json.dumps(run(a.mode, a.frames, a.repeat, a.fpp)), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, __import__("os").path.dirname(__file__))
    main()
