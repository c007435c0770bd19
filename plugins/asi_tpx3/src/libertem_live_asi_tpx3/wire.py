"""The TPX3 message order, without I/O.

One TCP connection carries acquisition after acquisition::

    AcquisitionStart (ScanStart [metadata] ArrayChunk* ScanEnd)* AcquisitionEnd

and an AcquisitionEnd inside a scan cancels it.  :class:`StreamState`
checks that order; the driver's reader and :func:`iter_stream` (which walks
an in-memory recording, e.g. a capture file) share it.  The headers
themselves are parsed in :mod:`.headers`.
"""
from __future__ import annotations

import enum
from typing import Iterator, Optional, Tuple, Union

from .errors import Tpx3ProtocolError
from .headers import (
    HEADER_SIZE, AcquisitionEnd, AcquisitionStart, ArrayChunk, Header, ScanEnd, ScanStart,
    parse_header,
)

__all__ = ["Phase", "StreamState", "iter_stream", "message_extra"]


class Phase(enum.Enum):
    """Where in the message order the stream is."""

    IDLE = "idle"  # expecting AcquisitionStart
    ACQUISITION = "acquisition"  # between scans: ScanStart or AcquisitionEnd
    SCAN = "scan"  # ArrayChunk, ScanEnd or AcquisitionEnd (= cancel)


class StreamState:
    """Enforces AcquisitionStart -> (ScanStart -> ArrayChunk* -> ScanEnd)* -> AcquisitionEnd.

    ``check_frame_count`` (default on) also demands that the chunks of a
    scan add up to ``nav_shape[0] * nav_shape[1]`` rows: too many rows fail
    at the ArrayChunk that overflows, too few at ScanEnd.  The driver counts
    rows itself (it must tell "ended short" from "too many"), so it turns
    this off.
    """

    def __init__(self, *, check_frame_count: bool = True) -> None:
        self.check_frame_count = check_frame_count
        self.reset()

    def reset(self) -> None:
        """Back to idle: the next header must be an AcquisitionStart."""
        self.phase = Phase.IDLE
        self.acquisition: Optional[AcquisitionStart] = None
        #: ArrayChunk number within the current acquisition (next one)
        self.chunk_index = 0
        #: rows received in the current scan
        self.frames_in_scan = 0
        #: True if the last AcquisitionEnd arrived inside a scan
        self.cancelled = False

    def feed(self, hdr: Header, *, offset: Optional[int] = None) -> None:
        """Advance with one header or raise :class:`Tpx3ProtocolError`."""
        name = type(hdr).__name__
        if self.phase is Phase.IDLE:
            if not isinstance(hdr, AcquisitionStart):
                raise Tpx3ProtocolError(
                    f"unexpected {name} header while idle; the first header of an "
                    "acquisition must be AcquisitionStart", offset=offset)
            self.acquisition = hdr
            self.chunk_index = 0
            self.cancelled = False
            self.phase = Phase.ACQUISITION
        elif self.phase is Phase.ACQUISITION:
            if isinstance(hdr, ScanStart):
                self.frames_in_scan = 0
                self.phase = Phase.SCAN
            elif isinstance(hdr, AcquisitionEnd):
                self.phase = Phase.IDLE
            else:
                raise Tpx3ProtocolError(
                    f"unexpected {name} header after AcquisitionStart/ScanEnd; expected "
                    "ScanStart or AcquisitionEnd", offset=offset, chunk=self.chunk_index)
        else:  # SCAN
            if isinstance(hdr, ArrayChunk):
                acq = self.acquisition
                assert acq is not None
                hdr.validate(acq.indptr_dtype, acq.indices_dtype, offset=offset,
                             chunk=self.chunk_index)
                total = self.frames_in_scan + hdr.nframes
                if self.check_frame_count and total > acq.nframes:
                    raise Tpx3ProtocolError(
                        f"chunk rows exceed the scan: {self.frames_in_scan} rows received "
                        f"+ {hdr.nframes} in this chunk > nav_shape {acq.nav_shape} = "
                        f"{acq.nframes} positions", offset=offset, chunk=self.chunk_index)
                self.frames_in_scan = total
                self.chunk_index += 1
            elif isinstance(hdr, ScanEnd):
                acq = self.acquisition
                assert acq is not None
                if self.check_frame_count and self.frames_in_scan != acq.nframes:
                    raise Tpx3ProtocolError(
                        f"ScanEnd after {self.frames_in_scan} rows, but nav_shape "
                        f"{acq.nav_shape} needs {acq.nframes} (premature end of scan)",
                        offset=offset, chunk=self.chunk_index)
                self.phase = Phase.ACQUISITION
            elif isinstance(hdr, AcquisitionEnd):
                self.cancelled = True
                self.phase = Phase.IDLE
            else:
                raise Tpx3ProtocolError(
                    f"unexpected {name} header inside a scan; expected ArrayChunk, "
                    "ScanEnd or AcquisitionEnd", offset=offset, chunk=self.chunk_index)


def message_extra(hdr: Header) -> int:
    """Bytes that follow the header on the wire (metadata, chunk payload)."""
    if isinstance(hdr, ArrayChunk):
        return hdr.payload_size()
    if isinstance(hdr, ScanStart):
        return hdr.metadata_length
    return 0


def iter_stream(data: Union[bytes, bytearray, memoryview], *, check_frame_count: bool = True
                ) -> Iterator[Tuple[int, Header, memoryview]]:
    """Walk an in-memory recording of the stream (e.g. a capture file).

    Yields ``(offset, header, record)`` where ``record`` is a view of the
    header plus whatever follows it (metadata for ScanStart, payload for
    ArrayChunk) - for ArrayChunk exactly a chunk record as :mod:`.decode`
    expects.  Same order checks as the driver's reader.
    """
    mv = memoryview(data).cast("B")
    state = StreamState(check_frame_count=check_frame_count)
    pos = 0
    cut = "the recording is cut short; record it again"
    while pos < len(mv):
        if len(mv) - pos < HEADER_SIZE:
            raise Tpx3ProtocolError(f"recording ends inside a header at byte {pos}", hint=cut)
        hdr = parse_header(mv[pos:pos + HEADER_SIZE], offset=pos, chunk=state.chunk_index)
        state.feed(hdr, offset=pos)
        end = pos + HEADER_SIZE + message_extra(hdr)
        if end > len(mv):
            raise Tpx3ProtocolError(
                f"recording ends inside the message starting at byte {pos} "
                f"({len(mv) - pos} of {end - pos} bytes present)", hint=cut)
        yield pos, hdr, mv[pos:end]
        pos = end
