"""Decode benchmark behind DECODE_NOTES.md (not a test; run by hand).

    cd plugins/dectris && OMP_NUM_THREADS=1 PYTHONPATH=src python tests/bench_decode.py [--all]

One core, batches of 64 frames decoded into a reused float32 buffer, low-dose
synthetic frames (libertem_live_dectris.synth), best of 3 passes.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from libertem_live_dectris.decode import DectrisDecoder
from libertem_live_dectris.sim.encode import encode
from libertem_live_dectris.sim.source import make_frames

try:
    import bitshuffle
except ImportError:
    bitshuffle = None


def run(shape, k, n, comp="bslz4", dtype=np.uint16, out_dtype=np.float32, batch=64):
    pool = make_frames(k, shape, dtype)
    blobs = [encode(f, comp) for f in pool]
    idx = np.arange(n) % k
    data = np.concatenate([np.frombuffer(blobs[j], np.uint8) for j in idx])
    sizes = np.array([len(blobs[j]) for j in idx], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    enc = {"bslz4": f"bs{np.dtype(dtype).itemsize * 8}-lz4<", "lz4": "lz4<", "none": "<"}[comp]
    ratio = pool.nbytes / sum(map(len, blobs))
    for be in ["bitshuffle", "lz4lib", "numba"]:
        try:
            d = DectrisDecoder(enc, np.dtype(dtype).name, shape, be)
        except ValueError:
            continue
        out = np.zeros((batch, *shape), out_dtype)
        d.decode(data, offsets[:1], sizes[:1], sizes[:1], out[:1])  # compile
        best = 1e9
        for _ in range(3):
            t = time.perf_counter()
            for b in range(0, n, batch):
                d.decode(data, offsets[b:b + batch], sizes[b:b + batch], sizes[b:b + batch], out)
            best = min(best, time.perf_counter() - t)
        assert (out == pool[idx[-batch:]]).all()
        print(f"{shape} {comp} {np.dtype(dtype).name}->{np.dtype(out_dtype).name} {be:10s} "
              f"{n / best:9.0f} frames/s  ratio {ratio:.1f}")
    if comp == "bslz4" and bitshuffle is not None:
        out = np.zeros((batch, *shape), out_dtype)
        bs = max(128, (8192 // np.dtype(dtype).itemsize // 8) * 8)
        t = time.perf_counter()
        for i in range(n):
            o, s = int(offsets[i]), int(sizes[i])
            out[i % batch] = bitshuffle.decompress_lz4(data[o + 12:o + s], shape, np.dtype(dtype), bs)
        print(f"{shape} {comp} wheel decompress_lz4, Python loop per frame {n / (time.perf_counter() - t):9.0f} frames/s")


if __name__ == "__main__":
    run((512, 512), 64, 1024)
    run((96, 96), 256, 16384)
    if "--all" in sys.argv:
        run((512, 512), 64, 1024, "lz4")
        run((96, 96), 256, 16384, "lz4")
        run((512, 512), 64, 512, "bslz4", np.uint32)
        run((512, 512), 64, 1024, "bslz4", np.uint8)
