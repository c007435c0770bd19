"""One acquisition's worth of frames on their way from a receiver to the workers.

The receiver (a plugin's thread) writes frames through :meth:`FrameStream.writer`
and ends the stream with :meth:`finish` or :meth:`fail`; the comm handler in
the main process takes published stacks with :meth:`next_stack`.  The stream
owns the ring and the ledger of its acquisition.
"""
from __future__ import annotations

import queue
import threading
import time
from typing import Any, Callable

from libertem_live.errors import (
    AcquisitionError, AcquisitionTimeoutError, DuplicateFrameError, FrameGapError,
    StreamTruncatedError,
)
from libertem_live.ledger import Ledger
from libertem_live.transport.pool import RingPool
from libertem_live.transport.ring import Ring, RingConfig, RingSpec, RingWriter, Stack


class _End:
    pass


class _Interrupt:
    pass


_END = _End()
_INTERRUPT = _Interrupt()


class FrameStream:
    def __init__(self, expected: int | None, ring: RingConfig | None = None,
                 timeout: float = 30.0, source: str = "detector",
                 pool: RingPool | None = None):
        self._config = ring or RingConfig()
        self._pool = pool
        if pool is not None:
            self.ring = pool.take(self._config)
        else:
            cfg = self._config
            self.ring = Ring(cfg.num_slots, cfg.slot_bytes, cfg.max_frames)
        self.ledger = Ledger(expected)
        base = self.ring.decoded_frames()
        ring_ = self.ring
        self.ledger.count_decoded = lambda: ring_.decoded_frames() - base
        self.timeout = timeout
        self.source = source
        self.stop_event = threading.Event()
        self._queue: queue.SimpleQueue[Stack | _End | _Interrupt | BaseException] = (
            queue.SimpleQueue())
        self._error: BaseException | None = None
        self._ended = False
        self._closed = False
        self._next_index = 0
        self._on_close: list[Callable[[], None]] = []
        self.info: dict[str, Any] = {}
        """What the detector told about this series once it started (its
        ``series`` id, say); drivers fill it, recordings keep it."""

    @property
    def spec(self) -> RingSpec:
        return self.ring.spec

    @property
    def expected(self) -> int | None:
        return self.ledger.expected

    def set_expected(self, n: int) -> None:
        self.ledger.expected = n

    # --- receiver side -----------------------------------------------------
    def writer(self, slot_timeout: float | None = None) -> RingWriter:
        return RingWriter(
            self.ring, self._publish, self.stop_event,
            on_wait=lambda dt: self.ledger.add(blocked_s=dt),
            slot_timeout=slot_timeout,
        )

    def _publish(self, stack: Stack) -> None:
        self.ledger.add(received=stack.count)
        self._queue.put(stack)

    def finish(self) -> None:
        """The receiver saw the normal end of the acquisition."""
        self._queue.put(_END)

    def fail(self, error: BaseException) -> None:
        """The receiver hit an error; the consumer raises it at the next stack.
        Every expected frame not received by now is booked as missing."""
        self.ledger.finish_short()
        if isinstance(error, AcquisitionError) and error.ledger is None:
            error.ledger = self.ledger
        if self._error is None:
            self._error = error
        self._queue.put(error)

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set()

    # --- consumer side -----------------------------------------------------
    @property
    def error(self) -> BaseException | None:
        return self._error

    def interrupt(self) -> None:
        """End the consumer's current (or next) wait with ``KeyboardInterrupt``.
        Safe in a signal handler: ``SimpleQueue.put`` is reentrant."""
        self._queue.put(_INTERRUPT)

    def next_stack(self, timeout: float | None = None, check: Callable[[], None] | None = None,
                   check_every: float = 0.25) -> Stack:
        """The next published stack; raises when the stream ended early or failed.
        While waiting, ``check()`` runs every ``check_every`` seconds (it may raise)."""
        if self._error is not None and self._ended:
            raise self._error
        wait = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        while True:
            remaining = deadline - time.monotonic()
            try:
                if check is None:
                    item = self._queue.get(timeout=max(remaining, 0.0))
                else:
                    item = self._queue.get(timeout=max(min(remaining, check_every), 0.0))
            except queue.Empty:
                if check is not None:
                    check()
                    if deadline - time.monotonic() > 0:
                        continue
                self.ledger.finish_short()
                err = AcquisitionTimeoutError(
                    f"no frame from the {self.source} within {wait:g} s (waiting for frame "
                    f"{self._next_index}); is the detector triggered and the scan running? "
                    "Raise the connection's timeout for slow scans",
                    self.ledger,
                )
                self._error = self._error or err
                raise err from None
            if isinstance(item, _Interrupt):
                raise KeyboardInterrupt
            if isinstance(item, Stack):
                if item.first != self._next_index:
                    err2 = self._out_of_sequence(item)
                    self._error = err2
                    raise err2
                self._next_index = item.first + item.count
                return item
            self._ended = True
            if isinstance(item, BaseException):
                raise item
            expected = self.ledger.expected
            got = self._next_index
            self.ledger.finish_short()
            err3 = StreamTruncatedError(
                f"the {self.source} ended the acquisition after {got} frames, "
                f"but {expected} were expected; check the detector's frame count and "
                "the scan settings", self.ledger,
            )
            self._error = err3
            raise err3

    def _out_of_sequence(self, item: Stack) -> AcquisitionError:
        """A stack that does not follow the last one.  The receiver wrote the
        frames under the indices the detector gave them, so a jump forward is
        a gap in the detector's numbering (booked as missing now; frames
        never received are booked when the stream closes, once the receiver
        stopped, so nothing is counted twice) and a step back is a duplicate
        or a frame out of order."""
        self.ring.release(item.slot, 0, item.count, item.gen)
        nxt = self._next_index
        if item.first > nxt:
            self.ledger.report_missing(nxt, item.first - nxt)
            return FrameGapError(
                f"frames {nxt}..{item.first - 1} never came from the {self.source}: the "
                f"stream jumped from frame {nxt - 1} to frame {item.first}. The detector "
                "skipped them or the network dropped them; check the link and the "
                "detector's frame counter, then repeat the scan", self.ledger)
        return DuplicateFrameError(
            f"frame {item.first} came from the {self.source} again after frame {nxt - 1} "
            "(a duplicate or a frame out of order); the scan cannot be assembled safely. "
            "Check that only one detector sends to this port", self.ledger)

    def drain(self) -> None:
        """Release every frame still queued (acquisition over or cancelled)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if isinstance(item, Stack):
                self.ring.release(item.slot, 0, item.count, item.gen)

    def on_close(self, callback: Callable[[], None]) -> None:
        """Register a receiver-side clean-up (stop and join the receiving
        thread); it runs before the ring is freed."""
        self._on_close.append(callback)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the receiver side and free the shared memory (or hand the
        ring back to the connection's pool)."""
        if self._closed:
            return
        self._closed = True
        self.stop_event.set()
        try:
            for callback in self._on_close:
                callback()
        finally:
            self.drain()
            self.ledger.finish_short()  # the receiver is stopped: the count is final
            self.ledger.freeze_decoded()
            if self._pool is not None:
                self._pool.give(self._config, self.ring)
            else:
                self.ring.close()
