"""Ground truth: SumUDF over live DECTRIS acquisitions equals the simulator's sum.

Everything goes through the public API of a real ``LiveContext`` (pipelined
executor, one worker per core) and real sockets (SIMPLON REST over HTTP,
ZeroMQ stream) to a ``DectrisSim``. Sums are compared exactly: the frames are
small integer counts, so float32 tile sums are exact and any lost, repeated,
misplaced or mis-decoded pixel shows.
"""
from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import math  # noqa: E402
import threading  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from libertem.udf.sum import SumUDF  # noqa: E402

from libertem_live.api import Hooks, LiveContext  # noqa: E402
from libertem_live_dectris.client import SimplonClient  # noqa: E402
from libertem_live_dectris.sim import DectrisSim  # noqa: E402

TIMEOUT = 10.0


@pytest.fixture
def make_sim(start_sim: Callable[..., DectrisSim]) -> Callable[..., DectrisSim]:
    return lambda **kw: start_sim(**{"pool_size": 16, **kw})


def connect(ctx: LiveContext, sim: DectrisSim) -> Any:
    return ctx.make_connection("dectris").open(
        api_host="127.0.0.1", api_port=sim.port, data_host="127.0.0.1",
        data_port=sim.zmqport, timeout=TIMEOUT)


def run_sum(ctx: LiveContext, aq: Any) -> np.ndarray:
    res = ctx.run_udf(dataset=aq, udf=SumUDF())
    data = res["intensity"].data
    assert data.dtype.kind == "f"
    return data.astype(np.float64)  # float32 -> float64 is exact


def assert_complete(aq: Any, n: int) -> None:
    s = aq.ledger.snapshot()
    assert (s.expected, s.received, s.decoded, s.processed, s.missing) == (n, n, n, n, 0), s


class SoftwareTrigger(Hooks):
    """Plays the scan engine for ``inte``/``ints``: once the detector is armed,
    a thread PUTs ``detector/command/trigger`` ``count`` times."""

    def __init__(self, sim: DectrisSim, count: int):
        self.port = sim.port
        self.count = count
        self.sent = 0
        self.error: BaseException | None = None
        self.thread: threading.Thread | None = None

    def on_ready_for_data(self, env: Any) -> None:
        assert tuple(env.aq.shape.nav)  # the armed acquisition is handed over
        self.thread = threading.Thread(target=self._run, name="test-scan-engine", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            with SimplonClient("127.0.0.1", self.port, timeout=TIMEOUT) as api:
                for _ in range(self.count):
                    api.sendDetectorCommand("trigger")
                    self.sent += 1
        except BaseException as e:  # noqa: BLE001 - re-raised by join()
            self.error = e

    def join(self) -> None:
        assert self.thread is not None, "on_ready_for_data was not called"
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error


def test_512x512_uint16_bslz4_active_exte(ctx, make_sim) -> None:
    """The upstream reference case: 128x128 scan of 512x512 uint16 bslz4 frames."""
    nav = (128, 128)
    n = math.prod(nav)
    sim = make_sim(frames=n, shape=(512, 512), dtype="uint16", compression="bslz4")
    with connect(ctx, sim) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=nav,
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        assert tuple(aq.shape) == nav + (512, 512)
        result = run_sum(ctx, aq)
        assert np.array_equal(result, sim.expected_sum(n))
        assert_complete(aq, n)
        # active mode disarms after the run
        assert conn.get_api_client().detectorStatus("state")["value"] == "idle"


def test_96x96_passive(ctx, make_sim) -> None:
    """ARINA's binned 96x96 frames, passive mode: armed by 'other software'."""
    nav = (128, 128)
    n = math.prod(nav)
    sim = make_sim(frames=n, shape=(96, 96), dtype="uint16", compression="bslz4")
    with connect(ctx, sim) as conn:
        conn.get_api_client().sendDetectorCommand("arm")
        pending = conn.wait_for_acquisition(timeout=TIMEOUT)
        assert pending is not None, "the armed series was not seen"
        assert pending.nimages == n
        aq = ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=nav)
        assert tuple(aq.shape) == nav + (96, 96)
        result = run_sum(ctx, aq)
        assert np.array_equal(result, sim.expected_sum(n))
        assert_complete(aq, n)


def test_slots_smaller_than_a_stack(ctx, make_sim, receive_loop) -> None:
    """Ring slots that hold only a few frames: the receiver moves to the next
    slot by bytes (not by frame count) hundreds of times, in both loops."""
    from libertem_live.driver import RingConfig
    nav = (16, 32)
    n = math.prod(nav)
    sim = make_sim(frames=n, shape=(96, 96), dtype="uint16", compression="bslz4")
    with ctx.make_connection("dectris").open(
            api_host="127.0.0.1", api_port=sim.port, data_host="127.0.0.1",
            data_port=sim.zmqport, timeout=TIMEOUT,
            ring=RingConfig(num_slots=4, slot_bytes=8 << 10, max_frames=64)) as conn:
        aq = ctx.make_acquisition(conn=conn, nav_shape=nav,
                                  controller=conn.get_active_controller(trigger_mode="exte"))
        assert np.array_equal(run_sum(ctx, aq), sim.expected_sum(n))
        assert_complete(aq, n)


# Non-square frames (height != width) so that a [width, height] mix-up shows.
SMALL = (40, 56)


@pytest.mark.parametrize("dtype, compression, trigger_mode, nav", [
    ("uint8", "bslz4", "exts", (16, 16)),
    ("uint32", "bslz4", "ints", (16, 12)),
    ("uint16", "lz4", "inte", (6, 8)),
    ("uint16", "none", "exte", (16, 16)),
])
def test_active(ctx, make_sim, dtype, compression, trigger_mode, nav) -> None:
    n = math.prod(nav)
    # the simulator starts configured for a different count: the controller must set it
    sim = make_sim(frames=n + 5, shape=SMALL, dtype=dtype, compression=compression)
    hooks = None
    if trigger_mode in ("inte", "ints"):
        hooks = SoftwareTrigger(sim, n if trigger_mode == "inte" else 1)
    with connect(ctx, sim) as conn:
        aq = ctx.make_acquisition(
            conn=conn, nav_shape=nav, hooks=hooks,
            controller=conn.get_active_controller(trigger_mode=trigger_mode))
        assert aq.dtype == np.dtype(dtype)
        result = run_sum(ctx, aq)
        if hooks is not None:
            hooks.join()
            assert hooks.sent == hooks.count
        api = conn.get_api_client()
        cfg = {k: api.detectorConfig(k)["value"] for k in ("trigger_mode", "nimages", "ntrigger")}
        assert np.array_equal(result, sim.expected_sum(n))
        assert_complete(aq, n)
        assert cfg["trigger_mode"] == trigger_mode
        if trigger_mode == "ints":  # one trigger, n timed images
            assert (cfg["nimages"], cfg["ntrigger"]) == (n, 1)
        else:  # one image per trigger
            assert (cfg["nimages"], cfg["ntrigger"]) == (1, n)


def test_uncompressed_passive_twice(ctx, make_sim) -> None:
    """Passive mode on one connection for two series in a row (new series id each)."""
    nav = (8, 16)
    n = math.prod(nav)
    sim = make_sim(frames=n, shape=SMALL, dtype="uint16", compression="none")
    with connect(ctx, sim) as conn:
        seen = []
        for _ in range(2):
            conn.get_api_client().sendDetectorCommand("arm")
            pending = conn.wait_for_acquisition(timeout=TIMEOUT)
            assert pending is not None
            seen.append(pending.series)
            aq = ctx.make_acquisition(conn=conn, pending_aq=pending, nav_shape=nav)
            assert np.array_equal(run_sum(ctx, aq), sim.expected_sum(n))
            assert_complete(aq, n)
        assert seen[0] != seen[1]


def neighbour_mean(total: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``total`` with every ``bad`` pixel replaced by the mean of its good
    neighbours in the 3x3 environment, clipped at the frame edges."""
    out = total.copy()
    h, w = total.shape
    for y, x in zip(*np.nonzero(bad)):
        ys, xs = slice(max(y - 1, 0), y + 2), slice(max(x - 1, 0), x + 2)
        good = ~bad[ys, xs]
        out[y, x] = total[ys, xs][good].mean()
    return out


def test_corrections_patch_defective_pixels(ctx, make_sim) -> None:
    """``enable_corrections=True`` reads the detector's pixel mask and hands the
    defective pixels to LiberTEM as excluded pixels. LiberTEM
    (``libertem.io.corrections.detector.correct``) replaces each of them, in
    every frame, by the mean of the non-excluded pixels of its 3x3
    neighbourhood (clipped at the edges), so the hot value the detector puts
    there (2**16 - 1, as ``mask_to_zero`` is off) never reaches the sum; every
    other pixel is untouched. The mean is linear, so the patched sum is the
    neighbour mean of the raw sum."""
    nav = (8, 8)
    n = math.prod(nav)
    mask = np.zeros(SMALL, np.uint32)
    defective = [(0, 0), (5, 7), (5, 8), (20, 30), (39, 55)]  # corners, an adjacent pair
    for y, x in defective:
        mask[y, x] = 1 << (y % 5)  # any nonzero bit means "defective"
    bad = mask != 0
    sim = make_sim(frames=n, shape=SMALL, dtype="uint16", compression="bslz4", pixel_mask=mask)
    raw = sim.expected_sum(n)
    hot = float(n * np.iinfo(np.uint16).max)
    assert np.all(raw[bad] == hot), "the simulator must send the defective pixels hot"

    with connect(ctx, sim) as conn:
        aq = ctx.make_acquisition(
            conn=conn, nav_shape=nav,
            controller=conn.get_active_controller(trigger_mode="exte", enable_corrections=True))
        result = run_sum(ctx, aq)
        assert_complete(aq, n)
        # without corrections the same detector gives the hot sum
        aq_raw = ctx.make_acquisition(conn=conn, nav_shape=nav,
                                      controller=conn.get_active_controller(trigger_mode="exte"))
        uncorrected = run_sum(ctx, aq_raw)
    assert np.array_equal(uncorrected, raw)
    assert np.array_equal(result[~bad], raw[~bad]), "good pixels must be untouched"
    assert np.all(result[bad] < hot / 100), f"excluded pixels still hot: {result[bad]}"
    # per-frame means of 3 or 5 neighbours are not exact in float32
    expected = neighbour_mean(raw, bad)
    np.testing.assert_allclose(result[bad], expected[bad], rtol=1e-6)
