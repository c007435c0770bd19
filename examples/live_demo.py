"""The main job: a live 4D-STEM acquisition from a simulated detector.

Starts the DECTRIS simulator when the DECTRIS driver is installed (otherwise
streams a synthetic scan through the built-in ``memory`` driver), arms it in
active mode, runs the standard live analyses on the stream while it arrives
(sum of all diffraction patterns, virtual bright field and annular dark field,
centre of mass), shows progress, checks the result against the simulator's
ground truth and writes a picture of the results.

The simulator scans a synthetic specimen (``sample="specimen"``): grains of
different orientation and thickness next to a vacuum edge, and magnetic
stripe domains that deflect the beam, so bright field shows the grains and
the edge, and the centre of mass shows the domains.

    python examples/live_demo.py --out out/demo.png
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import time

import numpy as np

# detector masks, as fractions of the frame height: the bright-field disc covers
# the direct beam wherever the specimen deflects it; the dark-field ring starts
# outside it and reaches the detector's edge
BF_RADIUS = 0.08
ADF_INNER, ADF_OUTER = 0.11, 0.48


def synthetic_scan(nav: tuple[int, int], sig: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A bright-field disk that moves a little with the scan, plus noise (the
    ``memory`` driver's data when the DECTRIS simulator is not installed)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:sig[0], :sig[1]]
    data = np.empty(nav + sig, dtype=np.uint16)
    for y in range(nav[0]):
        for x in range(nav[1]):
            cy = sig[0] / 2 + 2 * np.sin(2 * np.pi * x / nav[1])
            cx = sig[1] / 2 + 2 * np.cos(2 * np.pi * y / nav[0])
            disk = ((yy - cy) ** 2 + (xx - cx) ** 2) < (0.05 * sig[0]) ** 2
            data[y, x] = rng.poisson(0.05 + 20.0 * disk)
    return data


def detector_masks(sig: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Bright-field disc and annular dark-field ring around the frame centre."""
    yy, xx = np.mgrid[:sig[0], :sig[1]]
    r = np.hypot(yy - (sig[0] - 1) / 2, xx - (sig[1] - 1) / 2)
    h = sig[0]
    bf = (r < BF_RADIUS * h).astype(np.float32)
    adf = ((r >= ADF_INNER * h) & (r < ADF_OUTER * h)).astype(np.float32)
    return bf, adf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="out/demo.png", help="where to write the picture")
    parser.add_argument("--detector", choices=["auto", "dectris", "memory"], default="auto")
    parser.add_argument("--nav", type=int, nargs=2, default=[96, 96], metavar=("H", "W"))
    args = parser.parse_args()

    from libertem.udf.com import CoMUDF
    from libertem.udf.masks import ApplyMasksUDF
    from libertem.udf.sum import SumUDF

    from libertem_live.api import LiveContext

    nav = (args.nav[0], args.nav[1])
    n = nav[0] * nav[1]
    sig = (128, 128)
    detector = args.detector
    if detector == "auto":
        have_dectris = importlib.util.find_spec("libertem_live_dectris") is not None
        detector = "dectris" if have_dectris else "memory"

    ctx = LiveContext()
    sim = None
    try:
        if detector == "dectris":
            from libertem_live_dectris.sim import DectrisSim
            t0 = time.perf_counter()
            sim = DectrisSim(frames=n, shape=sig, dtype="uint16", compression="bslz4",
                             sample="specimen", scan=nav)
            sim.start()
            sim.wait_for_listen()
            print(f"simulator ready in {time.perf_counter() - t0:.1f} s (specimen generated and encoded)")
            conn = ctx.make_connection("dectris").open(
                api_host="127.0.0.1", api_port=sim.port,
                data_host="127.0.0.1", data_port=sim.zmqport)
            controller = conn.get_active_controller(trigger_mode="exte", frame_time=1e-3)
            truth = sim.expected_sum()
            frame_at = sim.frame
        else:
            data = synthetic_scan(nav, sig)
            conn = ctx.make_connection("memory").open(data=data)
            controller = conn.get_active_controller()
            truth = data.sum(axis=(0, 1), dtype=np.float64)
            frame_at = lambda k: data.reshape((n,) + sig)[k]  # noqa: E731

        with conn:
            aq = ctx.make_acquisition(conn=conn, nav_shape=nav, controller=controller)
            bf, adf = detector_masks(sig)
            udfs = [SumUDF(), ApplyMasksUDF(mask_factories=[lambda: bf, lambda: adf]),
                    CoMUDF.with_params(cy=(sig[0] - 1) / 2, cx=(sig[1] - 1) / 2,
                                       r=BF_RADIUS * sig[0])]
            print(f"live acquisition from the {detector} simulator: {nav[0]}x{nav[1]} scan, "
                  f"{sig[0]}x{sig[1]} frames")
            t0 = time.perf_counter()
            total, virtual, com = ctx.run_udf(dataset=aq, udf=udfs, progress=True)
            wall = time.perf_counter() - t0
        print(f"{n} frames in {wall:.2f} s ({n / wall:,.0f} frames/s); {aq.ledger.describe()}")
        exact = np.array_equal(total["intensity"].data.astype(np.float64), truth)
        print(f"sum of all frames equals the simulator's ground truth: {exact}")
        images = virtual["intensity"].data
        adf_img = images[..., 1]
        y, x = np.unravel_index(int(np.argmax(adf_img)), nav)
        _plot(args.out, total["intensity"].data, images[..., 0], adf_img,
              com["field_y"].data, com["field_x"].data, (int(y), int(x)),
              frame_at(int(y) * nav[1] + int(x)),
              f"live 4D-STEM acquisition, {detector} simulator: {nav[0]}x{nav[1]} scan of "
              f"{sig[0]}x{sig[1]} frames, {n / wall:,.0f} frames/s")
        print(f"wrote {os.path.abspath(args.out)}")
        if not exact:
            raise SystemExit("the live result does not match the ground truth")
    finally:
        if sim is not None:
            sim.stop()
        ctx.close()


def _direction_rgb(dy: np.ndarray, dx: np.ndarray, scale: float) -> np.ndarray:
    """Direction as hue, magnitude (up to ``scale``) as brightness."""
    from matplotlib.colors import hsv_to_rgb
    hue = (np.arctan2(dy, dx) / (2 * np.pi)) % 1.0
    value = np.clip(np.hypot(dy, dx) / scale, 0, 1)
    return hsv_to_rgb(np.stack([hue, np.ones_like(hue), value], axis=-1))


def _plot(path: str, total: np.ndarray, bf: np.ndarray, adf: np.ndarray, com_y: np.ndarray,
          com_x: np.ndarray, at: tuple[int, int], frame: np.ndarray, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    h = total.shape[0]
    fig, axes = plt.subplots(2, 3, figsize=(12.5, 7.6))

    def scan_axes(ax):
        ax.set_xlabel("scan x (px)")
        ax.set_ylabel("scan y (px)")

    def detector_axes(ax):
        ax.set_xlabel("detector x (px)")
        ax.set_ylabel("detector y (px)")

    ax = axes[0, 0]
    im = ax.imshow(np.log10(1 + total), cmap="magma")
    centre = ((h - 1) / 2, (h - 1) / 2)
    for r, style in ((BF_RADIUS * h, "-"), (ADF_INNER * h, "--"), (ADF_OUTER * h, "--")):
        ax.add_patch(Circle(centre, r, fill=False, color="c", lw=0.8, ls=style))
    ax.set_title("sum of all frames")
    ax.text(0.02, 0.02, "BF disc, ADF ring", color="c", fontsize=8, transform=ax.transAxes)
    detector_axes(ax)
    fig.colorbar(im, ax=ax, label="log10(1 + counts)")

    ax = axes[0, 1]
    im = ax.imshow(bf, cmap="gray")
    ax.plot(at[1], at[0], "+", color="tab:orange", ms=9, mew=1.5)
    ax.set_title("virtual bright field")
    scan_axes(ax)
    fig.colorbar(im, ax=ax, label="counts per frame")

    ax = axes[0, 2]
    im = ax.imshow(adf, cmap="inferno")
    ax.set_title("virtual annular dark field")
    scan_axes(ax)
    fig.colorbar(im, ax=ax, label="counts per frame")

    mag = np.hypot(com_y, com_x)
    scale = float(np.percentile(mag, 99)) or 1.0
    ax = axes[1, 0]
    im = ax.imshow(mag, cmap="viridis", vmax=scale)
    step = max(1, mag.shape[0] // 12)
    yy, xx = np.mgrid[:mag.shape[0]:step, :mag.shape[1]:step]
    ax.quiver(xx, yy, com_x[::step, ::step], com_y[::step, ::step], color="w",
              angles="xy", scale_units="xy", scale=scale / (0.9 * step), width=0.006)
    ax.set_title("centre of mass: beam shift")
    scan_axes(ax)
    fig.colorbar(im, ax=ax, label="shift (detector px)")

    ax = axes[1, 1]
    ax.imshow(_direction_rgb(com_y, com_x, scale))
    ax.set_title("centre of mass: shift direction")
    scan_axes(ax)
    wheel = ax.inset_axes((1.04, 0.3, 0.4, 0.4))
    wy, wx = np.mgrid[-1:1:101j, -1:1:101j]
    rgb = _direction_rgb(wy, wx, 1.0)
    rgb[np.hypot(wy, wx) > 1] = 1.0
    wheel.imshow(rgb)
    wheel.set_axis_off()
    wheel.set_title("shift\ndirection", fontsize=9)

    ax = axes[1, 2]
    im = ax.imshow(np.log10(1 + frame), cmap="magma")
    ax.set_title("one frame (at the +)")
    detector_axes(ax)
    fig.colorbar(im, ax=ax, label="log10(1 + counts)")

    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=68, pil_kwargs={"optimize": True})  # < 300 KB: it lives in the repository
    plt.close(fig)


if __name__ == "__main__":
    main()
