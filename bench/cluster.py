"""Live DECTRIS bslz4 on a dask.distributed cluster vs. the local executor.

One run compares, on this machine and on the same simulated stream (our
simulator in its own process, unthrottled, replaying one dump), SumUDF over
a whole scan with

* ``local``: the default LiveContext (pipelined executor, one worker process
  per core, frames read from the shared-memory ring);
* ``dask1`` / ``dask2``: a cluster of real processes (``dask scheduler`` and
  1 or 2 ``dask worker`` processes, one thread each) over loopback TCP, and
  ``LiveContext(executor=DaskJobExecutor.connect(address))``: the workers,
  on this machine, read the frames from the ring (tasks carry slot
  references only);
* ``dask1-packed`` / ``dask2-packed``: the same with ``locality`` off, as
  for workers on other machines: every partition's frames travel
  compressed inside its task.

Each configuration runs in a fresh process; a warm-up acquisition, then
``--repeat`` timed ones (make_acquisition to result, REST arm included);
the configurations take turns ``--rounds`` times and the samples are
pooled.
Prints one JSON line per configuration and a table::

    python bench/cluster.py                        # 512x512, 64x64 scan
    python bench/cluster.py --shape 96 --nav 128 128
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
CONFIGS = ("local", "dask1", "dask2", "dask1-packed", "dask2-packed")


def _dump(shape: int, frames: int) -> str:
    path = HERE / "results" / f"dectris-{shape}x{shape}-u16-{frames}.dump"
    if not path.exists():
        from libertem_live_dectris.sim import write_dump
        path.parent.mkdir(exist_ok=True)
        write_dump(path, frames=frames, shape=(shape, shape), dtype="uint16",
                   compression="bslz4", series=34, pool_size=256)
    return str(path)


def one(config: str, dump: str, nav: tuple[int, int], repeat: int,
        fpp: int | None = None) -> dict:
    from libertem.udf.sum import SumUDF

    from libertem_live.api import LiveContext
    import sim_proc

    expected = np.load(dump + ".sum.npy")
    n = nav[0] * nav[1]
    proc, ports = sim_proc.start("ours", dump)
    cluster = None
    walls: list[float] = []
    sent: list[int] = []
    send_s: list[float] = []
    ok = True
    try:
        if config == "local":
            ctx = LiveContext()
        else:
            from libertem.executor.dask import DaskJobExecutor

            from libertem_live.cluster.processes import ProcessCluster
            cluster = ProcessCluster(workers=int(config[4])).__enter__()
            ctx = LiveContext(executor=DaskJobExecutor.connect(cluster.address))
            ctx.executor.locality = not config.endswith("-packed")
        try:
            with ctx.make_connection("dectris").open(
                    api_host="127.0.0.1", api_port=ports["api_port"],
                    data_host="127.0.0.1", data_port=ports["zmq_port"]) as conn:
                def once() -> float:
                    nonlocal ok
                    t0 = time.perf_counter()
                    aq = ctx.make_acquisition(
                        conn=conn, nav_shape=nav, frames_per_partition=fpp,
                        controller=conn.get_active_controller(trigger_mode="exte"))
                    res = ctx.run_udf(dataset=aq, udf=SumUDF())
                    dt = time.perf_counter() - t0
                    ok = ok and bool(np.array_equal(
                        res["intensity"].data.astype(np.float64), expected))
                    sent.append(getattr(ctx.executor, "bytes_sent", 0))
                    send_s.append(getattr(ctx.executor, "send_s", 0.0))
                    return dt
                once()
                for _ in range(repeat):
                    walls.append(once())
        finally:
            ctx.close()
    finally:
        if cluster is not None:
            cluster.close()
        sim_proc.stop(proc)
    wall = sorted(walls)[len(walls) // 2]
    return {"bench": "cluster", "config": config, "frames": n, "fpp": fpp,
            "sig": list(expected.shape), "fps_median": round(n / wall),
            "fps_min": round(n / max(walls)), "fps_max": round(n / min(walls)),
            "fps_all": [round(n / w) for w in walls],
            "bytes_per_frame": round(sent[-1] / n) if sent[-1] else None,
            "main_send_us_per_frame": round(1e6 * sorted(send_s)[len(send_s) // 2] / n, 1)
            if sent[-1] else None,
            "dump_bytes_per_frame": round(os.path.getsize(dump) / n),
            "result_ok": ok}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=CONFIGS + ("all",), default="all")
    p.add_argument("--configs", nargs="+", choices=CONFIGS, default=CONFIGS,
                   help="the configurations to compare (with --config all)")
    p.add_argument("--shape", type=int, default=512)
    p.add_argument("--nav", type=int, nargs=2, default=(64, 64))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2,
                   help="run the configurations in turn this many times (A B C A B C) and "
                        "pool the samples: this machine's speed drifts within minutes")
    p.add_argument("--fpp", type=int, default=None, help="frames per partition")
    p.add_argument("--dump", default=None)
    a = p.parse_args()
    n = a.nav[0] * a.nav[1]
    dump = a.dump or _dump(a.shape, n)
    if a.config != "all":
        print(json.dumps(one(a.config, dump, tuple(a.nav), a.repeat, a.fpp)), flush=True)
        return
    configs = tuple(a.configs)
    samples: dict[str, list[dict]] = {c: [] for c in configs}
    for _round in range(a.rounds):
        for config in configs:
            proc = subprocess.run(
                [sys.executable, __file__, "--config", config, "--dump", dump, "--nav",
                 *map(str, a.nav), "--repeat", str(a.repeat),
                 *(["--fpp", str(a.fpp)] if a.fpp else [])],
                capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(HERE)})
            got = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
            if proc.returncode != 0 or not got:
                print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
                raise SystemExit(f"configuration {config} failed")
            samples[config].append(got[-1])
    rows = []
    for config in configs:
        runs = samples[config]
        fps = sorted(f for r in runs for f in r["fps_all"])
        row = {**runs[-1], "fps_median": fps[len(fps) // 2], "fps_min": fps[0],
               "fps_max": fps[-1], "fps_all": fps,
               "result_ok": all(r["result_ok"] for r in runs)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    local = rows[0]["fps_median"]
    print(f"{'config':12} {'frames/s':>9} {'min-max':>13} {'vs ' + rows[0]['config']:>8} {'B/frame':>9} "
          f"{'send us/frame':>13} ok")
    for r in rows:
        print(f"{r['config']:12} {r['fps_median']:>9} {r['fps_min']:>6}-{r['fps_max']:<6} "
              f"{r['fps_median'] / local:>7.0%} {r['bytes_per_frame'] or '-':>9} "
              f"{r['main_send_us_per_frame'] or '-':>13} {r['result_ok']}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
