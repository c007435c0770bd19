"""Upstream LiberTEM-live's RecordUDF on a running DECTRIS simulator: run by
bench/record.py with the anchor venv's Python (upstream's packages only).
One untimed warm-up, then ``--repeat`` timed recordings, from
``make_acquisition`` to the file written; ``sync`` after each, outside the
timing; the last file is checked against ``--expected`` (the dump's sum).
Prints one JSON line."""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--api-port", type=int, required=True)
    p.add_argument("--zmq-port", type=int, required=True)
    p.add_argument("--nav", type=int, nargs=2, required=True)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", required=True)
    p.add_argument("--expected", required=True)
    a = p.parse_args()

    from libertem_live.api import LiveContext
    from libertem_live.udf.record import RecordUDF

    walls: list[float] = []
    ok = True
    nbytes = 0
    with LiveContext() as ctx:
        conn = ctx.make_connection("dectris").open(
            api_host="127.0.0.1", api_port=a.api_port, data_host="127.0.0.1",
            data_port=a.zmq_port)
        try:
            for i in range(1 + a.repeat):
                t0 = time.perf_counter()
                aq = ctx.make_acquisition(
                    conn=conn, nav_shape=tuple(a.nav),
                    controller=conn.get_active_controller(trigger_mode="exte"))
                ctx.run_udf(dataset=aq, udf=RecordUDF(a.out))
                dt = time.perf_counter() - t0
                os.sync()
                nbytes = os.path.getsize(a.out)
                if i > 0:
                    walls.append(dt)
                if i == a.repeat:
                    arr = np.load(a.out, mmap_mode="r")
                    got = sum((arr[k].astype(np.float64).sum(axis=0)
                               for k in range(arr.shape[0])), np.zeros(arr.shape[2:]))
                    ok = bool(np.array_equal(got, np.load(a.expected)))
                os.unlink(a.out)
        finally:
            conn.close()
    print(json.dumps({"walls": walls, "nbytes": nbytes, "ok": ok}), flush=True)


if __name__ == "__main__":
    main()
