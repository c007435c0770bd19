"""A receiver thread bound to one :class:`FrameStream`.

Drivers run their wire-protocol loop in ``target(stream)``; any exception it
raises fails the stream (and so the acquisition) instead of dying silently,
and closing the stream stops and joins the thread before the ring is freed.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from libertem_live.transport.stream import FrameStream

log = logging.getLogger(__name__)


class ReceiverThread:
    def __init__(self, stream: FrameStream, target: Callable[[FrameStream], None],
                 name: str, join_timeout: float = 10.0,
                 on_stop: Callable[[], None] | None = None):
        self.stream = stream
        self._target = target
        self._join_timeout = join_timeout
        self._on_stop = on_stop
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        stream.on_close(self.stop)

    def start(self) -> ReceiverThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._target(self.stream)
        except BaseException as e:  # noqa: BLE001 - reported through the stream
            if not self.stream.stopped:
                log.debug("receiver %s failed", self._thread.name, exc_info=True)
                self.stream.fail(e)

    def stop(self) -> None:
        self.stream.stop_event.set()
        if self._on_stop is not None:
            self._on_stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._join_timeout)
            if self._thread.is_alive():
                log.error("receiver thread %s did not stop within %.0f s",
                          self._thread.name, self._join_timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()
