"""The latest state of the acquisition a dashboard shows, and the last scans.

Written by the result hooks (on the thread that merges results), read by the
web server (its own thread).  The hooks only copy a few arrays and swap one
reference; there is no queue, so a slow browser can never make the
acquisition wait: it gets whatever is newest when it asks.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from libertem_live_dashboard import hub
from libertem_live_dashboard.udf import DashboardUDF

#: Partial results closer together than this are not copied (the next one is).
MIN_COPY_INTERVAL_S = 0.005
#: How many scans of the history keep their thumbnails (frame under the pointer).
THUMBS_KEPT = 2


@dataclass
class Snapshot:
    """One published state; never changed after publication."""

    version: int
    run_id: int | None = None
    status: str = "waiting for an acquisition"
    detector: str = ""
    mode: str = ""
    nav_shape: tuple[int, ...] = ()
    sig_shape: tuple[int, ...] = ()
    images: dict[str, np.ndarray] = field(default_factory=dict)
    thumbs: np.ndarray | None = None
    thumb_bin: int = 1
    damage: np.ndarray | None = None
    ledger: dict[str, Any] = field(default_factory=dict)
    fps: float = 0.0
    elapsed_s: float = 0.0
    regions: dict[str, list[float]] = field(default_factory=dict)
    published_at: float = 0.0
    processed: int = 0
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


class LiveState:
    """What the result hooks write and the server reads."""

    def __init__(self, history: int = 1):
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []
        self._version = 0
        self.current = Snapshot(version=0)
        self.history: deque[Snapshot] = deque(maxlen=max(1, int(history)))
        self.regions: dict[str, list[float]] | None = None
        self._regions_sent: dict[int, Any] = {}
        self._last_copy = 0.0
        self._rate: tuple[float, int] | None = None
        self.run_started: dict[int, float] = {}
        self.aq: Any = None

    # --- wiring ----------------------------------------------------------------------
    def attach(self) -> LiveState:
        hub.register(self)
        return self

    def detach(self) -> None:
        hub.unregister(self)

    def add_listener(self, fn: Callable[[], None]) -> None:
        self._listeners.append(fn)

    def remove_listener(self, fn: Callable[[], None]) -> None:
        if fn in self._listeners:
            self._listeners.remove(fn)

    def _publish(self, **changes: Any) -> Snapshot:
        with self._lock:
            self._version += 1
            snap = replace(self.current, version=self._version, published_at=time.monotonic(),
                           cache={}, **changes)
            self.current = snap
        for fn in list(self._listeners):
            try:
                fn()
            except Exception:  # a closed event loop, say: never the acquisition's problem
                pass
        return snap

    def set_status(self, status: str) -> None:
        self._publish(status=status)

    def set_regions(self, regions: dict[str, list[float]]) -> None:
        """Ask for new detector regions (validated by the caller); they apply
        to the next partial results of any run with a DashboardUDF."""
        with self._lock:
            self.regions = {k: list(v) for k, v in regions.items()}
        self._publish(regions=dict(self.regions))

    def snapshots(self) -> list[Snapshot]:
        with self._lock:
            return list(self.history)

    # --- called by the result hooks --------------------------------------------------
    def started(self, env: Any) -> None:
        self.aq = env.aq
        self._rate = None
        udf = _dashboard_udf(env.udfs)
        regions = self.regions or (
            {"bf": list(udf.params.bf), "adf": list(udf.params.adf)} if udf else {})
        self._publish(
            run_id=env.run_id, status="running", detector=env.detector, mode=env.mode,
            nav_shape=tuple(env.nav_shape), sig_shape=tuple(env.sig_shape), images={},
            thumbs=None, damage=None, ledger={}, fps=0.0, elapsed_s=0.0, regions=regions,
            processed=0,
        )

    def partial(self, env: Any) -> None:
        udf = _dashboard_udf(env.udfs)
        if udf is not None and self.regions is not None:
            wanted = (tuple(self.regions["bf"]), tuple(self.regions["adf"]))
            if (tuple(udf.params.bf), tuple(udf.params.adf)) != wanted \
                    and self._regions_sent.get(env.run_id) != wanted:
                env.update_parameters(udf, bf=wanted[0], adf=wanted[1])
                self._regions_sent[env.run_id] = wanted
        now = time.monotonic()
        if now - self._last_copy < MIN_COPY_INTERVAL_S:
            return
        self._last_copy = now
        ledger = env.ledger
        fps = self._instant_rate(now, ledger.processed,
                                 ledger.processed / env.elapsed_s if env.elapsed_s > 0 else 0.0)
        self._publish(status="running", **self._views(env.udfs, env.buffers, env.damage),
                      ledger=_ledger_dict(ledger), fps=fps, elapsed_s=env.elapsed_s)

    def ended(self, env: Any) -> None:
        views: dict[str, Any] = {}
        if env.buffers is not None:
            damage = None
            try:
                damage = np.ones(tuple(env.aq.shape.nav), dtype=bool) \
                    if env.outcome == "complete" else self.current.damage
            except Exception:
                pass
            views = self._views(env.udfs, env.buffers, damage)
        status = env.outcome if env.error is None else f"{env.outcome}: {env.error}"
        average = env.ledger.processed / env.elapsed_s if env.elapsed_s > 0 else 0.0
        snap = self._publish(status=status, ledger=_ledger_dict(env.ledger),
                             elapsed_s=env.elapsed_s, fps=average, **views)
        with self._lock:
            self.history.append(snap)
            for old in list(self.history)[:-THUMBS_KEPT]:
                old.thumbs = None
        self._regions_sent.pop(env.run_id, None)
        self._publish()  # the history count changed

    # --- helpers -----------------------------------------------------------------------
    def _instant_rate(self, now: float, processed: int, average: float) -> float:
        """Frames processed per second over the last quarter second or more (the
        detector's rate while the processing keeps up); the run's average until
        a quarter second has passed."""
        prev = self._rate
        if prev is None:
            self._rate = (now, processed)
            return average
        if now - prev[0] < 0.25:
            return self.current.fps or average
        self._rate = (now, processed)
        return (processed - prev[1]) / (now - prev[0])

    def _views(self, udfs: list[Any], buffers: Any, damage: Any) -> dict[str, Any]:
        """Copies of what the page shows, from the dashboard's UDF or, beside a
        script without it, from a sum over frames (LiberTEM's SumUDF)."""
        images: dict[str, np.ndarray] = {}
        out: dict[str, Any] = {"images": images}
        for udf, bufs in zip(udfs, buffers):
            if isinstance(udf, DashboardUDF):
                for name in ("sum", "bf", "adf", "com_y", "com_x"):
                    images[name] = np.array(bufs[name].data, dtype=np.float32)
                out["thumbs"] = bufs["thumb"].data  # by reference: big, read on request
                out["thumb_bin"] = udf.params.thumb
                out["regions"] = self.regions or {"bf": list(udf.params.bf),
                                                  "adf": list(udf.params.adf)}
                break
            if "intensity" in bufs and getattr(bufs["intensity"], "kind", "") == "sig":
                images.setdefault("sum", np.array(bufs["intensity"].data, dtype=np.float32))
        if damage is not None:
            d = np.array(damage, dtype=bool)
            out["damage"] = d
            out["processed"] = int(d.sum())
        return out


def _dashboard_udf(udfs: list[Any]) -> DashboardUDF | None:
    return next((u for u in udfs if isinstance(u, DashboardUDF)), None)


def _ledger_dict(snapshot: Any) -> dict[str, Any]:
    d = snapshot.as_dict()
    d.pop("notes", None)
    return d
