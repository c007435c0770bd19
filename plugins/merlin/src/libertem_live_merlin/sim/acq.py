"""Acquisition state shared by the simulator's control and data threads.

The control thread arms, triggers and cancels; the data thread picks the
armed acquisition up, streams it and reports it finished. Every change
notifies a condition variable (for Python waiters such as
``MerlinSim.wait_idle``) and the registered wake-up sockets (for the data
thread, which waits in ``select`` on its client socket at the same time).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

from libertem_live.driver import Fault

from .source import FramePool


@dataclass
class Acquisition:
    """One armed acquisition: a snapshot of the settings at STARTACQUISITION."""

    pool: FramePool
    n_frames: int  # 0 = continuous, until STOPACQUISITION/ABORT
    frames_per_trigger: int  # with soft triggering: frames released per trigger
    soft_trigger: bool
    hdr_message: bytes  # complete MPX message
    fault: Optional[Fault] = None
    fault_at: int = -1  # 0-based frame the fault hits
    frame_rate: Optional[float] = None
    triggers: int = 0
    cancelled: bool = False
    picked_up: bool = False
    frames_sent: int = 0
    outcome: str = ""  # "complete", "cancelled", "client gone", "fault: ..."
    done: threading.Event = field(default_factory=threading.Event)

    def released(self) -> Optional[int]:
        """How many frames may be sent now (None = no limit)."""
        if not self.soft_trigger:
            return None
        if self.triggers == 0:
            return 0
        if self.frames_per_trigger <= 0:
            return None
        return self.triggers * self.frames_per_trigger


class AcquisitionState:
    """Holds at most one current acquisition; thread-safe."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.current: Optional[Acquisition] = None
        self.history: list[Acquisition] = []
        self._wakers: list[Callable[[], None]] = []

    def add_waker(self, wake: Callable[[], None]) -> None:
        with self.cond:
            self._wakers.append(wake)

    def _changed(self) -> None:
        self.cond.notify_all()
        for w in self._wakers:
            w()

    @property
    def busy(self) -> bool:
        with self.cond:
            return self.current is not None

    def arm(self, acq: Acquisition) -> bool:
        """Make ``acq`` current; False if another one is still running."""
        with self.cond:
            if self.current is not None:
                return False
            self.current = acq
            self._changed()
            return True

    def trigger(self) -> bool:
        with self.cond:
            if self.current is None:
                return False
            self.current.triggers += 1
            self._changed()
            return True

    def cancel(self) -> None:
        """STOPACQUISITION/ABORT: the detector is idle again right away.

        The data thread notices ``cancelled`` after the ``sendmsg`` batch in
        flight (which may wait for a slow reader); a new acquisition armed
        meanwhile is streamed after that batch, on the same connection.
        """
        with self.cond:
            acq = self.current
            if acq is None:
                return
            acq.cancelled = True
            self._finish_locked(acq, "cancelled")
            self._changed()

    def pick_up(self) -> Optional[Acquisition]:
        """Data thread: take the armed acquisition, if any, for streaming."""
        with self.cond:
            acq = self.current
            if acq is None or acq.picked_up:
                return None
            acq.picked_up = True
            return acq

    def finish(self, acq: Acquisition, outcome: str) -> None:
        with self.cond:
            self._finish_locked(acq, outcome)
            self._changed()

    def _finish_locked(self, acq: Acquisition, outcome: str) -> None:
        if acq.done.is_set():
            return
        acq.outcome = outcome
        acq.done.set()
        self.history.append(acq)
        if self.current is acq:
            self.current = None

    def wait_idle(self, timeout: Optional[float] = None) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: self.current is None, timeout)

    def notify(self) -> None:
        with self.cond:
            self._changed()
