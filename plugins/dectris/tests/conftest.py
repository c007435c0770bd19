from __future__ import annotations

from typing import Any, Callable, Iterator

import threading
from dataclasses import dataclass, field

import numpy as np
import pytest
import zmq

from libertem_live_dectris import wire as M
from libertem_live_dectris.decode import DectrisDecoder
from libertem_live_dectris.sim import DectrisSim


@pytest.fixture(autouse=True)
def no_leftover_threads():
    """Every simulator thread must be gone after a test (stop() joins them)."""
    before = set(threading.enumerate())
    yield
    left = [t for t in threading.enumerate() if t not in before and t.is_alive()
            and t.name != "QueueFeederThread"]  # LiberTEM executor queues, not ours
    assert not left, f"threads left running: {left}"


@dataclass
class Received:
    header: list[bytes] = field(default_factory=list)
    images: list[list[bytes]] = field(default_factory=list)
    end: bytes | None = None
    junk: list[list[bytes]] = field(default_factory=list)

    @property
    def frames(self) -> list[tuple[int, int]]:
        return [M.parse_dimage(img[0]) for img in self.images]

    def decoded(self) -> np.ndarray:
        desc = M.parse_dimage_d(self.images[0][1])
        blobs = [img[2] for img in self.images]
        sizes = np.array([len(b) for b in blobs], np.int64)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        out = np.zeros((len(blobs), *desc.shape), np.float32)
        DectrisDecoder(desc.encoding, desc.dtype, desc.shape).decode(
            np.frombuffer(b"".join(blobs), np.uint8), offsets, sizes, sizes, out)
        return out


class Receiver:
    """A minimal test receiver: PULL socket, polls with a timeout, never hangs."""

    def __init__(self, port: int) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(f"tcp://127.0.0.1:{port}")

    def recv(self, timeout: float = 5.0) -> list[bytes] | None:
        if not self.sock.poll(int(timeout * 1000)):
            return None
        return self.sock.recv_multipart()

    def series(self, timeout: float = 5.0, header_parts: int | None = None, header_seen: bool = False) -> Received:
        """Receive until dseries_end (or a timeout: then .end is None).

        ``header_seen``: the caller already consumed the global header."""
        r = Received()
        if header_seen:
            r.header.append(b"")
        while True:
            msg = self.recv(timeout)
            if msg is None:
                return r
            ht = M.peek_htype(msg[0])
            if ht == M.DHEADER and not r.header:
                r.header.extend(msg)
                want = header_parts or M.header_part_count(M.parse_dheader(msg[0]).header_detail)
                while len(r.header) < want:
                    more = self.recv(timeout)
                    assert more is not None, "header incomplete"
                    r.header.extend(more)
            elif not r.header:
                r.junk.append(msg)
            elif ht == M.DIMAGE:
                assert len(msg) == 4, f"image message with {len(msg)} parts"
                r.images.append(msg)
            elif ht == M.DSERIES_END:
                r.end = msg[0]
                return r
            else:
                raise AssertionError(f"unexpected message {msg[0][:80]!r}")

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def receiver_factory():
    made: list[Receiver] = []

    def make(port: int) -> Receiver:
        r = Receiver(port)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


# ---------------------------------------------------------------- leak checks for live tests

_OUR_THREADS = ("libertem-live", "dectris-sim")


def _our_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.is_alive() and t.name.startswith(_OUR_THREADS)}


def _psm_segments() -> set[str]:
    import os
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")}
    except FileNotFoundError:  # no /dev/shm (not Linux): nothing to check
        return set()


def _process_tree(root: int) -> set[int]:
    """``root`` and all its descendants (from /proc)."""
    import os
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = set(), [root]
    while todo:
        pid = todo.pop()
        tree.add(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _segment_users(names: set[str]) -> dict[str, set[int]]:
    """Which processes map /dev/shm/<name>, for each name."""
    import os
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


def _our_leaked_segments(before: set[str]) -> set[str]:
    """New ``psm_*`` segments that are ours: mapped by this process or its
    workers, or mapped by nobody (left behind). /dev/shm is shared with other
    jobs on the machine, so segments that only other live processes map are
    theirs, not a leak of ours."""
    import os
    new = _psm_segments() - before
    if not new:
        return set()
    ours = _process_tree(os.getpid())
    users = _segment_users(new)
    still = _psm_segments()  # a segment another job was just unlinking is gone now
    return {n for n, pids in users.items() if n in still and (not pids or pids & ours)}


def _socket_fds() -> set[str]:
    """Inodes of this process's open sockets (Linux; empty elsewhere)."""
    import os
    found = set()
    try:
        fds = os.listdir("/proc/self/fd")
    except FileNotFoundError:
        return found
    for fd in fds:
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:"):
            found.add(target)
    return found


@pytest.fixture
def no_leaks():
    """After the test: no thread named libertem-live*/dectris-sim* running, no new
    ``psm_*`` shared-memory segment, no new open socket in this process (every
    connection, REST session and simulator closed). Request it *before* any
    fixture that starts simulators, so it is checked after they stopped."""
    threads = _our_threads()
    shm = _psm_segments()
    socks = _socket_fds()
    yield
    left = _our_threads() - threads
    assert not left, f"threads left running: {sorted(t.name for t in left)}"
    leaked = _our_leaked_segments(shm)
    assert not leaked, f"shared memory segments left behind: {sorted(leaked)}"
    open_socks = _socket_fds() - socks
    assert not open_socks, f"{len(open_socks)} sockets left open: {sorted(open_socks)}"


@pytest.fixture(scope="session")
def ctx(live_ctx: Any) -> Any:
    """The conformance kit's LiveContext, one for the whole session."""
    return live_ctx


@pytest.fixture(params=["compiled", "python"])
def receive_loop(request: Any, monkeypatch: Any) -> str:
    """Run a test with the compiled receive loop and again with the Python
    one (the fallback where libzmq's symbols are out of reach): both must
    apply the same checks."""
    from libertem_live_dectris import receiver, zmqloop
    if request.param == "compiled" and not zmqloop.AVAILABLE:
        pytest.skip("libzmq's symbols are not reachable through pyzmq here")
    monkeypatch.setattr(receiver, "USE_COMPILED_LOOP", request.param == "compiled")
    return request.param


@pytest.fixture
def start_sim(no_leaks: None) -> Iterator[Callable[..., DectrisSim]]:
    """``start_sim(**kw)``: a listening ``DectrisSim(**kw)``; every simulator a
    test started is stopped (threads joined) after it, before the leak check."""
    sims: list[DectrisSim] = []

    def start(**kw: Any) -> DectrisSim:
        sim = DectrisSim(**kw)
        sims.append(sim)
        sim.start()
        sim.wait_for_listen()
        return sim

    yield start
    for s in sims:
        s.stop()
