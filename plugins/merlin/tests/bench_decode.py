"""Measure single-core decode speed: ``python plugins/merlin/tests/bench_decode.py``.

Decodes batches of pre-encoded synthetic frames into a reused float32 output
(the worker-process situation: no allocation per batch) and prints frames/s,
best of several repeats. Numbers feed ``DECODE_NOTES.md``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from libertem_live_merlin.decode import MerlinDecoder
from libertem_live_merlin.headers import build_frame_header, decoded_shape, parse_frame_header
from libertem_live_merlin.sim.encode import encode_frame
from libertem_live_merlin.sim.source import make_frames

CASES = [  # (label, layout, depth, raw)
    ("256x256 12-bit sorted U16", "1x1", 12, False),
    ("256x256 12-bit raw R64", "1x1", 12, True),
    ("256x256 1-bit raw R64", "1x1", 1, True),
    ("256x256 6-bit raw R64", "1x1", 6, True),
    ("256x256 6-bit sorted U08", "1x1", 6, False),
    ("256x256 24-bit raw R64", "1x1", 24, True),
    ("512x512 quad 12-bit raw R64", "2x2", 12, True),
    ("514x514 quad 2x2G 12-bit raw R64", "2x2G", 12, True),
]


def bench(layout: str, depth: int, raw: bool, batch: int, seconds: float,
          repeats: int, dtype: type = np.float32) -> float:
    frames = make_frames(8, decoded_shape(layout), depth, layout=layout)
    payloads = [encode_frame(f, depth, layout, raw) for f in frames]
    fmt = payloads[0][1]
    dec = MerlinDecoder.from_frame_header(parse_frame_header(
        build_frame_header(1, layout=layout, pixel_format=fmt, counter_depth=depth)))
    size = dec.payload_size
    data = np.empty(batch * size, np.uint8)
    for i in range(batch):
        data[i * size:(i + 1) * size] = np.frombuffer(payloads[i % 8][0], np.uint8)
    offsets = np.arange(batch, dtype=np.int64) * size
    sizes = np.full(batch, size, np.int64)
    out = np.empty((batch,) + dec.sig_shape, dtype)
    dec.decode(data, offsets, sizes, None, out)  # compile / load cache
    best = 0.0
    for _ in range(repeats):
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            dec.decode(data, offsets, sizes, None, out)
            n += batch
        best = max(best, n / (time.perf_counter() - t0))
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seconds", type=float, default=0.5)
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    for label, layout, depth, raw in CASES:
        fps = bench(layout, depth, raw, a.batch, a.seconds, a.repeats)
        print(f"{label:36s} {fps:10.0f} frames/s")


if __name__ == "__main__":
    main()
