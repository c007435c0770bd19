"""Stream V1 vs V2 frames/s with SumUDF through the public API (not a test; run by hand).

    cd plugins/dectris && /work/main/.nox/test_dectris/bin/python tests/bench_v2.py [N96] [N512]

Passive mode against DectrisSim on 127.0.0.1 (bslz4, uint16, a pool of 64
frames); the simulator runs in this process, so it shares the CPU with the
receiver - the figures are end-to-end rates on this machine, not detector rates.
Each row: best of 2 runs, wall time from arm to the UDF result; ``receivers=2``
is stream V2 through two sockets (the simulator deals the messages out in turn).
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
from libertem.udf.sum import SumUDF  # noqa: E402

from libertem_live.api import LiveContext  # noqa: E402
from libertem_live_dectris.client import SimplonClient  # noqa: E402
from libertem_live_dectris.sim import DectrisSim  # noqa: E402


def run(ctx: LiveContext, shape: tuple[int, int], n: int, stream: str,
        receivers: int = 1) -> float:
    best = 0.0
    with DectrisSim(frames=n, shape=shape, pool_size=64, stream=stream) as sim:
        port = sim.v2_port if stream == "v2" else sim.zmqport
        with ctx.make_connection("dectris").open(api_host="127.0.0.1", api_port=sim.port,
                                                 data_port=port, stream=stream,
                                                 timeout=30, receivers=receivers) as conn:
            for _ in range(2):
                t0 = time.perf_counter()
                SimplonClient("127.0.0.1", sim.port).sendDetectorCommand("arm")
                pending = conn.wait_for_acquisition(10)
                aq = ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=(n,))
                res = ctx.run_udf(dataset=aq, udf=SumUDF())
                dt = time.perf_counter() - t0
                assert np.array_equal(res["intensity"].data.astype(np.float64), sim.expected_sum(n))
                best = max(best, n / dt)
    return best


def main() -> None:
    n96 = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    n512 = int(sys.argv[2]) if len(sys.argv) > 2 else 8_000
    with LiveContext() as ctx:
        for shape, n in (((96, 96), n96), ((512, 512), n512)):
            for stream, receivers in (("legacy", 1), ("v2", 1), ("v2", 2)):
                print(f"{shape[0]}x{shape[1]} {stream:6s} receivers={receivers} {n:7d} frames: "
                      f"{run(ctx, shape, n, stream, receivers):10,.0f} frames/s", flush=True)


if __name__ == "__main__":
    main()
