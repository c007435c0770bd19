"""What a test must not leave behind: threads, file descriptors, shared
memory, child processes.

A driver that forgets to join its receiver or close a socket works in a
single script and fails at the microscope after a few hundred scans; the
suite checks after every test instead.  Leaks take a moment to go away
(a thread finishing its last poll, a worker unmapping a ring), so the check
waits up to ``settle_s`` for the state to come back before it reports.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

RECEIVER_PREFIX = "libertem-live"
"""Name prefix of the core's receiver threads (``libertem-live-<detector>-receiver``)."""


@dataclass
class Snapshot:
    threads: set[threading.Thread]
    stuck: set[str]
    fds: dict[str, str]
    shm: set[str]
    children: set[int]
    prefixes: tuple[str, ...] = field(default=(RECEIVER_PREFIX,))


def _stuck_receivers() -> set[str]:
    from libertem_live.driver import stuck_receivers
    return set(stuck_receivers())


def _fds() -> dict[str, str]:
    found: dict[str, str] = {}
    try:
        names = os.listdir("/proc/self/fd")
    except FileNotFoundError:  # not Linux: nothing to compare
        return found
    for fd in names:
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the fd listdir itself used, or closed meanwhile
            continue
    return found


def _shm() -> set[str]:
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")}
    except FileNotFoundError:
        return set()


#: per-interpreter helpers multiprocessing starts once, on first use, and keeps
_SINGLETONS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def _singleton(cmdline: list[str]) -> bool:
    return any(name in part for part in cmdline for name in _SINGLETONS)


def _children() -> set[int]:
    try:
        import psutil
    except ImportError:
        return _children_from_proc()
    kids = set()
    for p in psutil.Process().children(recursive=True):
        try:
            if p.status() != psutil.STATUS_ZOMBIE and not _singleton(p.cmdline()):
                kids.add(p.pid)
        except psutil.Error:
            continue
    return kids


def _proc_parents() -> dict[int, int]:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
    return parents


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def _children_from_proc() -> set[int]:
    try:
        parents = _proc_parents()
    except FileNotFoundError:
        return set()
    tree, todo = set(), [os.getpid()]
    while todo:
        pid = todo.pop()
        kids = [c for c, p in parents.items() if p == pid]
        tree.update(k for k in kids if not _singleton(_cmdline(k)))
        todo.extend(kids)
    return tree


def _segment_users(names: set[str]) -> dict[str, set[int]]:
    users: dict[str, set[int]] = {n: set() for n in names}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/maps") as f:
                maps = f.read()
        except OSError:
            continue
        for n in names:
            if f"/dev/shm/{n}" in maps:
                users[n].add(int(entry))
    return users


def take(prefixes: tuple[str, ...] = ()) -> Snapshot:
    """The state before a test; ``prefixes``: thread names (besides the core's
    receivers) that must not outlive it."""
    return Snapshot(
        threads={t for t in threading.enumerate() if t.is_alive()},
        stuck=_stuck_receivers(), fds=_fds(), shm=_shm(), children=_children(),
        prefixes=(RECEIVER_PREFIX, *prefixes),
    )


def problems(before: Snapshot, *, fd_tolerance: int = 2) -> list[str]:
    """What the test left behind, one line per kind (empty: nothing)."""
    found = []
    new = [t for t in threading.enumerate()
           if t.is_alive() and t not in before.threads
           and (not t.daemon or t.name.startswith(before.prefixes))]
    if new:
        names = sorted(f"{t.name}{'' if t.daemon else ' (non-daemon)'}" for t in new)
        found.append(f"threads left running: {names}; close() must stop and join every "
                     "thread the connection or simulator started")
    stuck = _stuck_receivers() - before.stuck
    if stuck:
        found.append(f"receiver threads that ignored stop (stuck_receivers()): {sorted(stuck)}; "
                     "the driver's framing must return within ~0.1 s and honour the stop flag")
    fds = _fds()
    if len(fds) - len(before.fds) > fd_tolerance:
        added = sorted({v for k, v in fds.items() if before.fds.get(k) != v})
        found.append(f"{len(fds) - len(before.fds)} more open file descriptors than before "
                     f"the test (tolerance {fd_tolerance}): {added[:12]}")
    shm = _shm() - before.shm
    if shm:
        ours = before.children | _children() | {os.getpid()}
        users = _segment_users(shm)
        still = _shm()  # another job on this machine may have just unlinked its own
        leaked = sorted(n for n, pids in users.items()
                        if n in still and (not pids or pids & ours))
        if leaked:
            found.append(f"shared-memory segments left in /dev/shm: {leaked}; a connection "
                         "or stream was not closed")
    kids = _children() - before.children
    if kids:
        found.append(f"child processes left running: pids {sorted(kids)}")
    return found


def check(before: Snapshot, *, settle_s: float = 2.0, fd_tolerance: int = 2) -> list[str]:
    """:func:`problems`, polled until none are left or ``settle_s`` passed."""
    deadline = time.monotonic() + settle_s
    while True:
        found = problems(before, fd_tolerance=fd_tolerance)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.05)
