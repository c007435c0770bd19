"""The certification summary: per driver harness, what each capability and
fault kind came to in this run, and the verdict."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from libertem_live.driver import FaultKind

from libertem_live_testing.capabilities import FEATURES

BASICS = "basics"

# how an item's phases combine: the worst wins
_RANK = {"skipped": 0, "passed": 1, "known issue": 2, "failed": 3}


@dataclass
class HarnessRecord:
    harness: Any
    outcomes: dict[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    """nodeid -> (features the test verifies, its outcome)"""

    @property
    def label(self) -> str:
        return f"{self.harness.name} ({type(self.harness).__qualname__})"

    def record(self, nodeid: str, features: tuple[str, ...], outcome: str) -> None:
        old = self.outcomes.get(nodeid)
        if old is None or _RANK[outcome] > _RANK[old[1]]:
            self.outcomes[nodeid] = (features, outcome)

    def status(self, feature: str) -> tuple[str, int]:
        """(status, number of tests) of one capability, fault or the basics."""
        caps = self.harness.capabilities
        if feature.startswith("fault:") and FaultKind(feature[6:]) in caps.inexpressible:
            return "not expressible", 0
        if feature != BASICS and caps.missing(feature) is not None:
            return "not declared", 0
        results = [o for feats, o in self.outcomes.values() if feature in feats]
        if not results:
            return "not run", 0
        for status, outcome in (("failed", "failed"), ("known issue", "known issue"),
                                ("verified", "passed")):
            if outcome in results:
                return status, results.count(outcome)
        return "skipped", len(results)

    def rows(self) -> Iterable[tuple[str, str, str, int]]:
        """(label, feature key, status, tests) in report order."""
        yield "basics", BASICS, *self.status(BASICS)
        for cap in FEATURES:
            yield f"capability {cap}", cap, *self.status(cap)
        for kind in FaultKind:
            yield f"fault {kind.value}", f"fault:{kind.value}", *self.status(f"fault:{kind.value}")

    def verdict(self) -> tuple[str, str]:
        rows = list(self.rows())
        bad = [label for label, _, st, _ in rows if st in ("failed", "known issue")]
        if bad:
            return "failed", "failed: " + ", ".join(bad)
        short = [f"{label} ({st})" for label, _, st, _ in rows
                 if st in ("skipped", "not run")
                 or (st == "not declared" and label.startswith("fault "))]
        if short:
            return "partial", "not verified: " + ", ".join(short)
        return "certified", ("every declared capability and every fault kind the wire "
                             "format can carry verified")


def render(records: Iterable[HarnessRecord], write: Any) -> None:
    for rec in records:
        verdict, why = rec.verdict()
        write(f"{rec.label}: {verdict.upper()}")
        for label, feature, status, n in rec.rows():
            tests = f"  ({n} test{'s' if n != 1 else ''})" if n else ""
            if status == "verified":
                tests = f"  ({n} passed)"
            note = ""
            if status == "not expressible":
                note = f"  - {rec.harness.capabilities.inexpressible[FaultKind(feature[6:])]}"
            if status == "known issue":
                key = feature.partition(":")[2] or feature
                note = f"  - {rec.harness.known_issues.get(key, '')}"
            write(f"  {label:<40} {status}{tests}{note}")
        write(f"  verdict: {verdict} ({why})")
