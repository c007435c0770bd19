"""Recording DECTRIS scans to a file under /tmp, frames/s, in one run:

* ``h5``: ``LiveContext.record`` (each frame's bslz4 payload stored as one
  HDF5 chunk, in the main process, no decoding);
* ``npy``: our ``RecordUDF`` (decoded by the workers into a ``.npy`` file);
* ``upstream``: upstream LiberTEM-live's ``RecordUDF`` (its own DECTRIS
  driver, in the anchor venv; skipped where that venv is missing).

All three receive the same stream: one simulator process (upstream's if the
anchor venv exists, else ours) replays a dump of ``frames`` distinct-ish
frames.  Timed like bench/dectris.py: from ``make_acquisition`` (REST arm
included) to the file complete; one untimed warm-up each, then ``--repeat``
rounds with ours alternating (this VM drifts within minutes).  ``sync``
runs after every recording, outside the timing, so that one run's writeback
does not slow the next.  Every file is checked against the dump's sum.

    python bench/record.py [--repeat 3] [--case 512 96] [--dir /tmp/...]

Prints a table and one JSON line per row.
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
CASES = {
    # label, frame shape, scan
    "512": ("512x512 u16 bslz4", (512, 512), (64, 64)),
    "96": ("96x96 u16 bslz4", (96, 96), (128, 128)),
}


def _dump(folder: Path, shape: tuple[int, int], nav: tuple[int, int]) -> Path:
    from libertem_live_dectris.sim import write_dump
    path = folder / f"dectris-{shape[0]}x{shape[1]}-u16-{nav[0] * nav[1]}.dump"
    if not (path.exists() and Path(str(path) + ".sum.npy").exists()):
        write_dump(path, frames=nav[0] * nav[1], shape=shape, dtype="uint16",
                   compression="bslz4", series=34, pool_size=256)
        os.sync()
    return path


def _sum_h5(path: Path) -> np.ndarray:
    import h5py
    import hdf5plugin  # noqa: F401
    with h5py.File(path, "r") as f:
        ds = f["data"]
        assert f.attrs["complete"]
        return sum((ds[i].astype(np.float64).sum(axis=0) for i in range(ds.shape[0])),
                   np.zeros(ds.shape[2:]))


def _sum_npy(path: Path) -> np.ndarray:
    arr = np.load(path, mmap_mode="r")
    return sum((arr[i].astype(np.float64).sum(axis=0) for i in range(arr.shape[0])),
               np.zeros(arr.shape[2:]))


def _row(label: str, impl: str, sim: str, n: int, walls: list[float], nbytes: int,
         ok: bool) -> dict:
    wall = sorted(walls)[len(walls) // 2]
    return {"bench": "record", "label": label, "impl": impl, "sim": sim, "frames": n,
            "fps_median": round(n / wall), "fps_min": round(n / max(walls)),
            "fps_max": round(n / min(walls)), "samples": len(walls),
            "file_MiB": round(nbytes / 2**20, 1), "result_ok": ok}


def ours(label: str, dump: Path, ports: dict, nav: tuple[int, int], repeat: int,
         folder: Path, sim: str) -> list[dict]:
    from libertem_live.api import LiveContext
    from libertem_live.udf.record import RecordUDF

    expected = np.load(str(dump) + ".sum.npy")
    n = nav[0] * nav[1]
    walls: dict[str, list[float]] = {"h5": [], "npy": []}
    sizes = {"h5": 0, "npy": 0}
    ok = {"h5": True, "npy": True}
    ctx = LiveContext()
    try:
        with ctx.make_connection("dectris").open(
                api_host="127.0.0.1", api_port=ports["api_port"], data_host="127.0.0.1",
                data_port=ports["zmq_port"], timeout=60) as conn:
            def once(impl: str, check: bool) -> float:
                path = folder / f"ours.{impl}"
                t0 = time.perf_counter()
                aq = ctx.make_acquisition(
                    conn=conn, nav_shape=nav,
                    controller=conn.get_active_controller(trigger_mode="exte"))
                if impl == "h5":
                    ctx.record(aq, path)
                else:
                    ctx.run_udf(dataset=aq, udf=RecordUDF(path))
                dt = time.perf_counter() - t0
                os.sync()
                sizes[impl] = path.stat().st_size
                if check:
                    got = _sum_h5(path) if impl == "h5" else _sum_npy(path)
                    ok[impl] = ok[impl] and bool(np.array_equal(got, expected))
                for p in folder.glob("ours.*"):
                    p.unlink()
                return dt

            for impl in walls:
                once(impl, check=True)  # warm-up (and checked)
            for r in range(repeat):
                for impl in (("h5", "npy") if r % 2 == 0 else ("npy", "h5")):
                    walls[impl].append(once(impl, check=r == repeat - 1))
    finally:
        ctx.close()
    return [_row(label, impl, sim, n, walls[impl], sizes[impl], ok[impl]) for impl in walls]


def upstream(label: str, dump: Path, ports: dict, nav: tuple[int, int], repeat: int,
             folder: Path, sim: str) -> dict | None:
    import sim_proc
    py = sim_proc.ANCHOR_VENV / "bin" / "python"
    if not py.exists():
        print(f"upstream skipped: no anchor venv at {sim_proc.ANCHOR_VENV} "
              "(bash shared/anchor-bench/run_all.sh setup)", file=sys.stderr)
        return None
    proc = subprocess.run(
        [str(py), str(HERE / "record_upstream.py"), "--api-port", str(ports["api_port"]),
         "--zmq-port", str(ports["zmq_port"]), "--nav", *map(str, nav), "--repeat",
         str(repeat), "--out", str(folder / "upstream.npy"), "--expected",
         str(dump) + ".sum.npy"], capture_output=True, text=True)
    lines = [json.loads(s) for s in proc.stdout.splitlines() if s.startswith("{")]
    if proc.returncode != 0 or not lines:
        print("upstream failed:", proc.stdout[-2000:], proc.stderr[-3000:], file=sys.stderr)
        return None
    got = lines[-1]
    return _row(label, "upstream", sim, nav[0] * nav[1], got["walls"], got["nbytes"],
                got["ok"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--case", nargs="+", choices=sorted(CASES), default=["512", "96"])
    p.add_argument("--dir", default="/tmp/libertem-live-bench-record")
    p.add_argument("--sim", choices=["auto", "ours", "upstream"], default="auto")
    a = p.parse_args()
    sys.path.insert(0, str(HERE))
    import sim_proc

    folder = Path(a.dir)
    folder.mkdir(parents=True, exist_ok=True)
    sim = a.sim if a.sim != "auto" else (
        "upstream" if sim_proc.upstream_available() else "ours")
    rows = []
    for key in a.case:
        label, shape, nav = CASES[key]
        dump = _dump(folder, shape, nav)
        proc, ports = sim_proc.start(sim, str(dump))
        try:
            rows += ours(label, dump, ports, nav, a.repeat, folder, sim)
            up = upstream(label, dump, ports, nav, a.repeat, folder, sim)
            if up is not None:
                rows.append(up)
        finally:
            sim_proc.stop(proc)
    print(f"{'case':20} {'impl':9} {'sim':9} {'frames':>6} {'fps median':>10} "
          f"{'min-max':>13} {'file MiB':>9} ok")
    for r in rows:
        mm = f"{r['fps_min']}-{r['fps_max']}"
        print(f"{r['label']:20} {r['impl']:9} {r['sim']:9} {r['frames']:>6} "
              f"{r['fps_median']:>10} {mm:>13} {r['file_MiB']:>9} {r['result_ok']}")
    for r in rows:
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
