"""The one module a detector driver imports from the core.

Everything a driver needs is here, and nothing else of the core is public
to drivers: what is not in ``__all__`` may change without notice.  Names
load on first use, so a driver's ``plugin.py`` that imports only
:func:`hookimpl` and :class:`DetectorInfo` stays cheap (listing the
installed drivers must not start numba or LiberTEM).

What a driver fills in, and what the core does for it:

* registration: a ``plugin.py`` with a :data:`hookimpl` returning
  :class:`DetectorInfo` (name, ``open``, :data:`PLUGIN_API_VERSION`);
* the connection: a :class:`BaseConnection` subclass (sockets, passive
  and active mode); the base owns open/close, the ring, one acquisition at a
  time and freeing everything when the connection is dropped;
* the data path: a :class:`Framing` (read the next frames of the wire
  format into a :class:`RingWriter`), started per acquisition with
  :meth:`BaseConnection.start_stream`; the core's :class:`ReceiveLoop`
  owns the thread, stop, flushing, time-outs, the wait for the end marker,
  the ledger and the error messages.  :class:`TcpReader` and the ``zmq_*``
  helpers read sockets and raise the signals (:class:`Stopped`,
  :class:`IdleTimeout`, :class:`PeerClosed`, :class:`Truncated`,
  :class:`Stalled`) that the loop turns into errors;
* decoding: a picklable :class:`FrameDecoder` (optionally
  :class:`WarmableDecoder`, :class:`SparseDecoder`, and
  :class:`ChunkDecoder` with its :class:`HDF5Filter` for payloads that
  can be recorded as they came) described by a :class:`FrameFormat`;
  :class:`RawDecoder` for plain pixels;
* errors: the exception classes below, for a driver to raise or subclass;
* simulators: :class:`FaultKind` / :func:`parse_fault`, the fault list
  every simulator injects the same way.

When :data:`PLUGIN_API_VERSION` changes: whenever a name leaves
``__all__``, a signature here changes incompatibly, or a protocol gains a
required member.  Adding names or optional members does not change it.
"""
from __future__ import annotations

from libertem_live.errors import (
    AcquisitionError, AcquisitionStateError, AcquisitionTimeoutError, DecodeError,
    DetectorConnectionError, DriverError, DuplicateFrameError, FrameFormatError,
    FrameGapError, FrameOrderError, LiveError, MissingEndWarning, NavShapeError,
    PassiveOnlyError, StalledError, StreamTruncatedError,
)
from libertem_live.plugin import PLUGIN_API_VERSION, CommandInfo, DetectorInfo, hookimpl
from libertem_live.sdk.faults import Fault, FaultKind, parse_fault
from libertem_live.sdk.lazy import lazy_names
from libertem_live.sdk.signals import (
    EndOfSeries, IdleTimeout, PeerClosed, ReceiveSignal, Stalled, Stopped, Truncated,
)

_LAZY: dict[str, str | tuple[str, str]] = {
    "BaseConnection": "libertem_live.sdk.connection",
    "Framing": "libertem_live.sdk.receiver",
    "ReceiveLoop": "libertem_live.sdk.receiver",
    "FLUSH_LATENCY_S": "libertem_live.sdk.receiver",
    "stuck_receivers": "libertem_live.sdk.receiver",
    "TcpReader": "libertem_live.sdk.tcp",
    "FOREVER": "libertem_live.sdk.tcp",
    "connect_with_backoff": "libertem_live.reconnect",
    "PendingStream": "libertem_live.pending",
    "FrameFormat": "libertem_live.protocols",
    "FrameDecoder": "libertem_live.protocols",
    "WarmableDecoder": "libertem_live.protocols",
    "SparseDecoder": "libertem_live.protocols",
    "ChunkDecoder": "libertem_live.protocols",
    "HDF5Filter": "libertem_live.protocols",
    "AcquisitionController": "libertem_live.protocols",
    "PendingAcquisition": "libertem_live.protocols",
    "DetectorConnection": "libertem_live.protocols",
    "RawDecoder": "libertem_live.transport.raw",
    "RingConfig": "libertem_live.transport.ring",
    "RingWriter": "libertem_live.transport.ring",
    "FRAME_ALIGN": "libertem_live.transport.ring",
    "frame_aligned": "libertem_live.transport.ring",
    "FrameStream": "libertem_live.transport.stream",
    "LiveAcquisition": "libertem_live.acquisition",
    "UpstreamConnectionBuilder": "libertem_live.sdk.upstream",
}
_LAZY.update({
    "zmq_pull_socket": ("libertem_live.sdk.zmq", "pull_socket"),
    "zmq_recv_part": ("libertem_live.sdk.zmq", "recv_part"),
    "zmq_drain_rest": ("libertem_live.sdk.zmq", "drain_rest"),
})

__all__ = [
    # registration
    "hookimpl", "DetectorInfo", "CommandInfo", "PLUGIN_API_VERSION",
    # connection and modes
    "BaseConnection", "PendingStream", "PassiveOnlyError",
    "AcquisitionController", "PendingAcquisition", "DetectorConnection",
    # the data path
    "Framing", "ReceiveLoop", "FLUSH_LATENCY_S", "stuck_receivers", "FrameStream",
    "RingConfig", "RingWriter", "FRAME_ALIGN", "frame_aligned",
    "TcpReader", "FOREVER", "connect_with_backoff",
    "zmq_pull_socket", "zmq_recv_part", "zmq_drain_rest",
    "ReceiveSignal", "Stopped", "IdleTimeout", "PeerClosed", "Truncated", "Stalled",
    "EndOfSeries",
    # decoding
    "FrameFormat", "FrameDecoder", "WarmableDecoder", "SparseDecoder", "RawDecoder",
    "ChunkDecoder", "HDF5Filter",
    # errors
    "LiveError", "DriverError", "AcquisitionError", "AcquisitionStateError",
    "AcquisitionTimeoutError", "StalledError", "DecodeError", "FrameFormatError",
    "FrameOrderError", "FrameGapError", "DuplicateFrameError", "StreamTruncatedError",
    "DetectorConnectionError", "NavShapeError", "MissingEndWarning",
    # simulators
    "FaultKind", "Fault", "parse_fault",
    # packaging, and names for scripts written for upstream LiberTEM-live
    "lazy_names", "LiveAcquisition", "UpstreamConnectionBuilder",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, also=__all__)
