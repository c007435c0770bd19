"""Write a Merlin ``.mib`` file from our simulator's synthetic frames, with the
sidecars upstream's benchmark reads (``.sum.npy``: expected SumUDF result,
``.json``: sizes).

Why: upstream's generator writes only sorted U08/U16 and raw 1-bit single-chip
files, but the Merlin issue compares raw 12-bit and the 2x2 quad too. The
simulator replays any MIB file, so upstream's receiver gets the same bytes as ours.

    python bench/gen_mib.py --depth 12 --raw --layout 2x2 --frames 16384 --out F.mib
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

from libertem_live_merlin.sim.encode import encode_frame
from libertem_live_merlin.headers import decoded_shape
from libertem_live_merlin.headers import build_frame_header
from libertem_live_merlin.sim.source import make_frames


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--depth", type=int, default=12, choices=[1, 6, 12, 24])
    p.add_argument("--raw", action="store_true")
    p.add_argument("--layout", default="1x1", choices=["1x1", "2x2", "2x2G"])
    p.add_argument("--frames", type=int, default=16384)
    p.add_argument("--distinct", type=int, default=256)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    k = min(a.distinct, a.frames)
    frames = make_frames(k, decoded_shape(a.layout), a.depth, layout=a.layout,
                         hot_pixels=False)
    encoded = [encode_frame(f, a.depth, a.layout, a.raw) for f in frames]
    fmt = encoded[0][1]
    tmp = a.out + ".tmp"
    with open(tmp, "wb") as f:
        for i in range(a.frames):
            f.write(build_frame_header(i + 1, layout=a.layout, pixel_format=fmt,
                                       counter_depth=a.depth, pad=b"\x00"))
            f.write(encoded[i % k][0])
    os.replace(tmp, a.out)
    counts = np.bincount(np.arange(a.frames) % k, minlength=k).astype(np.float64)
    np.save(a.out + ".sum.npy", np.tensordot(counts, frames.astype(np.float64), axes=(0, 0)))
    header_bytes = len(build_frame_header(1, layout=a.layout, pixel_format=fmt,
                                          counter_depth=a.depth))
    with open(a.out + ".json", "w") as f:
        json.dump({"frames": a.frames, "shape": list(frames.shape[1:]), "mib_dtype": fmt,
                   "counter_depth": a.depth, "raw": a.raw, "layout": a.layout,
                   "pixel_bytes_per_frame": len(encoded[0][0]),
                   "wire_bytes_per_frame": header_bytes + len(encoded[0][0]) + 15,
                   "distinct_frames": k}, f)


if __name__ == "__main__":
    main()
