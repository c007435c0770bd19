"""The simulator's control parameters: defaults, validation, status codes.

Kept apart from the servers so the rules ("COUNTERDEPTH must be 1/6/12/24",
"no SET while acquiring") are in one table. Values are stored as the strings
the client sent (after validation), because GET returns text anyway.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from .control import STATUS_BUSY, STATUS_OK, STATUS_RANGE, STATUS_UNKNOWN


def _choice(*allowed: int) -> Callable[[str], bool]:
    def check(v: str) -> bool:
        try:
            return int(v) in allowed
        except ValueError:
            return False
    return check


def _int_range(lo: int, hi: int) -> Callable[[str], bool]:
    def check(v: str) -> bool:
        try:
            return lo <= int(v) <= hi
        except ValueError:
            return False
    return check


def _positive_float(v: str) -> bool:
    try:
        return float(v) >= 0
    except ValueError:
        return False


def _any(v: str) -> bool:
    return True


@dataclass(frozen=True)
class ParamSpec:
    check: Optional[Callable[[str], bool]]  # None = read-only


SPECS: dict[str, ParamSpec] = {
    "IMAGEX": ParamSpec(None),
    "IMAGEY": ParamSpec(None),
    "DETECTORSTATUS": ParamSpec(None),
    "COUNTERDEPTH": ParamSpec(_choice(1, 6, 12, 24)),
    "NUMFRAMESTOACQUIRE": ParamSpec(_int_range(0, 2**31 - 1)),
    "NUMFRAMESPERTRIGGER": ParamSpec(_int_range(0, 2**31 - 1)),
    "ACQUISITIONTIME": ParamSpec(_positive_float),
    "ACQUISITIONPERIOD": ParamSpec(_positive_float),
    "CONTINUOUSRW": ParamSpec(_choice(0, 1)),
    # 0 internal, 5 soft; 1-4 (hardware edges) accepted and, lacking hardware,
    # released by SOFTTRIGGER like 5
    "TRIGGERSTART": ParamSpec(_int_range(0, 5)),
    "TRIGGERSTOP": ParamSpec(_int_range(0, 5)),
    "FILEFORMAT": ParamSpec(_choice(0, 2)),
    "FILEENABLE": ParamSpec(_choice(0, 1)),
    "FILEDIRECTORY": ParamSpec(_any),
    "IMAGESPERFILE": ParamSpec(_int_range(0, 2**31 - 1)),
    "USETIMESTAMPING": ParamSpec(_choice(0, 1)),
    "RUNHEADLESS": ParamSpec(_choice(0, 1)),
    # simulator-only: scan shape announced in the HDR (0 = leave the key out)
    "SCANX": ParamSpec(_int_range(0, 2**31 - 1)),
    "SCANY": ParamSpec(_int_range(0, 2**31 - 1)),
}


class Parameters:
    """Stored values plus the SET rules. Not thread-safe: the caller locks."""

    def __init__(self, values: dict[str, str], fixed: Optional[dict[str, str]] = None):
        unknown = set(values) - set(SPECS)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        self.values = dict(values)
        # values a data source cannot change (e.g. the depth of a MIB file)
        self.fixed = dict(fixed or {})

    def get(self, name: str) -> tuple[str, int]:
        if name not in self.values:
            return "", STATUS_UNKNOWN
        return self.values[name], STATUS_OK

    def set(self, name: str, value: str, busy: bool) -> int:
        """Status for ``SET name value``: 2 unknown/read-only, 1 busy, 3 out of range."""
        spec = SPECS.get(name)
        if spec is None or spec.check is None:
            return STATUS_UNKNOWN
        if busy:
            return STATUS_BUSY
        if not spec.check(value):
            return STATUS_RANGE
        if name in self.fixed and int(value) != int(self.fixed[name]):
            return STATUS_RANGE
        self.values[name] = value.strip()
        return STATUS_OK

    def get_int(self, name: str) -> int:
        return int(self.values[name])

    def get_float(self, name: str) -> float:
        return float(self.values[name])
