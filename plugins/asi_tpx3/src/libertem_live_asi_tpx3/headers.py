"""The five fixed-size (32 byte) headers of the ASI TPX3 sparse CSR stream.

Every message on the wire starts with one of these headers; the first byte is
a tag that says which one. Layouts are bincode: little-endian, fixed-width
fields, reserved bytes zero. Parsing is strict about what we
need to stay in sync with the stream (tag, dtype codes, sizes) and lenient
about what does not matter (``version`` and reserved bytes are not checked,
as upstream servers write different versions).
"""
from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import ClassVar, Optional, Tuple, Union

import numpy as np

from .errors import Tpx3FormatError, Tpx3ProtocolError

__all__ = [
    "HEADER_SIZE",
    "Tag",
    "DType",
    "FormatType",
    "DATA_DTYPES",
    "numpy_dtype",
    "dtype_code",
    "itemsize",
    "AcquisitionStart",
    "ScanStart",
    "ArrayChunk",
    "ScanEnd",
    "AcquisitionEnd",
    "Header",
    "parse_header",
    "Tpx3ProtocolError",
    "Tpx3FormatError",
]

HEADER_SIZE = 32


class Tag(enum.IntEnum):
    """First byte of every header."""

    ACQUISITION_START = 0x00
    SCAN_START = 0x01
    ARRAY_CHUNK = 0x02
    SCAN_END = 0x03
    ACQUISITION_END = 0x04


class DType(enum.IntEnum):
    """dtype codes used for indptr, indices and values.

    U1 and U4 (bit-packed) exist in the protocol but no sender implements
    them; we reject them instead of guessing a bit order.
    """

    U1 = 0
    U4 = 1
    U8 = 2
    U16 = 3
    U32 = 4
    U64 = 5


class FormatType(enum.IntEnum):
    """What the values mean: event counts or time-over-threshold."""

    CSR = 0
    TOT = 1


_NP_OF_CODE = {
    DType.U8: np.dtype("<u1"),
    DType.U16: np.dtype("<u2"),
    DType.U32: np.dtype("<u4"),
    DType.U64: np.dtype("<u8"),
}
_CODE_OF_NP = {v: k for k, v in _NP_OF_CODE.items()}
# plain-int lookups for the per-chunk path (an Enum call costs ~1 us, and the
# receiver parses thousands of headers per scan)
_NP_OF_INT = {int(k): v for k, v in _NP_OF_CODE.items()}
_DTYPE_OF_INT = {int(k): k for k in _NP_OF_CODE}
_ITEMSIZE_OF_INT = {int(k): v.itemsize for k, v in _NP_OF_CODE.items()}

#: dtype codes that carry data (U1/U4 are rejected)
DATA_DTYPES: Tuple[DType, ...] = (DType.U8, DType.U16, DType.U32, DType.U64)


def numpy_dtype(
    code: int, *, field: str = "dtype", offset: Optional[int] = None,
    chunk: Optional[int] = None,
) -> np.dtype:
    """Little-endian numpy dtype for a wire dtype code.

    Raises :class:`Tpx3ProtocolError` naming ``field`` for unknown codes and
    for the bit-packed U1/U4 codes, which carry no byte-addressable data.
    """
    fast = _NP_OF_INT.get(code)  # type: ignore[call-overload]
    if fast is not None:
        return fast
    try:
        dt = DType(code)
    except ValueError:
        raise Tpx3ProtocolError(
            f"unknown {field} code {code} (known: 0 U1, 1 U4, 2 U8, 3 U16, 4 U32, 5 U64)",
            offset=offset, chunk=chunk,
        ) from None
    if dt not in _NP_OF_CODE:
        raise Tpx3FormatError(
            f"{field} {dt.name} (bit-packed) is not supported; only U8/U16/U32/U64 carry data",
            offset=offset, chunk=chunk,
            hint="configure the sender for byte-sized dtypes and reconnect",
        )
    return _NP_OF_CODE[dt]


def dtype_code(dtype: Union[np.dtype, type, str, int]) -> DType:
    """Wire code for a numpy unsigned integer dtype (or pass a code through)."""
    if isinstance(dtype, (int, np.integer)) and not isinstance(dtype, bool):
        code = DType(int(dtype))
        numpy_dtype(code)  # reject U1/U4
        return code
    dt = np.dtype(dtype).newbyteorder("<")
    try:
        return _CODE_OF_NP[dt]
    except KeyError:
        raise ValueError(f"{dtype!r} has no TPX3 wire code (use uint8/16/32/64)") from None


def itemsize(code: int) -> int:
    """Bytes per element for a data-carrying dtype code."""
    size = _ITEMSIZE_OF_INT.get(code)  # type: ignore[call-overload]
    return size if size is not None else numpy_dtype(code).itemsize


def _check_len(buf: bytes, name: str) -> None:
    if len(buf) != HEADER_SIZE:
        raise ValueError(f"{name} header must be {HEADER_SIZE} bytes, got {len(buf)}")


def _check_tag(buf, tag: Tag, name: str) -> None:
    if buf[0] != tag:
        raise Tpx3ProtocolError(f"expected {name} tag {int(tag):#04x}, got {buf[0]:#04x}")


@dataclass(frozen=True)
class AcquisitionStart:
    """Starts an acquisition; fixes nav/sig shape and the index dtypes."""

    nav_shape: Tuple[int, int]
    sig_shape: Tuple[int, int] = (512, 512)
    indptr_dtype: DType = DType.U32
    indices_dtype: DType = DType.U32
    format_type: FormatType = FormatType.CSR
    sequence: int = 1
    version: int = 7

    TAG: ClassVar[Tag] = Tag.ACQUISITION_START
    _S: ClassVar[struct.Struct] = struct.Struct("<BBBHHBHHBI15x")

    def pack(self) -> bytes:
        return self._S.pack(
            self.TAG, self.version, int(self.format_type),
            self.nav_shape[0], self.nav_shape[1], int(self.indptr_dtype),
            self.sig_shape[0], self.sig_shape[1], int(self.indices_dtype),
            self.sequence,
        )

    @classmethod
    def unpack(cls, buf: bytes, *, offset: Optional[int] = None) -> "AcquisitionStart":
        """Parse and validate (dtype codes, format type, non-empty shapes)."""
        _check_len(buf, "AcquisitionStart")
        _check_tag(buf, cls.TAG, "AcquisitionStart")
        (_, version, fmt, n0, n1, ip, s0, s1, ix, seq) = cls._S.unpack(buf)
        numpy_dtype(ip, field="indptr_dtype", offset=offset)
        numpy_dtype(ix, field="indices_dtype", offset=offset)
        try:
            fmt_t = FormatType(fmt)
        except ValueError:
            raise Tpx3ProtocolError(
                f"AcquisitionStart: unknown format_type {fmt} (0 CSR counts, 1 ToT)",
                offset=offset,
            ) from None
        if s0 == 0 or s1 == 0:
            raise Tpx3ProtocolError(
                f"AcquisitionStart: empty sig_shape ({s0}, {s1})", offset=offset)
        return cls(
            nav_shape=(n0, n1), sig_shape=(s0, s1), indptr_dtype=DType(ip),
            indices_dtype=DType(ix), format_type=fmt_t, sequence=seq, version=version,
        )

    @property
    def nframes(self) -> int:
        """Scan positions per scan (``nav_shape[0] * nav_shape[1]``)."""
        return self.nav_shape[0] * self.nav_shape[1]

    @property
    def sig_size(self) -> int:
        return self.sig_shape[0] * self.sig_shape[1]


@dataclass(frozen=True)
class ScanStart:
    """Starts a scan; followed by ``metadata_length`` bytes (JSON) on the wire."""

    sequence: int = 1
    metadata_length: int = 0

    TAG: ClassVar[Tag] = Tag.SCAN_START
    _S: ClassVar[struct.Struct] = struct.Struct("<BIQ19x")

    def pack(self) -> bytes:
        return self._S.pack(self.TAG, self.sequence, self.metadata_length)

    @classmethod
    def unpack(cls, buf: bytes, *, offset: Optional[int] = None) -> "ScanStart":
        _check_len(buf, "ScanStart")
        _check_tag(buf, cls.TAG, "ScanStart")
        _, seq, mlen = cls._S.unpack(buf)
        return cls(sequence=seq, metadata_length=mlen)


@dataclass(frozen=True)
class ArrayChunk:
    """Header of one self-contained CSR matrix with ``nframes`` rows.

    ``length`` is the number of stored entries (nnz). All offsets are
    relative to the start of the payload, which follows the header directly.
    """

    value_dtype: DType
    nframes: int
    length: int
    indices_offset: int
    values_offset: int

    TAG: ClassVar[Tag] = Tag.ARRAY_CHUNK
    _S: ClassVar[struct.Struct] = struct.Struct("<BBIIII14x")

    def pack(self) -> bytes:
        return self._S.pack(
            self.TAG, int(self.value_dtype), self.nframes, self.length,
            self.indices_offset, self.values_offset,
        )

    @classmethod
    def unpack(
        cls, buf: bytes, *, offset: Optional[int] = None, chunk: Optional[int] = None,
    ) -> "ArrayChunk":
        """Parse; checks only the value dtype (layout needs the acquisition's dtypes)."""
        _check_len(buf, "ArrayChunk")
        _check_tag(buf, cls.TAG, "ArrayChunk")
        _, vd, nframes, nnz, ixo, vo = cls._S.unpack(buf)
        vdt = _DTYPE_OF_INT.get(vd)
        if vdt is None:
            numpy_dtype(vd, field="value_dtype", offset=offset, chunk=chunk)  # raises
        return cls(value_dtype=vdt, nframes=nframes, length=nnz,
                   indices_offset=ixo, values_offset=vo)

    @property
    def nnz(self) -> int:
        return self.length

    def payload_size(self) -> int:
        """Bytes of payload after the header: ``values_offset + nnz * itemsize(value)``."""
        return self.values_offset + self.length * itemsize(self.value_dtype)

    def validate(
        self, indptr_dtype: int, indices_dtype: int, *,
        offset: Optional[int] = None, chunk: Optional[int] = None,
    ) -> None:
        """Check that the three regions do not overlap and appear in order.

        Without this a corrupt header could make the decoder read indices
        from the values region (garbage but no crash) - better to fail here,
        where we can still say which chunk it was.
        """
        ip_len = (self.nframes + 1) * itemsize(indptr_dtype)
        ix_len = self.length * itemsize(indices_dtype)
        if self.indices_offset < ip_len:
            raise Tpx3ProtocolError(
                f"ArrayChunk: indices_offset {self.indices_offset} overlaps the indptr "
                f"region ({self.nframes}+1 rows x {itemsize(indptr_dtype)} B = {ip_len} B)",
                offset=offset, chunk=chunk)
        if self.values_offset < self.indices_offset + ix_len:
            raise Tpx3ProtocolError(
                f"ArrayChunk: values_offset {self.values_offset} overlaps the indices "
                f"region (offset {self.indices_offset} + {self.length} x "
                f"{itemsize(indices_dtype)} B)",
                offset=offset, chunk=chunk)

    def regions(self, indptr_dtype: int, indices_dtype: int) -> Tuple[slice, slice, slice]:
        """Byte slices of indptr, indices and values within the payload."""
        ip_len = (self.nframes + 1) * itemsize(indptr_dtype)
        ix_len = self.length * itemsize(indices_dtype)
        v_len = self.length * itemsize(self.value_dtype)
        return (
            slice(0, ip_len),
            slice(self.indices_offset, self.indices_offset + ix_len),
            slice(self.values_offset, self.values_offset + v_len),
        )


@dataclass(frozen=True)
class ScanEnd:
    """Ends a scan."""

    sequence: int = 1

    TAG: ClassVar[Tag] = Tag.SCAN_END
    _S: ClassVar[struct.Struct] = struct.Struct("<BI27x")

    def pack(self) -> bytes:
        return self._S.pack(self.TAG, self.sequence)

    @classmethod
    def unpack(cls, buf: bytes, *, offset: Optional[int] = None) -> "ScanEnd":
        _check_len(buf, "ScanEnd")
        _check_tag(buf, cls.TAG, "ScanEnd")
        return cls(sequence=cls._S.unpack(buf)[1])


@dataclass(frozen=True)
class AcquisitionEnd:
    """Ends an acquisition (inside a scan: cancellation)."""

    sequence: int = 1

    TAG: ClassVar[Tag] = Tag.ACQUISITION_END
    _S: ClassVar[struct.Struct] = struct.Struct("<BI27x")

    def pack(self) -> bytes:
        return self._S.pack(self.TAG, self.sequence)

    @classmethod
    def unpack(cls, buf: bytes, *, offset: Optional[int] = None) -> "AcquisitionEnd":
        _check_len(buf, "AcquisitionEnd")
        _check_tag(buf, cls.TAG, "AcquisitionEnd")
        return cls(sequence=cls._S.unpack(buf)[1])


Header = Union[AcquisitionStart, ScanStart, ArrayChunk, ScanEnd, AcquisitionEnd]

_BY_TAG = {
    Tag.ACQUISITION_START: AcquisitionStart,
    Tag.SCAN_START: ScanStart,
    Tag.ARRAY_CHUNK: ArrayChunk,
    Tag.SCAN_END: ScanEnd,
    Tag.ACQUISITION_END: AcquisitionEnd,
}
_BY_INT_TAG = {int(k): v for k, v in _BY_TAG.items()}


def parse_header(
    buf: Union[bytes, bytearray, memoryview], *, offset: Optional[int] = None,
    chunk: Optional[int] = None,
) -> Header:
    """Parse any of the five headers, dispatching on the tag byte.

    ``offset``/``chunk`` only feed error messages. An unknown tag raises
    :class:`Tpx3ProtocolError`: message sizes are implied by the tag, so
    there is no way to skip an unknown message.
    """
    buf = bytes(buf)
    _check_len(buf, "TPX3")
    tag = buf[0]
    cls = _BY_INT_TAG.get(tag)
    if cls is None:
        raise Tpx3ProtocolError(
            f"unknown header tag {tag:#04x} (expected 0x00-0x04); "
            f"first header bytes: {buf[:8].hex(' ')}",
            offset=offset, chunk=chunk,
        ) from None
    if cls is ArrayChunk:
        return ArrayChunk.unpack(buf, offset=offset, chunk=chunk)
    return cls.unpack(buf, offset=offset)
