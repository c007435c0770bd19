"""What every driver's pending acquisition (passive mode) shares: the stream
that has been receiving since the announcement, handed over exactly once."""
from __future__ import annotations

from libertem_live.errors import AcquisitionStateError
from libertem_live.transport.stream import FrameStream


class PendingStream:
    """Base of the drivers' ``PendingAcquisition`` classes; subclasses set
    ``self._stream`` and the protocol's ``nimages``, ``nav_shape``, ``format``."""

    _stream: FrameStream | None = None

    def take_stream(self) -> FrameStream:
        if self._stream is None:
            raise AcquisitionStateError(
                f"this pending {type(self).__name__} was already used or cancelled; "
                "wait for the next acquisition with conn.wait_for_acquisition()")
        stream, self._stream = self._stream, None
        return stream

    def cancel(self) -> None:
        """Stop receiving this acquisition and free its ring."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None
