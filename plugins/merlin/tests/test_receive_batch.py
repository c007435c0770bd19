"""The batched receive path: header checks of a whole batch, bytes pushed back
after an unexpected header, and reads that stop in the middle of a frame."""
from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import numpy as np
import pytest

from libertem_live.transport.ring import OFFSET, SIZE

from libertem_live_merlin.batch import ExpectedHeader, SlotScatter
from libertem_live_merlin.connection import MerlinConnection
from libertem_live_merlin.headers import build_acquisition_header, build_frame_header
from libertem_live_merlin.wire import build_message

PAYLOAD = 256 * 256 * 2


def frame_message(seq: int, fill: int) -> bytes:
    pixels = np.full(PAYLOAD, fill % 251, dtype=np.uint8).tobytes()
    return build_message(build_frame_header(seq) + pixels)


def heads_of(seqs: list[int]) -> np.ndarray:
    rows = [np.frombuffer(frame_message(s, 0)[:15 + 384], dtype=np.uint8) for s in seqs]
    return np.stack(rows)


def expected_for(seq: int) -> ExpectedHeader:
    head = frame_message(seq, 0)[:15 + 384]
    body = head[15:]
    tail = b",".join(body.split(b",", 8)[2:8]) + b","
    return ExpectedHeader(head, tail)


def test_batch_check_accepts_consecutive_and_names_the_first_wrong() -> None:
    exp = expected_for(1)
    heads = heads_of([5, 6, 7, 8])
    assert exp.first_bad(heads, 0, 4, 5) == -1
    assert exp.first_bad(heads, 1, 3, 6) == -1
    assert exp.first_bad(heads, 0, 4, 4) == 0
    heads[2, 30] ^= 1  # a digit of the data offset field
    assert exp.first_bad(heads, 0, 4, 5) == 2


def test_batch_check_seven_digit_sequence_numbers() -> None:
    exp = expected_for(1)
    heads = heads_of([999_999, 1_000_000, 1_000_001])
    assert exp.first_bad(heads, 0, 3, 999_999) == -1
    assert exp.first_bad(heads, 1, 2, 1_000_000) == -1
    assert exp.first_bad(heads, 0, 3, 999_998) == 0
    heads[2, 24] ^= 1
    assert exp.first_bad(heads, 0, 3, 999_999) == 2


def test_received_after_head_is_stream_order() -> None:
    hl, p = 4, 6
    sc = SlotScatter(hl, p, 16, 8)
    row = np.zeros(64, dtype=np.uint8)
    for r in range(3):
        sc.heads[r] = 10 * r + np.arange(hl)
        row[r * 16:r * 16 + p] = 100 + 10 * r + np.arange(p)
    got = 2 * (hl + p) + hl + 3  # two whole frames, the third header, 3 payload bytes
    out = sc.received_after_head(row, 0, 0, got)
    want = (list(range(100, 106)) + list(range(10, 14)) + list(range(110, 116))
            + list(range(20, 24)) + list(range(120, 123)))
    assert list(out) == want
    sc.release()


class TricklingDetector:
    """A data port that sends one acquisition in pieces with pauses longer
    than the receiver's poll interval: inside frame headers, inside payloads
    and between frames, so batch reads come back short at every place."""

    def __init__(self, n: int):
        self.n = n
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.go = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            self.go.wait(10)
            hdr = build_acquisition_header(self.n, self.n, scan_x=self.n, scan_y=1,
                                           counter_depth=12)
            conn.sendall(build_message(hdr))
            cuts = [15 + 100, 15 + 384 + 5000, 0]
            for i in range(self.n):
                msg = frame_message(i + 1, i)
                cut = cuts[i % 3]
                conn.sendall(msg[:cut])
                if i % 2:
                    time.sleep(0.08)
                conn.sendall(msg[cut:])
            self.done.wait(10)  # keep the connection until the test is through

    def close(self) -> None:
        self.done.set()
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def trickling() -> Iterator[TricklingDetector]:
    det = TricklingDetector(12)
    try:
        yield det
    finally:
        det.close()


def test_short_reads_anywhere_in_a_frame(trickling: TricklingDetector) -> None:
    conn = MerlinConnection(data_port=trickling.port, api_port=1, timeout=5.0)
    try:
        trickling.go.set()
        pending = conn.wait_for_acquisition(5.0)
        assert pending is not None
        stream = pending.take_stream()
        try:
            seen = 0
            while seen < trickling.n:
                st = stream.next_stack()
                views = stream.ring.views
                for j in range(st.count):
                    off = views.table[st.slot, OFFSET, j]
                    size = views.table[st.slot, SIZE, j]
                    assert size == PAYLOAD
                    data = views.payload[st.slot, off:off + size]
                    assert (data == (st.first + j) % 251).all(), st.first + j
                stream.ring.release(st.slot, 0, st.count, st.gen)
                seen += st.count
            assert seen == trickling.n
        finally:
            stream.close()
    finally:
        conn.close()
