"""The contracts between the core and a detector driver.

A driver provides a :class:`DetectorConnection`; in passive mode the
connection hands out :class:`PendingAcquisition` objects, in active mode an
:class:`AcquisitionController` arms the detector.  Both end in a
:class:`~libertem_live.transport.stream.FrameStream` that a receiver thread
fills, plus a :class:`FrameFormat` that says how to decode what it holds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from libertem_live.transport.stream import FrameStream


@runtime_checkable
class FrameDecoder(Protocol):
    """Turns the encoded frames of one ring slot into pixels, in a worker.

    ``data`` is the slot's payload (1-D uint8); frame ``i`` of the batch is
    ``data[offsets[i]:offsets[i] + sizes[i]]`` and ``aux[i]`` is the driver's
    own per-frame word.  ``out`` has shape ``(n, *sig_shape)`` and the dtype the
    UDFs asked for.  Must be picklable: it travels inside each partition.
    Raise ``ValueError`` (with the batch index) for payloads that do not decode.

    Optional: ``warmup(dtype)`` compiles kernels ahead of the stream (the
    LiveContext runs it on every worker once per ``warmup_key``), and
    ``decode_csr(data, offsets, sizes, aux)`` returns a CSR matrix of shape
    ``(n, prod(sig_shape))`` for sparse formats.
    """

    def decode(self, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
               aux: np.ndarray, out: np.ndarray) -> None: ...


@runtime_checkable
class WarmableDecoder(FrameDecoder, Protocol):
    """A decoder whose kernels compile on first use: the LiveContext calls
    ``warmup("float32")`` once in every worker before the first acquisition
    that uses a decoder with this ``warmup_key`` (any hashable; decoders that
    share kernels share the key), so the first frames are not late."""

    warmup_key: Any

    def warmup(self, dtype: str) -> None: ...


@runtime_checkable
class SparseDecoder(FrameDecoder, Protocol):
    """A decoder of a sparse format (``FrameFormat(sparse=True)``): UDFs that
    take sparse tiles get a CSR matrix of shape ``(n, prod(sig_shape))``
    without a dense frame in between."""

    def decode_csr(self, data: np.ndarray, offsets: np.ndarray, sizes: np.ndarray,
                   aux: np.ndarray) -> Any: ...


@dataclass(frozen=True)
class HDF5Filter:
    """An HDF5 filter (its registered ``id`` and ``cd_values``) whose chunk
    layout a detector's compressed payloads already have, so that a recorder
    can store them as chunks without decompressing them."""

    id: int
    options: tuple[int, ...] = ()
    name: str = ""

    @classmethod
    def bitshuffle_lz4(cls, itemsize: int) -> HDF5Filter:
        """Bitshuffle + LZ4 (filter 32008): a chunk is the uncompressed size
        (8 bytes) and block size (4 bytes, both big-endian), then the
        length-prefixed LZ4 blocks of the bit-shuffled pixels.  The filter
        reads the element size from ``cd_values[2]`` and the compression from
        ``cd_values[4]`` (2: LZ4); the block size comes from each chunk."""
        return cls(32008, (0, 2, int(itemsize), 0, 2), "bitshuffle+lz4")

    @classmethod
    def lz4(cls) -> HDF5Filter:
        """LZ4 (filter 32004): a chunk is the uncompressed size (8 bytes) and
        block size (4 bytes, big-endian), then per block its compressed length
        (4 bytes, big-endian; equal to the block size: stored uncompressed)
        and the LZ4 block."""
        return cls(32004, (0,), "lz4")


@runtime_checkable
class ChunkDecoder(FrameDecoder, Protocol):
    """A decoder whose payloads can be recorded as they came, as HDF5 chunks
    of one frame each (what ``LiveContext.record`` writes, in the main
    process, without decoding).

    ``hdf5_chunk(payload, aux)`` gets one frame's bytes (1-D uint8, a view
    into the ring: return it, or a new buffer, never keep it) and its
    ``aux`` word, and returns ``(filter, chunk)``: ``chunk`` is what the
    ``filter`` decodes to the frame, or, with ``filter`` None, the frame's
    pixels as they are (C order, exactly the bytes of ``FrameFormat.dtype``).
    Return None where the payload is neither: the recorder decodes that
    frame with :meth:`decode` and stores its pixels.  The first frame's
    filter becomes the dataset's; a later frame with another filter is
    decoded too.  Check what is cheap to check (a header's size field); the
    chunks are not decompressed before they are written.
    """

    def hdf5_chunk(self, payload: np.ndarray, aux: int) -> tuple[HDF5Filter | None, Any] | None: ...


@dataclass
class FrameFormat:
    """What the frames of an acquisition look like once decoded."""

    sig_shape: tuple[int, ...]
    dtype: np.dtype
    decoder: FrameDecoder
    sparse: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    #: array backends the acquisition offers UDFs (LiberTEM's names, e.g.
    #: ``"numpy"``, ``"sparse.COO"``); None: the default for dense or sparse frames
    array_backends: tuple[str, ...] | None = None


@runtime_checkable
class PendingAcquisition(Protocol):
    """An acquisition the detector has announced (passive mode)."""

    nimages: int
    nav_shape: tuple[int, ...] | None
    format: FrameFormat

    def take_stream(self) -> FrameStream:
        """The stream that has been receiving since the announcement; once."""
        ...

    def cancel(self) -> None: ...


@runtime_checkable
class AcquisitionController(Protocol):
    """Arms the detector for one acquisition run (active mode)."""

    def frame_format(self, conn: DetectorConnection) -> FrameFormat:
        """Geometry and decoding, known before arming (for the DataSet's meta)."""
        ...

    def arm(self, conn: DetectorConnection, nimages: int) -> FrameStream:
        """Configure and arm; the receiver must already listen when this returns."""
        ...

    def stop(self, conn: DetectorConnection, stream: FrameStream,
             error: BaseException | None) -> None:
        """Disarm / stop the detector after a run, successful or not."""
        ...

    def determine_nav_shape(self, nimages: int) -> tuple[int, ...] | None: ...


@runtime_checkable
class DetectorConnection(Protocol):
    """A persistent connection to one detector; a context manager.

    ``close()`` is idempotent, and entering a closed connection with ``with
    conn:`` opens it again.
    """

    detector_name: str

    def wait_for_acquisition(self, timeout: float | None = None) -> PendingAcquisition | None: ...

    def get_active_controller(self, **params: Any) -> AcquisitionController: ...

    def open(self) -> DetectorConnection: ...

    def close(self) -> None: ...

    def __enter__(self) -> DetectorConnection: ...

    def __exit__(self, *exc: Any) -> None: ...
