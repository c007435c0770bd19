"""The core's stream faults (:class:`~libertem_live.driver.FaultKind`) on the
TPX3 wire.

TPX3 frames are the rows of ArrayChunk messages; a chunk carries many scan
positions and no position number: its rows are the positions after the
previous chunk's.  A fault at frame ``k`` (``Fault.at``, default the middle
of the scan) therefore changes the chunk that holds position ``k``:

* ``duplicate_frame``: that chunk carries row ``k`` twice, so the scan has
  one row more than positions (the driver: FrameOrderError at the chunk that
  overflows);
* ``truncated_payload``: the chunk's indptr says row ``k`` has one entry
  more than the chunk stores (its entries end short of what its rows claim);
  the message length stays right, so the connection keeps in step;
* ``corrupt_payload``: the chunk's payload is 0xFF bytes of the right length;
* ``wrong_format``: the chunk's values are bit-packed (value dtype U1), a
  pixel type the protocol defines and no reader of byte-addressed data can
  use; its length cannot be known, so the stream position is lost and the
  simulator sends nothing more on that connection (until the client closes
  it: a client that must reconnect gets the next acquisition on the new
  connection, not on the one it is leaving);
* ``ends_short``: ScanEnd and AcquisitionEnd after position ``k - 1`` (the
  chunk is cut at ``k``);
* ``never_ends``: the whole scan without ScanEnd and AcquisitionEnd; the
  next acquisition starts on the same connection;
* ``stall_mid_frame``: the chunk's header and half its payload, then silence
  with the connection open (until the client closes it);
* ``disconnect_mid_stream``: the same, then the connection is closed;
* ``restart_between``: a clean acquisition, then the simulator drops the
  connection and its listening socket and listens again on the same port.

Not expressible, so asking for them raises ValueError:

* ``frame_gap``: positions are implicit, so a missing row is not a gap the
  receiver could see: the later rows move up one position and the scan ends
  one row short (which is ``ends_short``);
* ``out_of_order``: two swapped rows are valid data at the wrong positions;
  without position numbers no receiver can tell.

A faulty acquisition has one scan.  After it the simulator goes on as
usual (the next acquisition on the same connection, or on the next one
after ``disconnect_mid_stream`` / ``stall_mid_frame`` / ``restart_between``).
"""
from __future__ import annotations

from typing import Any, List

import numpy as np

from libertem_live.driver import Fault, FaultKind

from ..headers import HEADER_SIZE, ArrayChunk, DType, numpy_dtype, parse_header
from .source import SynthSource

__all__ = ["SUPPORTED_FAULTS", "INEXPRESSIBLE", "CLOSE", "HOLD", "RESTART", "check_fault", "fault_segments"]

SUPPORTED_FAULTS = frozenset({
    FaultKind.DUPLICATE_FRAME, FaultKind.TRUNCATED_PAYLOAD, FaultKind.CORRUPT_PAYLOAD,
    FaultKind.WRONG_FORMAT, FaultKind.ENDS_SHORT, FaultKind.NEVER_ENDS,
    FaultKind.STALL_MID_FRAME, FaultKind.DISCONNECT_MID_STREAM, FaultKind.RESTART_BETWEEN,
})

INEXPRESSIBLE = {
    FaultKind.FRAME_GAP: "TPX3 rows carry no scan position, so a missing row only makes the "
                         "scan end short (use ends_short)",
    FaultKind.OUT_OF_ORDER: "TPX3 rows carry no scan position, so swapped rows are "
                            "indistinguishable from valid data",
}


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: segment markers: close the connection / keep it open silently / restart the server
CLOSE = _Marker("CLOSE")
HOLD = _Marker("HOLD")
RESTART = _Marker("RESTART")


def check_fault(fault: Fault) -> None:
    """ValueError for a kind this wire format cannot express."""
    if fault.kind not in SUPPORTED_FAULTS:
        raise ValueError(
            f"the TPX3 simulator cannot inject {fault.kind.value!r}: "
            f"{INEXPRESSIBLE.get(fault.kind, 'not mapped')}; it can: "
            f"{', '.join(sorted(k.value for k in SUPPORTED_FAULTS))}")


def fault_segments(src: SynthSource, fault: Fault) -> List[Any]:
    """The byte segments (and markers) of one faulty acquisition."""
    check_fault(fault)
    synth = src.synth
    n = synth.config.nframes
    k = fault.at(n)
    if not 0 <= k < n:
        raise ValueError(f"fault {fault}: frame {k} is outside the scan of {n} positions")
    kind = fault.kind
    if kind is FaultKind.RESTART_BETWEEN:
        return src.segments() + [RESTART]
    c, first = synth.chunk_of(k)
    j = k - first
    rows = synth.chunk_rows[c]
    body = memoryview(src.body)
    cs = src.chunk_starts
    before, chunk, after = body[:cs[c]], synth.chunks[c], body[cs[c + 1]:]
    head = [src.acq_start, src.scan_start, before]
    tail = [after, src.scan_end, src.acq_end]
    if kind is FaultKind.NEVER_ENDS:
        return [src.acq_start, src.scan_start, body]
    if kind is FaultKind.ENDS_SHORT:
        cut = [synth.encode(c, *synth.rows(first, k))] if j else []
        return head + cut + [src.scan_end, src.acq_end]
    if kind in (FaultKind.STALL_MID_FRAME, FaultKind.DISCONNECT_MID_STREAM):
        half = HEADER_SIZE + max(1, (len(chunk) - HEADER_SIZE) // 2)
        return head + [chunk[:half], HOLD if kind is FaultKind.STALL_MID_FRAME else CLOSE]
    if kind is FaultKind.DUPLICATE_FRAME:
        indptr, indices, values = synth.rows(first, first + rows)
        order = np.insert(np.arange(rows), j, j)
        ix = np.concatenate([indices[indptr[r]:indptr[r + 1]] for r in order])
        vals = np.concatenate([values[indptr[r]:indptr[r + 1]] for r in order])
        counts = np.diff(indptr)[order]
        new_ip = np.concatenate([[0], np.cumsum(counts)])
        return head + [synth.encode(c, new_ip, ix, vals)] + tail
    hdr = parse_header(chunk[:HEADER_SIZE])
    assert isinstance(hdr, ArrayChunk)
    payload = bytearray(chunk[HEADER_SIZE:])
    if kind is FaultKind.CORRUPT_PAYLOAD:
        return head + [chunk[:HEADER_SIZE] + b"\xff" * len(payload)] + tail
    if kind is FaultKind.TRUNCATED_PAYLOAD:
        ip_dt = numpy_dtype(synth.config.indptr_dtype)
        indptr = np.frombuffer(payload, ip_dt, rows + 1).astype(np.int64)
        indptr[j + 1:] += 1
        if indptr[-1] > np.iinfo(ip_dt).max:
            raise ValueError(f"fault {fault}: the chunk's indptr dtype {ip_dt} cannot count "
                             "one entry more; use a wider indptr dtype")
        payload[:indptr.size * ip_dt.itemsize] = indptr.astype(ip_dt).tobytes()
        return head + [chunk[:HEADER_SIZE] + bytes(payload)] + tail
    # WRONG_FORMAT: the same rows with bit-packed values
    bits = ArrayChunk(value_dtype=DType.U1, nframes=hdr.nframes, length=hdr.length,
                      indices_offset=hdr.indices_offset, values_offset=hdr.values_offset)
    packed = b"\xff" * ((hdr.length + 7) // 8)
    return head + [bits.pack() + bytes(payload[:hdr.values_offset]) + packed, HOLD]
