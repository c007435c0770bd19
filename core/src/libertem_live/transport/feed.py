"""The main-process side of the transport: LiberTEM's ``TaskCommHandler``.

For every task the executor schedules, it takes published stacks from the
:class:`~libertem_live.transport.stream.FrameStream`, cuts them at partition
boundaries and sends only slot handles to the worker that runs the task.
Frames that no task wants (partitions skipped because of a ROI) are released
here.  The in-process executor (``InlineJobExecutor``) runs the task in the
same thread right after ``handle_task``, so for it the handles are handed
over lazily (pull mode) instead of being pushed ahead, which would deadlock
as soon as a partition is larger than the ring.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from libertem.common.executor import JobCancelledError, SimpleWorkerQueue, TaskCommHandler

from libertem_live.transport.ring import Stack
from libertem_live.transport.stream import FrameStream

Piece = tuple[int, int, int, int, int]  # slot, lo, hi, first global frame index, gen


class FeedCommHandler(TaskCommHandler):
    def __init__(self, stream: FrameStream):
        self.stream = stream
        self._current: Stack | None = None
        self._used = 0
        self._cursor = 0
        self._check: Callable[[], None] | None = None
        self._check_every = 0.25

    def watch_workers(self, check: Callable[[], None] | None, every: float) -> None:
        """While waiting for frames, call ``check`` every ``every`` seconds
        (the executor's: it raises when a worker died, which would otherwise
        only show as a ring that never drains)."""
        self._check = check
        self._check_every = every

    def interrupt(self) -> None:
        """Make a wait for frames end now with ``KeyboardInterrupt`` (safe
        to call from a signal handler)."""
        self.stream.interrupt()

    def _take(self, start: int, stop: int) -> Iterator[Piece]:
        """Pieces covering frames [start, stop); frames before ``start`` are released."""
        stream = self.stream
        while self._cursor < stop:
            if self._current is None or self._used == self._current.count:
                self._current = stream.next_stack(check=self._check,
                                                  check_every=self._check_every)
                self._used = 0
            st = self._current
            lo = self._used
            if self._cursor < start:
                skip = min(st.count - lo, start - self._cursor)
                stream.ring.release(st.slot, lo, lo + skip, st.gen)
                self._used += skip
                self._cursor += skip
                continue
            n = min(st.count - lo, stop - self._cursor)
            self._used += n
            first = self._cursor
            self._cursor += n
            stream.ledger.add(dispatched=n)
            yield (st.slot, lo, lo + n, first, st.gen)

    def handle_task(self, task: Any, queue: Any) -> None:
        part = task.get_partition()
        start = part.slice.origin[0]
        stop = start + part.slice.shape[0]
        if isinstance(queue, SimpleWorkerQueue):
            queue.put({"type": "BEGIN_TASK", "ring": self.stream.spec,
                       "pieces": self._take(start, stop)})
            return
        queue.put({"type": "BEGIN_TASK", "ring": self.stream.spec})
        failed = False
        try:
            for slot, lo, hi, first, gen in self._take(start, stop):
                queue.put({"type": "FRAMES", "slot": slot, "lo": lo, "hi": hi, "first": first,
                           "gen": gen})
        except Exception as e:
            failed = True
            if self.stream.error is None:
                self.stream.fail(e)
            raise JobCancelledError(str(e)) from e
        except BaseException:
            failed = True
            raise
        finally:
            queue.put({"type": "END_PARTITION", "failed": failed})

    def release_rest(self) -> None:
        """Give back the unused frames of the current stack (end of a run)."""
        st = self._current
        if st is not None and self._used < st.count:
            self.stream.ring.release(st.slot, self._used, st.count, st.gen)
            self._used = st.count

    def start(self) -> None:
        pass

    def done(self) -> None:
        pass
