"""Single-core decode throughput (not a test; run by hand).

    PYTHONPATH=src:tests python tests/bench_decode.py

Builds a synthetic scan in memory (the chunk records back to back, as a
receiver would store them in a slot), then times Tpx3Decoder.decode into
float32 (n, 512, 512) and decode_csr, batch by batch, on one thread.
Results go into DECODE_NOTES.md.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from libertem_live_asi_tpx3.decode import Tpx3Decoder
from libertem_live_asi_tpx3.sim.source import SynthAcquisition, SynthConfig


def layout(acq: SynthAcquisition):
    offs, sizes, aux = [], [], []
    pos = 0
    for rec, n in zip(acq.chunks, acq.chunk_rows):
        offs += [pos] * n
        sizes += [len(rec)] * n
        aux += list(range(n))
        pos += len(rec)
    return (np.frombuffer(acq.body, np.uint8), np.array(offs, np.int64),
            np.array(sizes, np.int64), np.array(aux, np.int64))


def run(events: float, nav, fpc: int, dense_batch: int, csr_batch: int, repeats: int):
    acq = SynthAcquisition.generate(SynthConfig(
        nav_shape=nav, events_per_frame=events, frames_per_chunk=fpc))
    data, offs, sizes, aux = layout(acq)
    n = offs.size
    dec = Tpx3Decoder((512, 512), "uint32", "uint32")
    out = np.zeros((dense_batch, 512, 512), np.float32)
    res = {"events_per_frame": events, "frames": n, "frames_per_chunk": fpc,
           "entries": acq.expected_nnz_total()}
    # warm-up (JIT, page faults)
    dec.decode(data, offs[:dense_batch], sizes[:dense_batch], aux[:dense_batch], out)
    dec.decode_csr(data, offs[:csr_batch], sizes[:csr_batch], aux[:csr_batch])
    for name, batch in (("dense_f32", dense_batch), ("csr", csr_batch)):
        best = None
        for _ in range(repeats):
            total_sum = 0.0
            t0 = time.perf_counter()
            for a in range(0, n - batch + 1, batch):
                sl = slice(a, a + batch)
                if name == "dense_f32":
                    dec.decode(data, offs[sl], sizes[sl], aux[sl], out)
                else:
                    m = dec.decode_csr(data, offs[sl], sizes[sl], aux[sl])
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        done = (n // batch) * batch
        res[name] = {"batch": batch, "positions_per_s": round(done / best),
                     "Mevents_per_s": round(done * events / best / 1e6, 1)}
    # correctness spot check
    m = dec.decode_csr(data, offs, sizes, aux)
    assert np.allclose(np.asarray(m.sum(axis=0)).reshape(512, 512), acq.expected_sum())
    return res


def sim_throughput(events: float, nav, fpc: int, acquisitions: int = 4):
    """Positions/s the simulator delivers to the driver's message reader (recv
    into one reused slot)."""
    from libertem_live_asi_tpx3.headers import AcquisitionEnd, ArrayChunk
    from libertem_live_asi_tpx3.sim import Tpx3Sim

    from _helpers import messages, read_header

    with Tpx3Sim(nav_shape=nav, events_per_frame=events, frames_per_chunk=fpc,
                 acquisitions_per_connection=acquisitions, wait_for_trigger=True) as sim:
        slot = memoryview(bytearray(64 << 20))
        r = messages(sim.port)
        try:
            rates = []
            for _ in range(acquisitions):
                sim.trigger()
                t0 = None
                while True:
                    hdr = read_header(r, 10)
                    if t0 is None:
                        t0 = time.perf_counter()
                    if isinstance(hdr, ArrayChunk):
                        r.payload_into(slot)
                    elif isinstance(hdr, AcquisitionEnd):
                        break
                rates.append(nav[0] * nav[1] / (time.perf_counter() - t0))
        finally:
            r.reader.close()
        wire = len(sim.synth.body) / (nav[0] * nav[1])
    return {"sim_events_per_frame": events, "frames": nav[0] * nav[1],
            "positions_per_s_median": round(float(np.median(rates))),
            "wire_MB_per_s": round(float(np.median(rates)) * wire / 1e6)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    print(json.dumps({"cpu_count": os.cpu_count()}))
    print(json.dumps(run(100, (256, 256), 128, 64, 4096, args.repeats)))
    print(json.dumps(run(1000, (128, 128), 16, 64, 1024, args.repeats)))
    print(json.dumps(sim_throughput(100, (512, 512), 128)))
    print(json.dumps(sim_throughput(1000, (256, 256), 16)))


if __name__ == "__main__":
    main()
