"""The main job: a live 4D-STEM acquisition from a simulated detector.

Starts the DECTRIS simulator when the DECTRIS driver is installed (otherwise
streams a synthetic scan through the built-in ``memory`` driver), arms it in
active mode, runs three UDFs on the stream while it arrives (sum of all
diffraction patterns, a virtual bright-field image and the centre of mass),
shows progress, and writes a picture of the results.

    python examples/live_demo.py --out out/demo.png
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import time

import numpy as np


def synthetic_scan(nav: tuple[int, int], sig: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A bright-field disk that moves across the detector with the scan, plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:sig[0], :sig[1]]
    data = np.empty(nav + sig, dtype=np.uint16)
    for y in range(nav[0]):
        for x in range(nav[1]):
            cy = sig[0] / 2 + 6 * np.sin(2 * np.pi * x / nav[1])
            cx = sig[1] / 2 + 6 * np.cos(2 * np.pi * y / nav[0])
            disk = ((yy - cy) ** 2 + (xx - cx) ** 2) < (sig[0] / 6) ** 2
            data[y, x] = rng.poisson(0.05 + 20.0 * disk)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/demo.png", help="where to write the picture")
    parser.add_argument("--detector", choices=["auto", "dectris", "memory"], default="auto")
    parser.add_argument("--nav", type=int, nargs=2, default=[64, 64], metavar=("H", "W"))
    args = parser.parse_args()

    from libertem.udf.com import CoMUDF
    from libertem.udf.masks import ApplyMasksUDF
    from libertem.udf.sum import SumUDF

    from libertem_live.api import LiveContext

    nav = tuple(args.nav)
    detector = args.detector
    if detector == "auto":
        have_dectris = importlib.util.find_spec("libertem_live_dectris") is not None
        detector = "dectris" if have_dectris else "memory"

    ctx = LiveContext()
    sim = None
    try:
        if detector == "dectris":
            from libertem_live_dectris.sim import DectrisSim
            sim = DectrisSim(frames=int(np.prod(nav)), shape=(128, 128), dtype="uint16",
                             compression="bslz4", pool_size=int(np.prod(nav)))
            sim.start()
            sim.wait_for_listen()
            conn = ctx.make_connection("dectris").open(
                api_host="127.0.0.1", api_port=sim.port,
                data_host="127.0.0.1", data_port=sim.zmqport)
            controller = conn.get_active_controller(trigger_mode="exte", frame_time=1e-3)
            sig = (128, 128)
            truth = sim.expected_sum()
        else:
            data = synthetic_scan(nav, (128, 128))
            conn = ctx.make_connection("memory").open(data=data)
            controller = conn.get_active_controller()
            sig = data.shape[2:]
            truth = data.sum(axis=(0, 1), dtype=np.float64)

        with conn:
            aq = ctx.make_acquisition(conn=conn, nav_shape=nav, controller=controller)
            yy, xx = np.mgrid[:sig[0], :sig[1]]
            bright_field = (((yy - sig[0] / 2) ** 2 + (xx - sig[1] / 2) ** 2)
                            < (sig[0] / 5) ** 2).astype(np.float32)
            udfs = [SumUDF(), ApplyMasksUDF(mask_factories=[lambda: bright_field]),
                    CoMUDF.with_params()]
            print(f"live acquisition from the {detector} simulator: {nav[0]}x{nav[1]} scan, "
                  f"{sig[0]}x{sig[1]} frames")
            t0 = time.perf_counter()
            total, vbf, com = ctx.run_udf(dataset=aq, udf=udfs, progress=True)
            wall = time.perf_counter() - t0
        n = int(np.prod(nav))
        print(f"{n} frames in {wall:.2f} s ({n / wall:,.0f} frames/s); {aq.ledger.describe()}")
        exact = np.array_equal(total["intensity"].data.astype(np.float64), truth)
        print(f"sum of all frames equals the simulator's ground truth: {exact}")
        _plot(args.out, total["intensity"].data, vbf["intensity"].data[..., 0],
              com["field_x"].data, com["field_y"].data, detector)
        print(f"wrote {os.path.abspath(args.out)}")
        if not exact:
            raise SystemExit("the live result does not match the ground truth")
    finally:
        if sim is not None:
            sim.stop()
        ctx.close()


def _plot(path: str, total: np.ndarray, vbf: np.ndarray, cx: np.ndarray, cy: np.ndarray,
          detector: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    axes[0].imshow(np.log1p(total), cmap="magma")
    axes[0].set_title("sum of all frames (log)")
    axes[1].imshow(vbf, cmap="gray")
    axes[1].set_title("virtual bright field")
    axes[2].imshow(cx, cmap="coolwarm")
    axes[2].set_title("centre of mass, x shift")
    fig.suptitle(f"live acquisition, {detector} simulator")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=80)


if __name__ == "__main__":
    main()
