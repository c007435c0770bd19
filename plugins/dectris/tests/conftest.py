from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pytest
import zmq

from libertem_live_dectris import messages as M
from libertem_live_dectris.decode import DectrisDecoder


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
