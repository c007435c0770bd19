"""The DECTRIS ZeroMQ dump file format: recorded streams the simulator replays.

A dump is a sequence of records, one per ZeroMQ message *part*: an int64
little-endian length, then that many bytes. Grouping into multipart messages
is implied by position: optional junk, ``dheader-1.0``, the configuration
(plus the extra parts for ``header_detail=all``), 4 records per image,
optional ``dseries_end-1.0``. Upstream's recordings and
``anchor-bench/gen_dectris.py`` write this format; the simulator replays it.

A stream V2 recording uses the same records, one per CBOR message (V2
messages have a single part): the ``start`` message, one message per image,
optionally the ``end`` message. CBOR messages begin with the self-describe
tag (bytes ``d9 d9 f7``), which is how a V2 recording is told from a V1 one.
"""
from __future__ import annotations

import mmap
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from libertem_live_dectris.wire import (
    DHEADER, DIMAGE, DSERIES_END, MessageError, SeriesConfig, SeriesHeader,
    header_part_count, parse_config, parse_dheader, peek_htype,
)

_LEN = struct.Struct("<q")
CBOR_SELF_DESCRIBE = b"\xd9\xd9\xf7"


class DumpError(ValueError):
    """The dump file is truncated or not in the expected layout."""


class DumpWriter:
    """Append parts to a dump file; use as a context manager."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._tmp = self._path.with_name(self._path.name + ".tmp")
        self._f: BinaryIO = open(self._tmp, "wb")

    def write(self, part: bytes) -> None:
        self._f.write(_LEN.pack(len(part)))
        self._f.write(part)

    def write_all(self, parts: Iterable[bytes]) -> None:
        for p in parts:
            self.write(p)

    def close(self) -> None:
        """Finish the file; it appears under its name only when complete."""
        if not self._f.closed:
            self._f.close()
            os.replace(self._tmp, self._path)

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
            self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> "DumpWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_parts(path: str | os.PathLike[str], parts: Iterable[bytes]) -> None:
    """Write ``parts`` as a dump file."""
    with DumpWriter(path) as w:
        w.write_all(parts)


def iter_records(buf: bytes | mmap.mmap | memoryview) -> Iterator[memoryview]:
    """Yield each record of a dump held in ``buf`` (zero-copy views)."""
    mv = memoryview(buf)
    pos = 0
    n = len(mv)
    while pos < n:
        if n - pos < 8:
            raise DumpError(f"truncated length field at byte {pos}")
        (length,) = _LEN.unpack_from(mv, pos)
        pos += 8
        if length < 0 or length > n - pos:
            raise DumpError(f"record at byte {pos - 8} claims {length} bytes, only {n - pos} left")
        yield mv[pos:pos + length]
        pos += length


@dataclass
class DumpSeries:
    """One series found in a dump: header parts, image messages, end flag."""

    header: SeriesHeader
    config: SeriesConfig | None
    header_parts: list[memoryview]
    images: list[tuple[memoryview, memoryview, memoryview, memoryview]]
    has_end: bool
    skipped_before: int  # junk records before the dheader


class DumpFile:
    """A memory-mapped dump, split into its first series.

    Keeps the file mapped; parts are memoryviews into the mapping, so a
    16384-frame dump costs no copy at open time. Close it (or use ``with``)
    before deleting the file on Windows.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._f = open(self.path, "rb")
        size = os.fstat(self._f.fileno()).st_size
        if size == 0:
            self._f.close()
            raise DumpError(f"{self.path}: empty dump file")
        self._mm = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self.series = self._split(list(iter_records(self._mm)))
        except (DumpError, MessageError) as e:
            self.close()
            raise DumpError(f"{self.path}: {e}") from None

    @staticmethod
    def _split(records: list[memoryview]) -> DumpSeries:
        i = 0
        while i < len(records) and peek_htype(records[i]) != DHEADER:
            i += 1
        if i == len(records):
            raise DumpError("no dheader-1.0 record found")
        header = parse_dheader(records[i])
        nhdr = header_part_count(header.header_detail)
        hparts = records[i:i + nhdr]
        if len(hparts) < nhdr:
            raise DumpError("truncated global header")
        config = parse_config(hparts[1]) if nhdr >= 2 else None
        pos = i + nhdr
        images = []
        while pos + 4 <= len(records) and peek_htype(records[pos]) == DIMAGE:
            images.append((records[pos], records[pos + 1], records[pos + 2], records[pos + 3]))
            pos += 4
        has_end = pos < len(records) and peek_htype(records[pos]) == DSERIES_END
        return DumpSeries(header, config, list(hparts), images, has_end, i)

    def close(self) -> None:
        mm = getattr(self, "_mm", None)
        if mm is not None:
            self.series = None  # type: ignore[assignment]  # drop views before closing the map
            try:
                mm.close()
            except BufferError:
                pass  # views still exported by a caller; the GC closes it later
            self._mm = None
        self._f.close()

    def __enter__(self) -> "DumpFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_v2_dump(path: str | os.PathLike[str]) -> bool:
    """Whether the dump at ``path`` holds stream V2 (CBOR) messages."""
    with open(path, "rb") as f:
        head = f.read(_LEN.size + len(CBOR_SELF_DESCRIBE))
    return len(head) == _LEN.size + 3 and head[_LEN.size:] == CBOR_SELF_DESCRIBE


class V2DumpFile:
    """A memory-mapped stream V2 recording: its ``start`` message, the image
    messages (views into the mapping, in recorded order) and whether the
    ``end`` message was recorded.

    Only the first and the last record are decoded here; the image messages
    are replayed byte for byte, so the receiver sees what was recorded.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        from libertem_live_dectris.wire_v2 import loads, message_type

        self.path = Path(path)
        self._f = open(self.path, "rb")
        self._mm: mmap.mmap | None = None
        try:
            if os.fstat(self._f.fileno()).st_size == 0:
                raise DumpError("empty dump file")
            self._mm = mmap.mmap(self._f.fileno(), 0, access=mmap.ACCESS_READ)
            records = list(iter_records(self._mm))
            first = message_type(loads(records[0]))
            if first != "start":
                raise DumpError(f"the first message of a stream V2 recording must be 'start', "
                                f"got {first!r}")
            self.has_end = len(records) > 1 and message_type(loads(records[-1])) == "end"
            self.start: memoryview = records[0]
            self.images: list[memoryview] = records[1:len(records) - self.has_end]
        except (DumpError, ValueError) as e:
            self.close()
            raise DumpError(f"{self.path}: {e}") from None

    def close(self) -> None:
        self.images = []
        self.start = memoryview(b"")
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                pass  # views still exported by a caller; the GC closes it later
            self._mm = None
        self._f.close()

    def __enter__(self) -> "V2DumpFile":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
