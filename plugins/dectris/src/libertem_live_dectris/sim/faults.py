"""The core's stream faults (:class:`~libertem_live.driver.FaultKind`) on a
DECTRIS stream, as the simulator injects them.

``fault.at(n)`` is the 0-based image of the series where it happens (default:
the middle).  A fault applies to the first series the simulator sends after
it was set; later series are clean.

=========================  ===============================================================
kind                       what the simulator sends
=========================  ===============================================================
``frame_gap``              image ``at`` is not sent; the others keep their frame ids
``duplicate_frame``        image ``at`` is sent twice
``out_of_order``           images ``at`` and ``at + 1`` are sent swapped
``truncated_payload``      image ``at``'s blob is cut to half; its descriptor's ``size``
                           still says the full length
``corrupt_payload``        image ``at``'s blob is ``0xff`` bytes of the right length (an
                           impossible bitshuffle header, an LZ4 literal run past the end)
``wrong_format``           image ``at``'s descriptor announces width and height + 8
``ends_short``             the ``dseries_end`` follows image ``at - 1``
``never_ends``             every image, but no ``dseries_end``
``disconnect_mid_stream``  the PUSH socket is closed after ``at`` images (those still
                           go out first; bound again, same port, at the next arm)
``restart_between``        the series is clean; after its end the PUSH socket is closed
                           and bound again on the same port, as when the DCU software
                           restarts (the REST side holds no connection between requests,
                           HTTP/1.0, so it has none to drop)
=========================  ===============================================================

In stream V2 (one CBOR message per image) the same kinds act on the image
messages: the image id is skipped / repeated / swapped, the chosen channel's
(compressed) bytes are halved or overwritten with ``0xff``, its tag 40 array
announces width and height + 8, the ``end`` message comes early or never,
the socket drops as above.

Kinds this wire format cannot express (asking for them raises ValueError):

* ``stall_mid_frame``: ZeroMQ delivers a multipart message whole or not at
  all, so an image cannot stop half-way; a silent DCU looks the same to a
  receiver before, between and "inside" images (the connection's timeout,
  :class:`~libertem_live.driver.AcquisitionTimeoutError`).
* ``corrupt_payload`` with ``compression="none"``: raw pixels have no
  structure to break, and the receiver does not check the image's md5 hash
  (too slow at full rate), so the garbage would decode as pixels.
"""
from __future__ import annotations

from libertem_live.driver import Fault, FaultKind, parse_fault

SUPPORTED_FAULTS = frozenset({
    FaultKind.FRAME_GAP, FaultKind.DUPLICATE_FRAME, FaultKind.OUT_OF_ORDER,
    FaultKind.TRUNCATED_PAYLOAD, FaultKind.CORRUPT_PAYLOAD, FaultKind.WRONG_FORMAT,
    FaultKind.ENDS_SHORT, FaultKind.NEVER_ENDS, FaultKind.DISCONNECT_MID_STREAM,
    FaultKind.RESTART_BETWEEN,
})

INEXPRESSIBLE = {
    FaultKind.STALL_MID_FRAME: "ZeroMQ delivers a multipart message whole or not at all, so "
                               "an image cannot stop half-way",
}


#: Faults that change an image's bytes (the rest only pick which images go out).
ALTERING = frozenset({FaultKind.TRUNCATED_PAYLOAD, FaultKind.CORRUPT_PAYLOAD,
                      FaultKind.WRONG_FORMAT})


def check_fault(fault: str | Fault | FaultKind | None, compression: str = "bslz4",
                recorded_v2: bool = False) -> Fault | None:
    """``fault`` as a :class:`Fault`, or ValueError if this simulator cannot
    inject it (for the series' ``compression``; ``recorded_v2``: a stream V2
    recording is replayed as recorded, its messages are not re-encoded)."""
    if fault is None:
        return None
    f = parse_fault(fault)
    if recorded_v2 and f.kind in ALTERING:
        raise ValueError(
            f"the DECTRIS simulator cannot inject {f.kind.value!r} into a replayed stream V2 "
            "recording (its messages go out as recorded); use a synthetic series "
            "(no path=) or one of the faults that pick images: "
            + ", ".join(sorted(k.value for k in SUPPORTED_FAULTS if k not in ALTERING)))
    if f.kind in INEXPRESSIBLE:
        raise ValueError(f"the DECTRIS simulator cannot inject {f.kind.value!r}: "
                         f"{INEXPRESSIBLE[f.kind]}")
    if f.kind is FaultKind.CORRUPT_PAYLOAD and compression == "none":
        raise ValueError("the DECTRIS simulator cannot inject 'corrupt_payload' into "
                         "uncompressed images: garbage of the right length decodes as pixels; "
                         "use compression 'bslz4' or 'lz4'")
    return f


class SeriesFaults:
    """The fault of one series, as the sender asks about it per image."""

    def __init__(self, fault: Fault | None, n_images: int) -> None:
        self.kind = None if fault is None else fault.kind
        self.at = -1 if fault is None else fault.at(n_images)
        if self.kind is FaultKind.OUT_OF_ORDER and self.at + 1 >= n_images:
            self.at = n_images - 2  # swap the last two: there must be a next one
        self.n_images = n_images

    def image_at(self, k: int) -> int:
        """The image sent at position ``k`` of the series."""
        if self.kind is FaultKind.OUT_OF_ORDER:
            if k == self.at:
                return k + 1
            if k == self.at + 1:
                return k - 1
        return k

    def stops_at(self, k: int) -> FaultKind | None:
        """ENDS_SHORT or DISCONNECT_MID_STREAM if the series stops before image ``k``."""
        if k == self.at and self.kind in (FaultKind.ENDS_SHORT, FaultKind.DISCONNECT_MID_STREAM):
            return self.kind
        return None

    def copies(self, k: int) -> int:
        """How often image ``k`` is sent (FRAME_GAP: 0, DUPLICATE_FRAME: 2)."""
        if k == self.at:
            if self.kind is FaultKind.FRAME_GAP:
                return 0
            if self.kind is FaultKind.DUPLICATE_FRAME:
                return 2
        return 1

    def alters(self, k: int) -> FaultKind | None:
        """The payload or descriptor fault of image ``k``, if any."""
        if k == self.at and self.kind in (FaultKind.TRUNCATED_PAYLOAD,
                                          FaultKind.CORRUPT_PAYLOAD, FaultKind.WRONG_FORMAT):
            return self.kind
        return None

    @property
    def sends_end(self) -> bool:
        return self.kind is not FaultKind.NEVER_ENDS

    @property
    def restarts_after(self) -> bool:
        return self.kind is FaultKind.RESTART_BETWEEN
