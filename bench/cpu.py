"""CPU time of the client process tree.

CPU per frame is steadier than wall time on a VM whose speed drifts by tens
of percent within an hour, and it is what a change in the pipeline saves."""
from __future__ import annotations

import os


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes (all their threads, dead ones too)."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tck
    return total


def client_pids(exclude: int | None = None) -> list[int]:
    """This process and its children (the LiberTEM workers), without
    ``exclude`` (a simulator started as a child)."""
    me = os.getpid()
    kids: list[int] = []
    for tid in os.listdir(f"/proc/{me}/task"):
        try:
            kids += [int(c) for c in open(f"/proc/{me}/task/{tid}/children").read().split()]
        except OSError:
            pass
    return [me] + [k for k in kids if k != exclude]
