"""Frame accounting for one acquisition.

Nothing may be lost silently: the ledger counts frames at every step of
their way (expected, received by the receiver, dispatched to workers,
decoded, processed by the UDFs) and remembers where the first frame went
missing.  It is updated from the receiver thread and the main thread, so
every update takes a lock; the decoded count is read from the ring, where
the workers mark each frame they decoded.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, asdict
from typing import Any, Callable


@dataclass
class LedgerSnapshot:
    expected: int | None
    received: int
    dispatched: int
    decoded: int
    processed: int
    missing: int
    first_missing: int | None
    discarded_stale: int
    blocked_s: float
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Ledger:
    def __init__(self, expected: int | None = None):
        self._lock = threading.Lock()
        self.expected = expected
        self.received = 0
        self.dispatched = 0
        self.decoded = 0
        self.processed = 0
        self.missing = 0
        self.first_missing: int | None = None
        self.discarded_stale = 0
        self.blocked_s = 0.0
        self.notes: list[str] = []
        self.started_at = time.time()
        self.count_decoded: Callable[[], int] | None = None
        """Where the decoded count lives while a run goes on (the ring)."""

    def add(self, **counts: int | float) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def report_missing(self, first_index: int, count: int) -> None:
        with self._lock:
            self.missing += count
            if self.first_missing is None or first_index < self.first_missing:
                self.first_missing = first_index

    def note(self, text: str) -> None:
        with self._lock:
            self.notes.append(text)

    def freeze_decoded(self) -> None:
        """Take the final decoded count from its source (the run ended)."""
        count, self.count_decoded = self.count_decoded, None
        if count is not None:
            decoded = count()
            with self._lock:
                self.decoded = decoded

    def snapshot(self) -> LedgerSnapshot:
        count = self.count_decoded
        decoded = count() if count is not None else None
        with self._lock:
            return LedgerSnapshot(
                expected=self.expected, received=self.received,
                dispatched=self.dispatched,
                decoded=self.decoded if decoded is None else decoded,
                processed=self.processed, missing=self.missing,
                first_missing=self.first_missing,
                discarded_stale=self.discarded_stale,
                blocked_s=round(self.blocked_s, 6), notes=list(self.notes),
            )

    def as_dict(self) -> dict[str, Any]:
        return self.snapshot().as_dict()

    def finish_short(self) -> None:
        """Book every frame that was expected but never received as missing."""
        with self._lock:
            if self.expected is None:
                return
            seen = self.received + self.missing
            if seen < self.expected:
                gap = self.expected - seen
                self.missing += gap
                first = self.received if self.first_missing is None else self.first_missing
                self.first_missing = min(first, self.received)

    def describe(self) -> str:
        s = self.snapshot()
        parts = [
            f"expected={s.expected if s.expected is not None else '?'}",
            f"received={s.received}", f"dispatched={s.dispatched}",
            f"decoded={s.decoded}", f"processed={s.processed}",
            f"missing={s.missing}",
        ]
        if s.first_missing is not None:
            parts.append(f"first_missing={s.first_missing}")
        if s.discarded_stale:
            parts.append(f"discarded_stale={s.discarded_stale}")
        if s.blocked_s:
            parts.append(f"receiver_blocked={s.blocked_s:.3f}s")
        return "ledger: " + ", ".join(parts)

    def __repr__(self) -> str:
        return f"<Ledger {self.describe()}>"
