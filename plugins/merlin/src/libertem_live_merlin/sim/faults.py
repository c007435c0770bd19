"""The kit's fault list (:class:`~libertem_live.driver.FaultKind`) on the
Merlin data port.

A fault applies to the first acquisition the simulator serves after it was
set (constructor ``fault=``, ``--fault KIND[@FRAME]``, or
:meth:`MerlinSim.inject_fault`); later acquisitions are clean.  ``FRAME``
is the 0-based index of the frame the fault hits (default: the middle of the
series).  What each kind sends:

=========================  ================================================
``frame_gap``              frame FRAME is never sent; the next ones keep
                           their sequence numbers
``duplicate_frame``        frame FRAME is sent twice
``out_of_order``           frames FRAME+1 and FRAME are sent swapped
``truncated_payload``      frame FRAME is a well-framed MPX message with
                           half the pixel payload its MQ1 header describes
``corrupt_payload``        frame FRAME's MPX payload is garbage of the right
                           length where the MQ1 header should be (pixel
                           bytes alone cannot be told from pixels: every
                           bit pattern is a valid count)
``wrong_format``           frame FRAME is encoded with another counter depth
                           (its MQ1 header says so, its size follows)
``ends_short``             the acquisition stops after FRAME frames and the
                           detector is idle again (``STOPACQUISITION``): the
                           MPX stream has no end message, so a receiver sees
                           this as a silent port while ``DETECTORSTATUS`` is
                           0, or as the next acquisition's header
``stall_mid_frame``        half of frame FRAME's message, then silence with
                           the connection open until the acquisition is
                           stopped or the client leaves
``disconnect_mid_stream``  half of frame FRAME's message, then the data
                           connection is closed
``restart_between``        the acquisition is sent whole, then every
                           connection (control and data) is dropped, as by a
                           restart of the Merlin software; the ports keep
                           listening
=========================  ================================================

Not expressible, so asking for it raises :class:`ValueError`:

* ``never_ends``: the MPX stream has no end-of-series message to withhold;
  a series is over when the frame count of its acquisition header was
  reached, so "every frame, but no end marker" is every normal acquisition.
"""
from __future__ import annotations

from typing import Optional

from libertem_live.driver import Fault, FaultKind, parse_fault

SUPPORTED_FAULTS = frozenset({
    FaultKind.FRAME_GAP, FaultKind.DUPLICATE_FRAME, FaultKind.OUT_OF_ORDER,
    FaultKind.TRUNCATED_PAYLOAD, FaultKind.CORRUPT_PAYLOAD, FaultKind.WRONG_FORMAT,
    FaultKind.ENDS_SHORT, FaultKind.STALL_MID_FRAME, FaultKind.DISCONNECT_MID_STREAM,
    FaultKind.RESTART_BETWEEN,
})

INEXPRESSIBLE = {
    FaultKind.NEVER_ENDS: "the MPX stream has no end-of-series message to withhold",
}

GARBAGE = b"GARBAGE-NOT-AN-MQ1-HEADER-"

#: counter depth -> the one ``wrong_format`` switches to (values still fit)
OTHER_DEPTH = {1: 6, 6: 12, 12: 24, 24: 12}


def merlin_fault(fault: str | Fault | FaultKind | None) -> Optional[Fault]:
    """``fault`` as a :class:`Fault` the simulator can inject (None: none)."""
    if fault is None:
        return None
    f = parse_fault(fault)
    if f.kind not in SUPPORTED_FAULTS:
        raise ValueError(
            f"the Merlin simulator cannot inject {f.kind.value!r}: "
            f"{INEXPRESSIBLE.get(f.kind, 'not supported')}; it can: "
            f"{', '.join(sorted(k.value for k in SUPPORTED_FAULTS))}")
    return f


def fault_frame(fault: Fault, nimages: int) -> int:
    """Where ``fault`` hits in a series of ``nimages`` frames (kept inside the
    series; a swap needs a frame after it)."""
    last = nimages - (2 if fault.kind is FaultKind.OUT_OF_ORDER else 1)
    if fault.kind is FaultKind.ENDS_SHORT:
        last = nimages - 1
    return max(0, min(fault.at(nimages), last))


__all__ = ["SUPPORTED_FAULTS", "INEXPRESSIBLE", "merlin_fault", "fault_frame",
           "GARBAGE", "OTHER_DEPTH"]
