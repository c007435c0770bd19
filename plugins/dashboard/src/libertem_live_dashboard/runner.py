"""The acquisition loop of ``libertem-live-dashboard``: one acquisition, or
(``continuous``) one after another: wait for the next (passive) or arm again
(active).  The views come to the page through the result hooks like any
other run's."""
from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Any

from libertem_live_dashboard.state import LiveState
from libertem_live_dashboard.udf import DashboardUDF

log = logging.getLogger(__name__)

#: After a failed acquisition the continuous loop waits this long before the next.
ERROR_PAUSE_S = 1.0


class Runner:
    def __init__(self, ctx: Any, conn: Any, state: LiveState, *, mode: str = "passive",
                 nav_shape: tuple[int, ...] | None = None, continuous: bool = False,
                 controller_params: dict[str, Any] | None = None,
                 frames_per_partition: int | None = None, wait_s: float = 1.0,
                 pause_s: float = 0.0):
        if mode not in ("passive", "active"):
            raise ValueError(f"mode must be 'passive' or 'active', got {mode!r}")
        self.ctx = ctx
        self.conn = conn
        self.state = state
        self.mode = mode
        self.nav_shape = nav_shape
        self.continuous = continuous
        self.controller_params = dict(controller_params or {})
        self.frames_per_partition = frames_per_partition
        self.wait_s = wait_s
        self.pause_s = pause_s
        self.stop_event = threading.Event()
        self.runs = 0
        self.errors: deque[BaseException] = deque(maxlen=100)  # the latest ones
        self.failures = 0

    def _acquisition(self) -> Any:
        if self.mode == "active":
            ctrl = self.conn.get_active_controller(**self.controller_params)
            return self.ctx.make_acquisition(conn=self.conn, nav_shape=self.nav_shape,
                                             controller=ctrl,
                                             frames_per_partition=self.frames_per_partition)
        self.state.set_status("waiting for an acquisition (passive: arm the detector)")
        while not self.stop_event.is_set():
            pending = self.conn.wait_for_acquisition(timeout=self.wait_s)
            if pending is not None:
                return self.ctx.make_acquisition(conn=self.conn, pending_aq=pending,
                                                 nav_shape=self.nav_shape,
                                                 frames_per_partition=self.frames_per_partition)
        return None

    def run_once(self) -> bool:
        """One acquisition; False when stopped before it began.  An acquisition
        that cannot even start (the detector unreachable, arming refused) is
        shown on the page like a failed one; the continuous loop tries again."""
        try:
            aq = self._acquisition()
            if aq is None:
                return False
            udf = DashboardUDF.for_shape(tuple(aq.shape.sig), int(aq.shape.nav.size),
                                         self.state.regions)
            gen = self.ctx.run_udf_iter(dataset=aq, udf=udf)
        except Exception as e:
            log.warning("cannot start an acquisition: %s", e)
            self.errors.append(e)
            self.failures += 1
            self.state.set_status(f"failed: cannot start an acquisition: {e}")
            self.runs += 1
            return True
        try:
            for _ in gen:
                if self.stop_event.is_set():
                    break
        except Exception as e:  # shown on the page by the ended hook; go on with the next
            log.warning("acquisition failed: %s", e)
            self.errors.append(e)
            self.failures += 1
        finally:
            gen.close()
        self.runs += 1
        return True

    def run(self) -> None:
        while not self.stop_event.is_set():
            failures = self.failures
            if not self.run_once() or not self.continuous:
                break
            failed = self.failures > failures
            if self.stop_event.wait(max(self.pause_s, ERROR_PAUSE_S if failed else 0.0)):
                break

    def stop(self) -> None:
        self.stop_event.set()
