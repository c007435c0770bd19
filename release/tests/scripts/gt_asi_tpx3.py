"""One ASI TPX3 acquisition from the simulator (passive: the driver has no
active mode), checked against its ground truth; run with an installed venv's
python (argv[1]: the checkout, which must not be on the import path)."""
import sys

import numpy as np
from libertem.udf.sum import SumUDF

import libertem_live
from libertem_live.api import LiveContext
from libertem_live_asi_tpx3.sim import Tpx3Sim

checkout = sys.argv[1]
assert not any(p.startswith(checkout) for p in sys.path), sys.path

with Tpx3Sim(nav_shape=(8, 8), sig_shape=(64, 64), events_per_frame=8,
             wait_for_trigger=True) as sim, LiveContext(executor="inline") as ctx:
    with ctx.make_connection("asi_tpx3").open(data_host="127.0.0.1", data_port=sim.port,
                                              timeout=10.0) as conn:
        sim.trigger()
        pending = conn.wait_for_acquisition(timeout=20)
        assert pending is not None, "the simulator's scan was not seen"
        aq = ctx.make_acquisition(conn=conn, pending_aq=pending)
        got = ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data
        np.testing.assert_array_equal(got, sim.expected_sum())
        assert aq.ledger.snapshot().missing == 0
mods = [m for m in list(sys.modules.values()) if (getattr(m, "__file__", None) or "").startswith(checkout)]
assert not mods, f"modules loaded from the checkout: {mods}"
print(f"OK asi_tpx3 64 frames, libertem_live from {libertem_live.__file__}")
