"""One active DECTRIS acquisition from the simulator, checked against its ground
truth; run with an installed venv's python (argv[1]: the checkout, which must
not be on the import path)."""
import sys

import numpy as np
from libertem.udf.sum import SumUDF

import libertem_live
from libertem_live.api import LiveContext
from libertem_live_dectris.sim import DectrisSim

checkout = sys.argv[1]
assert not any(p.startswith(checkout) for p in sys.path), sys.path

nav = (8, 8)
n = nav[0] * nav[1]
with DectrisSim(frames=n, shape=(40, 56), dtype="uint16", compression="bslz4",
                pool_size=4) as sim, LiveContext(executor="inline") as ctx:
    sim.wait_for_listen()
    with ctx.make_connection("dectris").open(
            api_host="127.0.0.1", api_port=sim.port, data_host="127.0.0.1",
            data_port=sim.zmqport, timeout=10.0) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=nav,
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        got = ctx.run_udf(dataset=aq, udf=SumUDF())["intensity"].data
        assert np.array_equal(got, sim.expected_sum(n)), "sum differs from the ground truth"
        snap = aq.ledger.snapshot()
        assert (snap.received, snap.processed, snap.missing) == (n, n, 0), snap
mods = [m for m in list(sys.modules.values()) if (getattr(m, "__file__", None) or "").startswith(checkout)]
assert not mods, f"modules loaded from the checkout: {mods}"
print(f"OK dectris {n} frames, libertem_live from {libertem_live.__file__}")
