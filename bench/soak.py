"""Soak: hundreds of acquisitions in one LiveContext, as a long session at the
microscope, with Ctrl-C now and then; what the process holds must stay flat.

Every driver with its simulator in this process, one connection each, runs
taken in turn (memory, dectris, merlin, asi_tpx3), active and passive mode
alternating where the driver has both; every ``--interrupt-every``-th run is
an active run with a slow UDF that a real SIGINT (sent to this process by a
timer) interrupts.  Every completed run is checked against the simulator's
ground truth.  Samples of the main process's RSS, the workers' RSS, open
file descriptors, threads, child processes and shared-memory segments are
taken from run ``--baseline`` on; the exit status is 1 when any grew.

    python bench/soak.py --runs 300          # or: python3 dev.py -- -s soak
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
from typing import Any, Callable

import numpy as np

NAV = (32, 32)
N = math.prod(NAV)


def _rss_kib(pid: int | str = "self") -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _psm_mapped() -> int:
    with open("/proc/self/maps") as f:
        return len({line.split(None, 5)[-1] for line in f if "/dev/shm/psm_" in line})


def sample(ctx: Any) -> dict[str, int]:
    import multiprocessing
    workers = [w.process.pid for w in ctx.executor._pool.workers]
    return {
        "rss_mib": _rss_kib() // 1024,
        "workers_rss_mib": sum(_rss_kib(p) for p in workers) // 1024,
        "fds": len(os.listdir("/proc/self/fd")),
        "threads": threading.active_count(),
        "children": len(multiprocessing.active_children()),
        "shm": _psm_mapped(),
    }


class Driver:
    """One driver, its simulator and an open connection."""

    def __init__(self, name: str, ctx: Any, params: dict[str, Any], expected: np.ndarray,
                 arm: Callable[[Any], None] | None, controller: dict[str, Any] | None,
                 stop: Callable[[], None], faults: frozenset[Any],
                 inject: Callable[[Any], None] | None):
        self.name = name
        self.params = params
        self.conn = ctx.make_connection(name).open(**params)
        self.expected = expected
        self.arm = arm
        self.controller = controller
        self.stop = stop
        self.faults = faults
        self._inject = inject

    def reopen(self, ctx: Any, **overrides: Any) -> None:
        self.conn.close()
        self.conn = ctx.make_connection(self.name).open(**{**self.params, **overrides})

    def inject(self, ctx: Any, fault: Any) -> None:
        """The next acquisition carries ``fault`` (the memory driver takes it
        as a connection parameter: its connection is opened again)."""
        if self._inject is None:
            self.reopen(ctx, fault=str(fault))
        else:
            self._inject(fault)

    def acquisition(self, ctx: Any, mode: str) -> Any:
        if mode == "active":
            return ctx.make_acquisition(conn=self.conn, nav_shape=NAV,
                                        controller=self.conn.get_active_controller(
                                            **(self.controller or {})))
        assert self.arm is not None
        self.arm(self.conn)
        pending = self.conn.wait_for_acquisition(20.0)
        assert pending is not None, f"{self.name}: no acquisition started"
        return ctx.make_acquisition(conn=self.conn, nav_shape=NAV, pending_aq=pending)


def drivers(ctx: Any) -> list[Driver]:
    from libertem_live_asi_tpx3.sim import Tpx3Sim
    from libertem_live_dectris.sim import DectrisSim
    from libertem_live_merlin.sim import MerlinSim

    from libertem_live.detectors.memory.receiver import SUPPORTED_FAULTS as MEMORY_FAULTS
    from libertem_live_asi_tpx3.sim.faults import SUPPORTED_FAULTS as TPX3_FAULTS
    from libertem_live_dectris.sim.faults import SUPPORTED_FAULTS as DECTRIS_FAULTS
    from libertem_live_merlin.sim.faults import SUPPORTED_FAULTS as MERLIN_FAULTS

    found = []
    data = np.random.default_rng(1).integers(0, 4096, size=NAV + (32, 32), dtype=np.uint16)
    found.append(Driver("memory", ctx, {"data": data, "passive_count": 0},
                        data.reshape(N, -1).sum(axis=0).reshape(32, 32).astype(np.float64),
                        arm=lambda c: c.announce(), controller={}, stop=lambda: None,
                        faults=MEMORY_FAULTS, inject=None))

    dsim = DectrisSim(frames=N, shape=(32, 32), dtype="uint16", compression="bslz4",
                      pool_size=16).start()
    dsim.wait_for_listen()
    found.append(Driver(
        "dectris", ctx, {"api_host": "127.0.0.1", "api_port": dsim.port,
                         "data_host": "127.0.0.1", "data_port": dsim.zmqport, "timeout": 10},
        dsim.expected_sum(N), arm=lambda c: c.get_api_client().sendDetectorCommand("arm"),
        controller={"trigger_mode": "exte", "frame_time": 1e-4}, stop=dsim.stop,
        faults=DECTRIS_FAULTS, inject=dsim.inject))

    msim = MerlinSim(frames=N, scan_shape=NAV, counter_depth=12, raw=True, pool_size=8).start()

    def merlin_arm(conn: Any) -> None:
        """What the Merlin software does: internal trigger (an active run
        before may have left soft triggering set), then start."""
        assert msim.wait_idle(10)
        control = conn.get_control()
        control.set("TRIGGERSTART", 0)
        control.set("NUMFRAMESTOACQUIRE", N)
        control.cmd("STARTACQUISITION")

    found.append(Driver(
        "merlin", ctx, {"api_host": "127.0.0.1", "api_port": msim.control_port,
                        "data_host": "127.0.0.1", "data_port": msim.data_port, "timeout": 10},
        msim.expected_sum(N), arm=merlin_arm, controller={"soft_trigger": True},
        stop=msim.stop, faults=MERLIN_FAULTS, inject=msim.inject_fault))

    tsim = Tpx3Sim(nav_shape=NAV, sig_shape=(64, 64), events_per_frame=12, frames_per_chunk=8,
                   wait_for_trigger=True, acquisitions_per_connection=None, seed=3)
    tsim.start()
    tsim.wait_for_listen()
    found.append(Driver("asi_tpx3", ctx, {"data_host": "127.0.0.1", "data_port": tsim.port,
                                          "timeout": 10},
                        tsim.expected_sum(), arm=lambda c: tsim.trigger(), controller=None,
                        stop=tsim.stop, faults=TPX3_FAULTS, inject=tsim.inject))
    return found


def fault_loop(reps: int, only: list[str] | None = None) -> int:
    """Every fault kind of every driver, ``reps`` times in one context each:
    the faulty run ends (with its error, or completes where the kind allows),
    the next run is exact, each within a bound; then ``ctx.close()`` returns
    within a bound.  Faults end runs early while workers still hold partitions,
    which is where closing used to hang.  ``only``: ``DRIVER`` or
    ``DRIVER:KIND`` entries to run instead of all."""
    from libertem.udf.sum import SumUDF

    from libertem_live.api import LiveContext
    from libertem_live.driver import Fault
    from libertem_live_testing.checks import assert_sum_equal

    bad: list[str] = []
    setup_ctx = LiveContext(executor="inline")
    pool = drivers(setup_ctx)
    t_start = time.monotonic()
    try:
        for drv in pool:
            mode = "active" if drv.controller is not None else "passive"
            for kind in sorted(drv.faults, key=lambda k: k.value):
                if only and drv.name not in only and f"{drv.name}:{kind.value}" not in only:
                    continue
                ctx = LiveContext()
                drv.reopen(ctx, timeout=3.0)
                # the first run of a context compiles the decoder in the workers
                # (seconds): not what the bounds are about
                ctx.run_udf(dataset=drv.acquisition(ctx, mode), udf=SumUDF())
                worst_fault = worst_next = 0.0
                fault_times: list[float] = []
                errors: dict[str, int] = {}
                for _ in range(reps):
                    drv.inject(ctx, Fault(kind, N // 2))
                    t0 = time.monotonic()
                    try:
                        ctx.run_udf(dataset=drv.acquisition(ctx, mode), udf=SumUDF())
                        errors["none"] = errors.get("none", 0) + 1
                    except Exception as e:
                        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                    fault_times.append(time.monotonic() - t0)
                    worst_fault = max(worst_fault, fault_times[-1])
                    t0 = time.monotonic()
                    try:
                        res = ctx.run_udf(dataset=drv.acquisition(ctx, mode), udf=SumUDF())
                        assert_sum_equal(res["intensity"].data, drv.expected, "after the fault")
                    except Exception as e:
                        bad.append(f"{drv.name} {kind.value}: the run after the fault: {e!r}")
                    worst_next = max(worst_next, time.monotonic() - t0)
                t0 = time.monotonic()
                drv.reopen(setup_ctx)
                ctx.close()
                closed = time.monotonic() - t0
                print(f"{drv.name:8} {mode:7} {kind.value:22} x{reps}: "
                      f"{', '.join(f'{k} {v}' for k, v in sorted(errors.items()))}; "
                      f"fault run median {sorted(fault_times)[len(fault_times) // 2]:.1f} s, "
                      f"worst {worst_fault:.1f} s, worst next run {worst_next:.1f} s, "
                      f"close {closed:.1f} s", flush=True)
                if worst_fault > 20 or worst_next > 20 or closed > 30:
                    bad.append(f"{drv.name} {kind.value}: too slow")
    finally:
        for d in pool:
            d.conn.close()
            d.stop()
        setup_ctx.close()
    print(f"{time.monotonic() - t_start:.0f} s")
    if bad:
        print("FAILED:\n  " + "\n  ".join(bad))
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--interrupt-every", type=int, default=25)
    parser.add_argument("--baseline", type=int, default=20,
                        help="the run whose sample the later ones are compared with")
    parser.add_argument("--every", type=int, default=20, help="sample every N runs")
    parser.add_argument("--faults", type=int, default=0, metavar="REPS",
                        help="instead: every fault kind of every driver REPS times in a row")
    parser.add_argument("--only", nargs="*", metavar="DRIVER[:KIND]",
                        help="with --faults: only these drivers or fault kinds")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also as a background job
    if args.faults:
        return fault_loop(args.faults, args.only)

    from libertem.udf.sum import SumUDF

    from libertem_live.api import LiveContext
    from libertem_live_testing.checks import assert_sum_equal
    from libertem_live_testing.interrupt_runner import SlowSumUDF

    ctx = LiveContext()
    pool = drivers(ctx)
    active_capable = [d for d in pool if d.controller is not None]
    samples: list[tuple[int, dict[str, int]]] = []
    counts = {"complete": 0, "interrupted": 0}
    t_start = time.monotonic()
    try:
        for i in range(1, args.runs + 1):
            interrupt = i % args.interrupt_every == 0
            if interrupt:
                drv = active_capable[(i // args.interrupt_every) % len(active_capable)]
                mode = "active"
            else:
                drv = pool[i % len(pool)]
                modes = ["active", "passive"] if drv.controller is not None else ["passive"]
                mode = modes[(i // len(pool)) % len(modes)]
            running = threading.Event()
            try:
                aq = drv.acquisition(ctx, mode)
                if interrupt:
                    timer = threading.Timer(
                        0.3, lambda: running.is_set() and os.kill(os.getpid(), signal.SIGINT))
                    running.set()
                    timer.start()
                    try:
                        ctx.run_udf(dataset=aq, udf=SlowSumUDF(delay_s=0.003))
                        raise AssertionError(f"run {i} ({drv.name}) was not interrupted")
                    finally:
                        running.clear()
                        timer.cancel()
                else:
                    res = ctx.run_udf(dataset=aq, udf=SumUDF())
                    assert_sum_equal(res["intensity"].data, drv.expected,
                                     f"run {i}: {drv.name} {mode}")
                    counts["complete"] += 1
            except KeyboardInterrupt:
                counts["interrupted"] += 1
            if i == args.baseline or (i > args.baseline and i % args.every == 0) or i == args.runs:
                samples.append((i, sample(ctx)))
                print(f"run {i:4d} ({time.monotonic() - t_start:6.0f} s): "
                      + "  ".join(f"{k}={v}" for k, v in samples[-1][1].items()), flush=True)
    finally:
        for d in pool:
            d.conn.close()
        ctx.close()
        for d in pool:
            d.stop()
    print(f"{counts['complete']} runs complete and exact, {counts['interrupted']} interrupted, "
          f"{time.monotonic() - t_start:.0f} s")
    base = samples[0][1]
    last_i, last = samples[-1]
    later = [s for _, s in samples[1:]]
    grown = []
    for key in ("fds", "threads", "children", "shm"):
        if last[key] > base[key]:
            grown.append(f"{key}: {base[key]} at run {samples[0][0]}, {last[key]} at run {last_i}")
        peak = max((s[key] for s in later), default=base[key])
        if peak > base[key] + 1:
            grown.append(f"{key}: {base[key]} at run {samples[0][0]}, up to {peak} later")
    for key in ("rss_mib", "workers_rss_mib"):
        # the heap of a Python process moves by tens of MiB from run to run; a
        # leak shows as a trend: the end and the typical later sample both grow
        bound = base[key] * 1.10 + 32
        typical = sorted(s[key] for s in later)[len(later) // 2] if later else base[key]
        if last[key] > bound and typical > bound:
            grown.append(f"{key}: {base[key]} MiB at run {samples[0][0]}, {last[key]} MiB at "
                         f"run {last_i} (median of the later samples {typical} MiB)")
    if grown:
        print("NOT FLAT:\n  " + "\n  ".join(grown))
        return 1
    print(f"flat from run {samples[0][0]} to run {samples[-1][0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
