"""The latest state of the acquisition a dashboard shows, and the last scans.

Written by the result hooks, read by the web server (its own thread).  The
hooks run in the thread that merges results, between two merges, so they
only take references: to the UDF's result arrays, the damage mask and the
ledger snapshot, and swap one reference.  They copy nothing, compute
nothing, make no system call and wake nobody (a release of the GIL there
can cost the acquisition a whole switch interval, 5 ms, when another
thread is busy).  The server polls for a newer version at its update rate
and copies the arrays only for a state it will send (:meth:`Snapshot.views`).

There is no queue: a slow browser gets whatever is newest when it asks.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from libertem_live_dashboard import hub, release
from libertem_live_dashboard.udf import DashboardUDF

#: How many scans of the history keep their thumbnails (frame under the pointer).
THUMBS_KEPT = 2
#: Without the dashboard's UDF, the results of other UDFs (LiberTEM computes
#: them on access, which costs) are looked at no more often than this.
OTHER_UDFS_INTERVAL_S = 0.05
#: The dashboard UDF's images, in the order the page lists them.
IMAGE_NAMES = ("sum", "bf", "adf", "com_y", "com_x")
#: ``Snapshot.damage_source`` of a complete scan: every position is valid.
ALL_SCANNED = "all"


@dataclass(frozen=True)
class Views:
    """Copies of what a snapshot shows, taken once in the server's thread."""

    images: dict[str, np.ndarray]
    damage: np.ndarray | None
    processed: int


@dataclass(eq=False)
class Snapshot:
    """One published state; never changed after publication (except the
    thumbnails of old scans, dropped to bound memory).

    ``sources`` and ``damage_source`` are LiberTEM's own arrays of the run,
    referenced, not copied: they may still be written by the acquisition
    (newer data than the version says), so readers use :meth:`views`, which
    copies the damage mask first and the images after it.  A position marked
    done in the mask is then final in the images, because LiberTEM merges a
    partition's results before it marks the partition done.
    """

    version: int
    run_id: int | None = None
    status: str = "waiting for an acquisition"
    detector: str = ""
    mode: str = ""
    nav_shape: tuple[int, ...] = ()
    sig_shape: tuple[int, ...] = ()
    sources: dict[str, np.ndarray] = field(default_factory=dict)
    damage_source: Any = None
    thumbs: np.ndarray | None = None
    thumb_bin: int = 1
    ledger: Any = None
    fps: float = 0.0
    elapsed_s: float = 0.0
    regions: dict[str, list[float]] = field(default_factory=dict)
    published_at: float = 0.0
    cache: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._views_lock = threading.Lock()

    def views(self) -> Views:
        """The images and the damage mask, copied on the first call."""
        with self._views_lock:
            got = self.cache.get("views")
            if got is None:
                got = self.cache["views"] = _copy_views(self.sources, self.damage_source,
                                                        self.nav_shape)
            return got

    @property
    def images(self) -> dict[str, np.ndarray]:
        return self.views().images

    @property
    def damage(self) -> np.ndarray | None:
        return self.views().damage

    @property
    def processed(self) -> int:
        return self.views().processed

    @property
    def behind_s(self) -> float:
        """How far the processing trails the detector while a scan runs: the
        frames received but not yet decoded, in seconds at the current rate.
        A detector the pipeline keeps up with leaves a few frames in the
        ring (well under 0.1 s); one it cannot keep up with leaves a backlog
        that grows until the detector's own buffer overflows."""
        led = self.ledger
        if led is None or self.status != "running" or self.fps <= 0:
            return 0.0
        get = led.get if isinstance(led, dict) else lambda k: getattr(led, k, 0)
        return max(0, (get("received") or 0) - (get("decoded") or 0)) / self.fps

    def ledger_dict(self) -> dict[str, Any]:
        led = self.ledger
        if led is None:
            return {}
        d = dict(led) if isinstance(led, dict) else led.as_dict()
        d.pop("notes", None)
        return d


def _copy_views(sources: dict[str, np.ndarray], damage_source: Any,
                nav_shape: tuple[int, ...]) -> Views:
    damage: np.ndarray | None = None
    if isinstance(damage_source, str):
        damage = np.ones(nav_shape, dtype=bool)
    elif damage_source is not None:
        damage = np.array(damage_source, dtype=bool)
    images = {name: np.array(a, dtype=np.float32) for name, a in sources.items()}
    processed = int(np.count_nonzero(damage)) if damage is not None else 0
    return Views(images=images, damage=damage, processed=processed)


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
        self._rate: tuple[float, int] | None = None
        self._other_udfs_at = 0.0
        self.run_started: dict[int, float] = {}
        self.aq: Any = None
        release.start()

    # --- wiring ----------------------------------------------------------------------
    def attach(self) -> LiveState:
        hub.register(self)
        return self

    def detach(self) -> None:
        hub.unregister(self)

    def add_listener(self, fn: Callable[[], None]) -> None:
        """``fn()`` is called after each publication, in the publishing thread
        (often the acquisition's): it must be as cheap as a hook."""
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
        for fn in self._listeners:
            try:
                fn()
            except Exception:  # a listener's failure is never the acquisition's problem
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

    # --- called by the result hooks: references only ---------------------------------
    def started(self, env: Any) -> None:
        self.aq = env.aq
        self._rate = None
        self._other_udfs_at = 0.0
        udf = _dashboard_udf(env.udfs)
        regions = self.regions or (
            {"bf": list(udf.params.bf), "adf": list(udf.params.adf)} if udf else {})
        self._publish(
            run_id=env.run_id, status="running", detector=env.detector, mode=env.mode,
            nav_shape=tuple(env.nav_shape), sig_shape=tuple(env.sig_shape), sources={},
            damage_source=None, thumbs=None, ledger=None, fps=0.0, elapsed_s=0.0,
            regions=regions,
        )

    def partial(self, env: Any) -> None:
        udf = _dashboard_udf(env.udfs)
        regions = self.regions
        if udf is not None and regions is not None:
            wanted = (tuple(regions["bf"]), tuple(regions["adf"]))
            if (tuple(udf.params.bf), tuple(udf.params.adf)) != wanted \
                    and self._regions_sent.get(env.run_id) != wanted:
                env.update_parameters(udf, bf=wanted[0], adf=wanted[1])
                self._regions_sent[env.run_id] = wanted
        now = time.monotonic()
        ledger = env.ledger
        fps = self._instant_rate(now, ledger.processed,
                                 ledger.processed / env.elapsed_s if env.elapsed_s > 0 else 0.0)
        if udf is not None:
            views = self._dashboard_views(udf)
        elif now - self._other_udfs_at >= OTHER_UDFS_INTERVAL_S:
            self._other_udfs_at = now
            views = _other_views(env.buffers)
        else:
            views = {}
        self._publish(status="running", damage_source=env.damage, ledger=ledger, fps=fps,
                      elapsed_s=env.elapsed_s, **views)

    def ended(self, env: Any) -> None:
        views: dict[str, Any] = {}
        udf = _dashboard_udf(env.udfs)
        if udf is not None:
            views = self._dashboard_views(udf)
        elif env.buffers is not None:
            views = _other_views(env.buffers)
        damage = ALL_SCANNED if env.outcome == "complete" else self.current.damage_source
        status = env.outcome if env.error is None else f"{env.outcome}: {env.error}"
        average = env.ledger.processed / env.elapsed_s if env.elapsed_s > 0 else 0.0
        snap = self._publish(status=status, ledger=env.ledger, elapsed_s=env.elapsed_s,
                             fps=average, damage_source=damage, **views)
        with self._lock:
            full = len(self.history) == self.history.maxlen
            dropped: list[Any] = [self.history[0]] if full else []
            self.history.append(snap)
            for old in list(self.history)[:-THUMBS_KEPT]:
                if old.thumbs is not None:
                    dropped.append(old.thumbs)
                    old.thumbs = None
        release.later(dropped)
        del dropped
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

    def _dashboard_views(self, udf: DashboardUDF) -> dict[str, Any]:
        """References to the dashboard UDF's merged result arrays (LiberTEM's
        own, the same arrays for the whole run), read from the UDF rather than
        through ``env.buffers``: those LiberTEM builds anew on each access,
        with a validity mask as big as all thumbnails together."""
        results = udf.results
        sources = {name: results.get_buffer(name).data for name in IMAGE_NAMES}
        return {
            "sources": sources,
            "thumbs": results.get_buffer("thumb").data,
            "thumb_bin": udf.params.thumb,
            "regions": self.regions or {"bf": list(udf.params.bf),
                                        "adf": list(udf.params.adf)},
        }


def _other_views(buffers: Any) -> dict[str, Any]:
    """Beside a script without the dashboard's UDF: the sum frame of a
    LiberTEM SumUDF, if one runs."""
    for bufs in buffers:
        if "intensity" in bufs and getattr(bufs["intensity"], "kind", "") == "sig":
            return {"sources": {"sum": bufs["intensity"].data}}
    return {}


def _dashboard_udf(udfs: list[Any]) -> DashboardUDF | None:
    for u in udfs:
        if isinstance(u, DashboardUDF):
            return u
    return None
