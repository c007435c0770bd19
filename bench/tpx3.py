"""ASI TPX3 end to end: Tpx3Sim in its own process (unthrottled) -> asi_tpx3 driver
-> two LiberTEM workers -> a sum, in passive mode as at the microscope.

One configuration per process, one JSON line. The clock starts when
``wait_for_acquisition`` returns (the simulator idles ``--interval`` seconds
between acquisitions, longer than our per-acquisition overhead), as in
upstream's anchor benchmark, and stops when ``run_udf`` returns.

    python bench/tpx3.py --nav 512 512 --events 100 --udf sparse
    python bench/tpx3.py --nav 256 256 --events 1000 --udf dense
    python bench/tpx3.py --file /tmp/anchor-data/tpx3-512x512-h100.tpx3 --sim upstream

``--file F --sim upstream``: upstream's ``TpxCameraSim`` (anchor venv,
``sim_tpx3.py``) replays the anchor stream file ``F`` (written by upstream's
``gen_tpx3.py``; nav, events and the expected sum come from its sidecars),
so that our driver and upstream's ``bench_tpx3.py`` see the same bytes.

``--udf sparse``: LiberTEM's SumUDF on CSR tiles; ``dense``: a numpy-only sum
(native uint32 tiles). ``--sparse-depth N`` emulates a proposed core change
(CSR tiles of up to N frames instead of the depth LiberTEM negotiates for
dense 512x512 frames, which is 2); see the plugin's report.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))

from libertem.udf.base import UDF  # noqa: E402
from libertem_live.acquisition import LiveAcquisition, LivePartition  # noqa: E402


class DenseSum(UDF):
    """Sum that accepts numpy tiles only, in the native dtype (uint32)."""

    def get_preferred_input_dtype(self) -> Any:
        return self.USE_NATIVE_DTYPE

    def get_backends(self) -> Any:
        return (self.BACKEND_NUMPY,)

    def get_result_buffers(self) -> dict:
        return {"intensity": self.buffer(kind="sig", dtype=np.uint64)}

    def process_tile(self, tile: Any) -> None:
        self.results.intensity[:] += tile.sum(axis=0, dtype=np.uint64)

    def merge(self, dest: Any, src: Any) -> None:
        dest.intensity[:] += src.intensity


#: extra connection parameters (JSON in TPX3_BENCH_OPEN, for experiments)
OPEN_KW: dict = json.loads(os.environ.get("TPX3_BENCH_OPEN", "{}"))
SPARSE_DEPTH = int(os.environ.get("TPX3_BENCH_SPARSE_DEPTH", "0"))


class _DeepScheme:
    """Stands in for LiberTEM's tiling scheme with a larger depth (sparse tiles only)."""

    def __init__(self, scheme: Any, depth: int) -> None:
        self._scheme = scheme
        self.depth = depth

    def adjust_for_partition(self, partition: Any) -> "_DeepScheme":
        return _DeepScheme(self._scheme.adjust_for_partition(partition), self.depth)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._scheme, name)


class DeepSparsePartition(LivePartition):
    """Emulates the proposed core change: CSR tiles as deep as the partition allows."""

    def get_tiles(self, tiling_scheme: Any, dest_dtype: Any = "float32", roi: Any = None,
                  array_backend: Any = None) -> Any:
        from sparseconverter import SPARSE_BACKENDS
        if array_backend in SPARSE_BACKENDS:
            tiling_scheme = _DeepScheme(tiling_scheme, max(tiling_scheme.depth, SPARSE_DEPTH))
        return super().get_tiles(tiling_scheme, dest_dtype, roi, array_backend)


class DeepSparseAcquisition(LiveAcquisition):
    def get_partitions(self) -> Any:
        for p in super().get_partitions():
            p.__class__ = DeepSparsePartition
            yield p


def start_upstream_sim(path: str, interval: float) -> tuple[Any, int]:
    """Upstream's TPX3 simulator replaying ``path`` (memfd cache, as in the anchor)."""
    import sim_proc
    proc, ports = sim_proc.start_cmd([
        str(sim_proc.ANCHOR_VENV / "bin" / "python"), str(sim_proc.ANCHOR_BENCH / "sim_tpx3.py"),
        "--file", path, "--cached", "MEMFD", "--sleep", str(interval)])
    return proc, int(ports["data_port"])


def stop_sim(proc: Any) -> None:
    import sim_proc
    sim_proc.stop(proc)


def start_sim(nav: tuple[int, int], events: float, interval: float,
              fpc: int) -> tuple[Any, int]:
    cmd = [sys.executable, "-m", "libertem_live_asi_tpx3.sim", "--port", "0", "--nav",
           str(nav[0]), str(nav[1]), "--events", str(events), "--acquisitions", "0",
           "--interval", str(interval), "--frames-per-chunk", str(fpc)]
    import sim_proc
    proc = sim_proc.popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"simulator did not start: {line} {proc.stderr.read()}")
    return proc, int(line.rsplit(":", 1)[1])


def cpu_seconds(sim_pid: int) -> dict[str, float]:
    """CPU seconds so far of this process, of its LiberTEM workers and of the
    simulator's process tree (exited threads count in their process)."""
    import psutil
    me = psutil.Process(os.getpid())
    out = {"main": 0.0, "main_sys": 0.0, "main_kfaults": 0.0, "workers": 0.0,
           "workers_sys": 0.0, "workers_kfaults": 0.0, "sim": 0.0}

    def faults(pid: int) -> float:
        """Minor page faults / 1000 (a fresh page costs ~10 us in this VM)."""
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[7]) / 1000

    t = me.cpu_times()
    out["main"], out["main_sys"] = t.user + t.system, t.system
    out["main_kfaults"] = faults(me.pid)
    for p in me.children(recursive=True):
        try:
            t = p.cpu_times()
            if p.pid == sim_pid or sim_pid in {q.pid for q in p.parents()}:
                out["sim"] += t.user + t.system
            else:
                out["workers"] += t.user + t.system
                out["workers_sys"] += t.system
                out["workers_kfaults"] += faults(p.pid)
        except (psutil.NoSuchProcess, FileNotFoundError):
            pass
    return out


def truth(nav: tuple[int, int], events: float) -> np.ndarray:
    from libertem_live_asi_tpx3.sim import SynthAcquisition, SynthConfig
    return SynthAcquisition.generate(SynthConfig(nav_shape=nav, events_per_frame=events)
                                     ).expected_sum()


def run(nav: tuple[int, int], events: float, udf_kind: str, repeat: int, warmup: int,
        fpp: int | None, interval: float, fpc: int, file: str | None = None) -> dict:
    from libertem.udf.sum import SumUDF

    from libertem_live.api import LiveContext
    from memwatch import MemWatch

    if file is not None:
        sim, port = start_upstream_sim(file, interval)
    else:
        sim, port = start_sim(nav, events, interval, fpc)
    walls: list[float] = []
    cpus: list[dict] = []
    results = []
    ctx = LiveContext()  # default pipelined executor: 2 workers on a 2-core box
    try:
        workers = len(ctx.executor.get_available_workers())
        # sample memory every 0.25 s, as upstream's MemSampler does: reading
        # smaps_rollup of three processes every 50 ms cost ~1 s of CPU per
        # acquisition on this 2-core box, more than the receiver thread
        with MemWatch(exclude={sim.pid}, interval=0.25) as mem:
            with ctx.make_connection("asi_tpx3").open(
                    data_port=port, timeout=30, **OPEN_KW) as conn:
                for i in range(warmup + repeat):
                    pending = conn.wait_for_acquisition(timeout=120)
                    if pending is None:
                        raise RuntimeError("no acquisition within 120 s")
                    cpu0 = cpu_seconds(sim.pid)
                    t0 = time.perf_counter()
                    aq = ctx.make_acquisition(conn=conn, pending_aq=pending,
                                              frames_per_partition=fpp)
                    if SPARSE_DEPTH:
                        aq.__class__ = DeepSparseAcquisition
                    udf = SumUDF() if udf_kind == "sparse" else DenseSum()
                    res = ctx.run_udf(dataset=aq, udf=udf)
                    dt = time.perf_counter() - t0
                    cpu1 = cpu_seconds(sim.pid)
                    rec = getattr(conn, "_receiver", None)  # diagnostics only
                    if i >= warmup:
                        cpus.append({k: round(cpu1[k] - cpu0[k], 2) for k in cpu0})
                        cpus[-1]["receiver_thread"] = round(getattr(rec, "cpu_s", -1.0), 2)
                        walls.append(dt)
                        results.append(np.asarray(res["intensity"].data, np.float64))
                        fpp_used = aq.frames_per_partition
                        blocked = aq.ledger.snapshot().blocked_s
    finally:
        ctx.close()
        stop_sim(sim)
    expected = np.load(file + ".sum.npy") if file is not None else truth(nav, events)
    ok = all(np.array_equal(r, expected) for r in results)
    n = nav[0] * nav[1]
    wall = sorted(walls)[len(walls) // 2]
    return {
        "bench": "tpx3", "impl": "ours", "sim": "upstream" if file else "ours",
        "nav": list(nav), "sig": [512, 512], "events_per_frame": events,
        "frames_per_chunk": fpc,
        "udf": "SumUDF (CSR tiles)" if udf_kind == "sparse" else "numpy-only sum (dense)",
        "sparse_depth_override": SPARSE_DEPTH or None,
        "workers": workers, "frames_per_partition": fpp_used, "repeat": repeat,
        "median_s": round(wall, 3), "positions_per_s": round(n / wall),
        "positions_per_s_range": [round(n / max(walls)), round(n / min(walls))],
        "Mevents_per_s": round(n * events / wall / 1e6, 1),
        "receiver_blocked_s": blocked,
        "cpu_s_median_acq": cpus[sorted(range(len(walls)), key=walls.__getitem__)[len(walls) // 2]],
        "peak_main_rss_MiB": round(mem.peak_main_rss / 2**20),
        "peak_tree_pss_MiB": round(mem.peak_tree_pss / 2**20),
        "result_ok": ok,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--nav", type=int, nargs=2, default=(256, 256))
    p.add_argument("--events", type=float, default=100.0)
    p.add_argument("--udf", choices=["sparse", "dense"], default="sparse")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--fpp", type=int, default=None)
    p.add_argument("--interval", type=float, default=3.0)
    p.add_argument("--frames-per-chunk", type=int, default=None,
                   help="rows per ArrayChunk (default as upstream's anchor data: 128 at "
                        "<= 100 events/frame, else 16)")
    p.add_argument("--file", default=None,
                   help="anchor stream file (gen_tpx3.py) replayed by upstream's simulator")
    p.add_argument("--sim", choices=["ours", "upstream"], default="ours")
    p.add_argument("--sparse-depth", type=int, default=None,
                   help="emulate deeper CSR tiles (proposed core change)")
    a = p.parse_args()
    if a.sparse_depth and not SPARSE_DEPTH:  # workers read it from the environment
        os.environ["TPX3_BENCH_SPARSE_DEPTH"] = str(a.sparse_depth)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    fpc = a.frames_per_chunk or (128 if a.events <= 100 else 16)
    nav, events = tuple(a.nav), a.events
    if a.sim == "upstream":
        if a.file is None:
            p.error("--sim upstream needs --file (an anchor stream file)")
        with open(a.file + ".json") as f:
            meta = json.load(f)
        nav, fpc = tuple(meta["nav"]), int(meta["frames_per_chunk"])
        events = round(meta["mean_events_per_frame"], 1)
    print(json.dumps(run(nav, events, a.udf, a.repeat, a.warmup, a.fpp, a.interval, fpc,
                         a.file if a.sim == "upstream" else None)), flush=True)


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    if __package__ is None and "tpx3" not in sys.modules:
        # run the module as ``tpx3`` so that the classes above pickle by a name the
        # workers can import (bench/ is on PYTHONPATH, see run.py)
        import importlib
        sys.modules["tpx3"] = importlib.import_module("tpx3")
        sys.modules["tpx3"].main()
    else:
        main()
