"""``nox -s bench``: run the benchmarks, one fresh process per configuration,
print a table and write ``bench/results/latest.json``.

    python bench/run.py                 # everything available
    python bench/run.py transport       # only the transport comparison
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


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
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="*", default=["transport"])
    p.add_argument("--frames", type=int, default=4096)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
    rows: list[dict] = []
    if "transport" in a.what:
        rows += transport(a.frames, a.repeat)
    print(f"{'mode':6} {'frames':>7} {'frames/s':>9} {'MB/s':>6} {'range MB/s':>12} "
          f"{'main RSS':>9} {'tree PSS':>9} ok")
    for r in rows:
        rng = f"{r['MB_per_s_range'][0]}-{r['MB_per_s_range'][1]}"
        print(f"{r['mode']:6} {r['frames']:>7} {r['frames_per_s']:>9} {r['MB_per_s']:>6} "
              f"{rng:>12} {r['peak_main_rss_MiB']:>7}Mi {r['peak_tree_pss_MiB']:>7}Mi "
              f"{r['result_ok']}")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
