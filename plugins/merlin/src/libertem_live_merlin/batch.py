"""Many frames per system call: scatter reads straight into a ring slot.

Why: the per-frame loop (two ``recv_into`` calls, ``reserve``/``commit`` and a
header check in Python) cost the receiver thread ~20 us of Python per frame,
in the process whose main thread also runs the LiberTEM executor.  Every
frame of an acquisition has the same wire size, so one ``recvmsg_into`` can
scatter ``k`` whole frames: the ``k`` MPX prefix + MQ1 headers into rows of a
scratch array, the ``k`` pixel payloads into their (16-byte aligned) places in
the slot.  A few numpy comparisons then check all ``k`` headers against the
headers the stream must send next; anything else goes to the receiver's slow
path, which names the fault.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: bytes of an MPX prefix + ``MQ1,``; the sequence number starts here
LEAD_LEN = 19
_POW10 = 10 ** np.arange(18, -1, -1, dtype=np.int64)


def _digits(seq: int) -> int:
    """Width of a sequence number in an MQ1 header: six digits, zero padded,
    or more when it has more."""
    return max(6, len(str(seq)))


class ExpectedHeader:
    """The parts of a frame header that are the same for every frame of the
    acquisition (MPX prefix, ``MQ1,`` and the fields after the sequence number
    up to the layout), and the check of a batch of received headers: a few
    numpy comparisons per batch instead of Python per frame (and no compiled
    kernel whose first call would stall the receiver)."""

    def __init__(self, first_head: bytes | bytearray, tail: bytes):
        self.lead = np.frombuffer(bytes(first_head[:LEAD_LEN]), dtype=np.uint8)
        self.post = np.frombuffer(b"," + tail, dtype=np.uint8)

    def _rows_ok(self, rows: np.ndarray, seq0: int, d: int) -> np.ndarray:
        end = LEAD_LEN + d + self.post.size
        if end > rows.shape[1]:
            return np.zeros(rows.shape[0], dtype=bool)
        seqs = np.arange(seq0, seq0 + rows.shape[0], dtype=np.int64)
        digits = seqs[:, None] // _POW10[-d:] % 10 + 48
        return ((rows[:, :LEAD_LEN] == self.lead).all(axis=1)
                & (rows[:, LEAD_LEN:LEAD_LEN + d] == digits).all(axis=1)
                & (rows[:, LEAD_LEN + d:end] == self.post).all(axis=1))

    def first_bad(self, heads: np.ndarray, lo: int, count: int, seq0: int) -> int:
        """-1 if rows ``lo .. lo+count`` of ``heads`` are the headers of the
        frames with sequence numbers ``seq0 ..``; else the index (within the
        batch) of the first one that is not."""
        rows = heads[lo:lo + count]
        d0, d1 = _digits(seq0), _digits(seq0 + count - 1)
        if d0 == d1:
            ok = self._rows_ok(rows, seq0, d0)
        else:  # the batch crosses 10**d0: at most one such step
            k = 10 ** d0 - seq0
            ok = np.concatenate([self._rows_ok(rows[:k], seq0, d0),
                                 self._rows_ok(rows[k:], seq0 + k, d1)])
        return -1 if ok.all() else int(np.argmin(ok))

    def ok(self, head: bytes | bytearray, seq: int) -> bool:
        row = np.frombuffer(head, dtype=np.uint8).reshape(1, -1)
        return self.first_bad(row, 0, 1, seq) < 0


class SlotScatter:
    """The scatter lists of one acquisition: for a ring slot, entry ``2*r``
    is header row ``r`` of :attr:`heads` and ``2*r + 1`` the payload of the
    ``r``-th frame in the slot (at ``r * stride``).  Built once per slot (known
    by the address of its payload row) on first use; :meth:`release` drops
    every view of the ring."""

    def __init__(self, head_len: int, payload: int, stride: int, max_frames: int):
        self.head_len = head_len
        self.payload = payload
        self.stride = stride
        self.heads = np.zeros((max_frames, head_len), dtype=np.uint8)
        self.offsets = np.arange(max_frames, dtype=np.int64) * stride
        self._head_views = [memoryview(row) for row in self.heads]
        self._lists: dict[int, list[memoryview]] = {}

    def frames_that_fit(self, count: int, fill: int, slot_bytes: int, max_frames: int) -> int:
        """How many more frames the slot takes after ``count`` frames in ``fill`` bytes."""
        room = slot_bytes - fill
        if room < self.payload:
            return 0
        return min(max_frames - count, (room - self.payload) // self.stride + 1)

    def buffers(self, row: np.ndarray, first: int, count: int) -> list[memoryview]:
        """The scatter list for frames ``first .. first+count`` of the slot
        whose payload row is ``row``."""
        slot = row.__array_interface__["data"][0]
        views = self._lists.get(slot)
        if views is None:
            views = []
            p, s = self.payload, self.stride
            for r, head in enumerate(self._head_views):
                views.append(head)
                if r * s + p <= row.shape[0]:
                    views.append(memoryview(row[r * s:r * s + p]))
                else:
                    views.pop()
                    break
            self._lists[slot] = views
        return views[2 * first:2 * (first + count)]

    def received_after_head(self, slot_row: np.ndarray, first: int, j: int, got: int) -> bytes:
        """The bytes a batch read into frames ``first + j ..`` after header
        ``first + j``, in stream order (``got``: bytes the whole batch read)."""
        frame = self.head_len + self.payload
        out = []
        pos = j * frame + self.head_len
        r = first + j
        while pos < got:
            n = min(self.payload, got - pos)
            start = int(self.offsets[r])
            out.append(bytes(slot_row[start:start + n]))
            pos += n
            r += 1
            if pos >= got:
                break
            n = min(self.head_len, got - pos)
            out.append(bytes(self.heads[r, :n]))
            pos += n
        return b"".join(out)

    def release(self) -> None:
        for views in self._lists.values():
            for v in views:
                v.release()
        self._lists.clear()
        for v in self._head_views:
            v.release()
        self._head_views = []


def table_rows(table: Any, offsets: np.ndarray, lo: int, hi: int, size: int) -> None:
    """Book frames ``lo .. hi`` of a leased slot's frame table: offset, size, aux."""
    table[0, lo:hi] = offsets[lo:hi]
    table[1, lo:hi] = size
    table[2, lo:hi] = 0


__all__ = ["ExpectedHeader", "SlotScatter", "table_rows", "LEAD_LEN"]
