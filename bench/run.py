"""``nox -s bench``: run the benchmarks, one fresh process per configuration,
print a table and write ``bench/results/latest.json``.

    python bench/run.py                 # everything available
    python bench/run.py transport       # only the transport comparison
    python bench/run.py tpx3            # only the ASI TPX3 driver, end to end
    python bench/run.py merlin          # only the Merlin driver, end to end
    python bench/run.py record          # recording DECTRIS scans (not in the default set:
                                        # it writes GiBs under /tmp)
    python bench/run.py cluster         # DECTRIS on a dask cluster of 1 and 2 worker
                                        # processes vs. the local executor (not in the
                                        # default set: starts clusters, minutes)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


sys.path.insert(0, str(HERE))


def _run(script: str, *args: str) -> list[dict]:
    proc = subprocess.run([sys.executable, str(HERE / script), *args], capture_output=True,
                          text=True, cwd=HERE, env={**os.environ, "PYTHONPATH": str(HERE)})
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not rows:
        print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{script} {' '.join(args)} failed")
    return rows


def transport(frames: int, repeat: int) -> list[dict]:
    rows = []
    rows += _run("transport.py", "--mode", "queue", "--frames", str(frames),
                 "--repeat", str(repeat))
    rows += _run("transport.py", "--mode", "ring", "--frames", str(frames),
                 "--repeat", str(repeat))
    rows += _run("transport.py", "--mode", "ring", "--frames", str(4 * frames),
                 "--repeat", "1")
    proto = _prototype(frames, repeat)
    if proto is not None:
        rows.append(proto)
    return rows


PROTOTYPE = HERE.parent.parent / "shared" / "spec" / "bench_workerqueue.py"


def _prototype(frames: int, repeat: int) -> dict | None:
    """The shared-memory prototype of the integration spec (``../shared``), same
    frames, same run: this VM's speed drifts by tens of percent over a day
    (memcpy 7-12 GB/s), so the spec's 3-4 GB/s is only comparable to a figure
    measured beside it."""
    import re
    if not PROTOTYPE.exists():
        return None
    proc = subprocess.run([sys.executable, str(PROTOTYPE), "--mode", "shm", "--frames",
                           str(frames), "--repeat", str(repeat)],
                          capture_output=True, text=True, cwd=HERE)
    m = re.search(r"(\d+) MB/s \(range (\d+)-(\d+)\), (\d+) frames/s.*maxrss (\d+) MiB, "
                  r"ok=(\w+)", proc.stdout)
    if proc.returncode != 0 or m is None:
        print("prototype failed:", proc.stdout[-1000:], proc.stderr[-2000:], file=sys.stderr)
        return None
    mb, lo, hi, fps, rss, ok = m.groups()
    return {"mode": "proto", "frames": frames, "frames_per_s": int(fps), "MB_per_s": int(mb),
            "MB_per_s_range": [int(lo), int(hi)], "peak_main_rss_MiB": int(rss),
            "peak_tree_pss_MiB": None, "result_ok": ok == "True"}


DATA = Path(os.environ.get("ANCHOR_DATA", "/tmp/anchor-data"))
DECTRIS_CASES = [
    # label, dump name, nav, frames_per_partition, generator shape
    ("512x512 u16 bslz4", "dectris-512x512-u16-16384.dump", (128, 128), None, (512, 512)),
    ("96x96 u16 bslz4", "dectris-96x96-u16-65536.dump", (256, 256), None, (96, 96)),
    ("96x96 u16 bslz4 fpp=1024", "dectris-96x96-u16-65536.dump", (256, 256), 1024, (96, 96)),
]


def _dump(name: str, nav: tuple[int, int], shape: tuple[int, int]) -> str:
    """The anchor benchmark's dump if it was generated, else one of ours."""
    path = DATA / name
    if path.exists() and Path(str(path) + ".sum.npy").exists():
        return str(path)
    return _our_dump(name, nav, shape, "legacy")


def _our_dump(name: str, nav: tuple[int, int], shape: tuple[int, int], stream: str) -> str:
    """Our synthetic recording, stream V1 or V2 (the same pixels for both)."""
    ours = HERE / "results" / (name if stream == "legacy" else name.replace(".dump", ".v2.dump"))
    if not (ours.exists() and Path(str(ours) + ".sum.npy").exists()):
        from libertem_live_dectris.sim import write_dump
        ours.parent.mkdir(exist_ok=True)
        write_dump(ours, frames=nav[0] * nav[1], shape=shape, dtype="uint16",
                   compression="bslz4", series=34, pool_size=256, stream=stream)
    side = Path(str(ours) + ".json")
    if not side.exists():
        # what upstream's bench_dectris.py reads beside a dump (the file's size
        # stands in for the compressed bytes: headers are a few % of it)
        side.write_text(json.dumps({
            "frames": nav[0] * nav[1], "shape": list(shape), "dtype": "uint16",
            "encoding": "bs16-lz4<", "compressed_bytes": ours.stat().st_size}))
    return str(ours)


def _upstream(script: str, *args: str) -> dict | None:
    import sim_proc
    if not sim_proc.upstream_available():
        return None
    py = str(sim_proc.ANCHOR_VENV / "bin" / "python")
    proc = subprocess.run([py, str(sim_proc.ANCHOR_BENCH / script), *args],
                          capture_output=True, text=True)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    summary = [r for r in rows if r.get("kind") == "summary"]
    if proc.returncode != 0 or not summary:
        print(f"upstream {script} failed:", proc.stderr[-2000:], file=sys.stderr)
        return None
    acqs = [r for r in rows if r.get("kind") == "acq" and not r.get("warmup")]
    return {**summary[-1], "fps_all": [r["fps"] for r in acqs],
            "correct_all": all(r.get("correct", True) for r in acqs)}


def _pooled(row: dict, samples: list[float]) -> dict:
    """``row`` with median/min/max over all ``samples`` (frames/s)."""
    xs = sorted(samples)
    return {**row, "fps_median": round(xs[len(xs) // 2]), "fps_min": round(xs[0]),
            "fps_max": round(xs[-1]), "samples": len(xs)}


def dectris(repeat: int) -> list[dict]:
    """Per case: our driver and upstream's on upstream's simulator (stream V1),
    then our driver on our simulator replaying the same pixels as V1, as V2,
    and as V2 through two receiving sockets."""
    import sim_proc
    rows = []
    sim = "upstream" if sim_proc.upstream_available() else "ours"
    for label, name, nav, fpp, shape in DECTRIS_CASES:
        dump = _dump(name, nav, shape)
        common = ["--nav", *map(str, nav), "--repeat", str(repeat)]
        if fpp:
            common += ["--fpp", str(fpp)]
        rows += _run("dectris.py", "--dump", dump, *common, "--sim", sim, "--label", label)
        up_args = ["--file", dump, "--nav", *map(str, nav), "--repeats", str(repeat)]
        if fpp:
            up_args += ["--fpp", str(fpp)]
        up = _upstream("bench_dectris.py", *up_args)
        if up is not None:
            rows.append({"detector": "dectris", "impl": "upstream", "sim": "upstream",
                         "label": label, "frames": up["frames"], "fps_median": up["fps_median"],
                         "fps_min": up["fps_min"], "fps_max": up["fps_max"],
                         "MBps_decoded": up.get("MBps_raw_median"),
                         "peak_tree_pss_MiB": up.get("client_peak_pss_mib"),
                         "result_ok": True})
        for stream, receivers, tag in (("legacy", 1, "V1"), ("v2", 1, "V2"), ("v2", 2, "V2 x2")):
            rows += _run("dectris.py", "--dump", _our_dump(name, nav, shape, stream), *common,
                         "--sim", "ours", "--stream", stream, "--receivers", str(receivers),
                         "--label", f"{label} {tag}")
    return rows


MERLIN_CASES = [
    # label, our simulator's format args, MIB for the upstream comparison: (name, generator
    # args); "r12"/"quad" files come from our bench/gen_mib.py (upstream's generator writes
    # no raw 12-bit or quad files), the others from upstream's gen_mib.py
    ("256x256 12-bit sorted U16", ["--depth", "12"], ("merlin-256x256-u16-16384.mib", [])),
    ("256x256 12-bit raw", ["--depth", "12", "--raw"],
     ("merlin-256x256-r12-16384.mib", ["--depth", "12", "--raw"])),
    ("quad 512x512 12-bit raw", ["--depth", "12", "--raw", "--layout", "2x2"],
     ("merlin-512x512-quad-r12-16384.mib", ["--depth", "12", "--raw", "--layout", "2x2"])),
    ("256x256 1-bit raw", ["--depth", "1", "--raw"],
     ("merlin-256x256-r1-16384.mib", ["--raw", "--lam-disk", "0.5", "--lam-bg", "0.01"])),
    ("256x256 6-bit sorted U08", ["--depth", "6"], ("merlin-256x256-u8-16384.mib", [])),
]


def _mib(name: str, gen_args: list[str]) -> str | None:
    """The MIB file for the upstream comparison, generated on first use."""
    import sim_proc
    if not sim_proc.upstream_available():
        return None
    path = DATA / name
    if not (path.exists() and Path(str(path) + ".sum.npy").exists()):
        DATA.mkdir(parents=True, exist_ok=True)
        kind = name.split("-")[2]
        if kind in ("r12", "quad"):
            cmd = [sys.executable, str(HERE / "gen_mib.py"), *gen_args]
        else:
            depth = {"u16": "12", "u8": "6", "r1": "1"}[kind]
            cmd = [str(sim_proc.ANCHOR_VENV / "bin" / "python"),
                   str(sim_proc.ANCHOR_BENCH / "gen_mib.py"), "--depth", depth, *gen_args]
        subprocess.run([*cmd, "--frames", "16384", "--out", str(path)], check=True,
                       capture_output=True)
        os.sync()
    return str(path)


def merlin(repeat: int) -> list[dict]:
    """Merlin end to end, 16384 frames per acquisition: our MerlinSim
    (unthrottled, own process) per format; where upstream is installed, upstream
    and our driver on the same MIB stream from upstream's simulator."""
    rows = []
    for label, fmt, mib in MERLIN_CASES:
        rep = str(max(1, repeat - 1)) if "quad" in label else str(repeat)
        rows += _run("merlin.py", *fmt, "--nav", "128", "128", "--repeat", rep,
                     "--label", label)
        path = _mib(*mib) if mib else None
        if path is None:
            continue
        # the 8.6 GB quad file: the simulator serves it from the page cache instead of
        # copying it into a memfd first (minutes)
        cached = "NONE" if "quad" in label else "MEMFD"
        # ours and upstream alternate (A B A B): this VM's speed drifts within minutes,
        # and one long block each would hand the drift to whichever ran second
        ours: list[dict] = []
        ups: list[dict] = []
        for _round in range(2):
            ours += _run("merlin.py", "--mib", path, "--sim", "upstream", "--nav", "128", "128",
                         "--repeat", rep, "--label", label + " (MIB)", "--cached", cached)[-1:]
            up = _upstream("bench_merlin.py", "--file", path, "--nav", "128", "128",
                           "--repeats", rep, "--cached", cached)
            ups += [up] if up is not None else []
        rows.append(_pooled({**ours[-1], "result_ok": all(r["result_ok"] for r in ours)},
                            [f for r in ours for f in r["fps_all"]]))
        if ups:
            rows.append(_pooled({"detector": "merlin", "impl": "upstream", "sim": "upstream",
                                 "label": label + " (MIB)", "frames": ups[-1]["frames"],
                                 "MBps_decoded": ups[-1].get("MBps_raw_median"),
                                 "peak_tree_pss_MiB": ups[-1].get("client_peak_pss_mib"),
                                 "result_ok": all(u["correct_all"] for u in ups)},
                                [f for u in ups for f in u["fps_all"]]))
    return rows


def _print_driver(rows: list[dict]) -> None:
    print(f"{'detector':9} {'case':34} {'impl':9} {'sim':9} {'fps median':>10} "
          f"{'min-max':>15} {'MB/s':>6} {'PSS MiB':>8} {'CPU us/frame sim/main/workers':>30} ok")
    for r in rows:
        mm = f"{r['fps_min']}-{r['fps_max']}"
        cpu = r.get("cpu_us_per_frame")
        cpu_s = "/".join(str(cpu[k]) for k in ("sim", "main", "workers")) if cpu else ""
        print(f"{r['detector']:9} {r['label']:34} {r['impl']:9} {r['sim']:9} "
              f"{r['fps_median']:>10} {mm:>15} {r.get('MBps_decoded') or '':>6} "
              f"{r.get('peak_tree_pss_MiB') or '':>8} {cpu_s:>30} {r['result_ok']}")


TPX3_CASES = [
    # nav, events per frame, frames per chunk, anchor stream file (upstream's gen_tpx3.py)
    (512, 100, 128, "tpx3-512x512-h100.tpx3"),
    (256, 1000, 16, "tpx3-256x256-h1000.tpx3"),
]


def _tpx3_file(nav: int, events: int, fpc: int, name: str) -> str | None:
    """The anchor TPX3 stream file (generated with upstream's gen_tpx3.py on first use)."""
    import sim_proc
    if not sim_proc.upstream_available():
        return None
    path = DATA / name
    if not (path.exists() and Path(str(path) + ".sum.npy").exists()
            and Path(str(path) + ".json").exists()):
        DATA.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(sim_proc.ANCHOR_VENV / "bin" / "python"),
                        str(sim_proc.ANCHOR_BENCH / "gen_tpx3.py"), "--nav", str(nav), str(nav),
                        "--hits", str(events), "--frames-per-chunk", str(fpc),
                        "--out", str(path)], check=True, capture_output=True)
        os.sync()  # writeback during a timed run halves the rates (anchor caveat 3)
    return str(path)


def tpx3(repeat: int, dense: bool = True) -> list[dict]:
    """ASI TPX3 end to end (anchor configurations: upstream 410k and 77k positions/s).

    Per case: our driver on our simulator (SumUDF on CSR tiles, and a dense
    numpy sum); where the anchor venv exists, also our driver on upstream's
    simulator replaying the anchor file, and upstream's own bench_tpx3.py on
    that same file, in the same run."""
    rows = []
    for nav, events, fpc, name in TPX3_CASES:
        label = f"{nav}x{nav} {events} ev"
        for udf in ("sparse", "dense") if dense else ("sparse",):
            for r in _run("tpx3.py", "--nav", str(nav), str(nav), "--events", str(events),
                          "--udf", udf, "--repeat", str(repeat)):
                rows.append({**r, "label": label})
        path = _tpx3_file(nav, events, fpc, name)
        if path is None:
            continue
        for r in _run("tpx3.py", "--file", path, "--sim", "upstream", "--udf", "sparse",
                      "--repeat", str(repeat)):
            rows.append({**r, "label": label})
        up = _upstream("bench_tpx3.py", "--file", path, "--repeats", str(repeat))
        if up is not None:
            n = up["frames"]
            rows.append({
                "bench": "tpx3", "impl": "upstream", "sim": "upstream", "label": label,
                "nav": [nav, nav], "events_per_frame": round(up["mean_events_per_frame"], 1),
                "udf": "SumUDF (upstream)", "positions_per_s": round(up["fps_median"]),
                "positions_per_s_range": [round(up["fps_min"]), round(up["fps_max"])],
                "Mevents_per_s": round(up["fps_median"] * up["mean_events_per_frame"] / 1e6, 1),
                "peak_tree_pss_MiB": up.get("client_peak_pss_mib"), "frames": n,
                "result_ok": True,  # bench_tpx3.py raises on a wrong sum
            })
    return rows


def _print_tpx3(rows: list[dict]) -> None:
    print(f"{'tpx3 case':16} {'impl':9} {'sim':9} {'udf':24} {'pos/s':>9} {'min-max':>17} "
          f"{'Mev/s':>6} {'PSS MiB':>8} ok")
    for r in rows:
        lo, hi = r["positions_per_s_range"]
        print(f"{r['label']:16} {r.get('impl', 'ours'):9} {r.get('sim', 'ours'):9} "
              f"{r['udf']:24} {r['positions_per_s']:>9} {f'{lo}-{hi}':>17} "
              f"{r['Mevents_per_s']:>6} {r.get('peak_tree_pss_MiB') or '':>8} "
              f"{r['result_ok']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="*", default=["transport", "dectris", "merlin", "tpx3"])
    p.add_argument("--frames", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--no-dense", action="store_true",
                   help="tpx3: skip the dense-tile rows (about 6k positions/s: minutes)")
    a = p.parse_args()
    rows: list[dict] = []
    driver_rows: list[dict] = []
    if "dectris" in a.what:
        driver_rows += dectris(max(a.repeat, 3))
    if "merlin" in a.what:
        driver_rows += merlin(max(a.repeat, 3))
    if "transport" in a.what:
        rows += transport(a.frames, a.repeat)
    tpx3_rows = tpx3(a.repeat, dense=not a.no_dense) if "tpx3" in a.what else []
    record_rows = _run("record.py", "--repeat", str(a.repeat)) if "record" in a.what else []
    cluster_rows = []
    if "cluster" in a.what:
        for shape, nav in ((512, ("64", "64")), (96, ("128", "128"))):
            cluster_rows += _run("cluster.py", "--shape", str(shape), "--nav", *nav,
                                 "--repeat", str(a.repeat))
        for r in cluster_rows:
            print(f"cluster {r['sig'][0]}x{r['sig'][1]} {r['config']:6} {r['fps_median']:>8} "
                  f"frames/s ({r['fps_min']}-{r['fps_max']}) "
                  f"{r['bytes_per_frame'] or '-'} B/frame ok={r['result_ok']}")
    for r in record_rows:
        print(f"record {r['label']:20} {r['impl']:9} {r['fps_median']:>8} frames/s "
              f"({r['fps_min']}-{r['fps_max']}) {r['file_MiB']:>7} MiB ok={r['result_ok']}")
    if tpx3_rows:
        _print_tpx3(tpx3_rows)
    if driver_rows:
        _print_driver(driver_rows)
    print(f"{'mode':6} {'frames':>7} {'frames/s':>9} {'MB/s':>6} {'range MB/s':>12} "
          f"{'CPU us/frame':>12} {'main RSS':>9} {'tree PSS':>9} ok")
    for r in rows:
        rng = f"{r['MB_per_s_range'][0]}-{r['MB_per_s_range'][1]}"
        print(f"{r['mode']:6} {r['frames']:>7} {r['frames_per_s']:>9} {r['MB_per_s']:>6} "
              f"{rng:>12} {r.get('cpu_us_per_frame') or '-':>12} "
              f"{r['peak_main_rss_MiB']:>7}Mi {r['peak_tree_pss_MiB'] or '-':>7}Mi "
              f"{r['result_ok']}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(
        rows + driver_rows + tpx3_rows + record_rows + cluster_rows, indent=2))


if __name__ == "__main__":
    main()
