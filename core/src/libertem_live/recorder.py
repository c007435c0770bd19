"""Record an acquisition into an HDF5 file at the detector's rate.

:meth:`LiveContext.record <libertem_live.api.LiveContext.record>` takes the
frames off the acquisition's stream in the main process and writes each one
as one HDF5 chunk, still compressed where the detector compressed it: a
decoder that knows its payloads are chunks of an HDF5 filter (bitshuffle +
LZ4 for DECTRIS) says so (:class:`~libertem_live.protocols.ChunkDecoder`),
and the payload goes to the file with a direct chunk write. No worker
decodes and nothing is compressed again, so the recording costs about one
copy of the compressed bytes. Frames of formats without such a declaration
(and single frames that do not fit it) are decoded here and stored as
uncompressed chunks; readers never see a difference.

Like :class:`~libertem_live.udf.record.RecordUDF`, the file is complete or
clearly marked as not: it is written as ``<stem>.incomplete.h5`` and renamed
to the requested name only when every frame was stored and the stream
ended without an error, and an existing file is never replaced unless
``overwrite=True``.  Even a recorder killed outright (SIGKILL, power) leaves
an ``.incomplete.h5`` that opens, with the frames stored up to its last
checkpoint (every CHECKPOINT_S, and whenever it waits for frames) and
``frames_written`` saying how many. What RecordUDF keeps in its JSON sidecar lives in the
file's attributes.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from libertem_live.errors import DecodeError
from libertem_live.protocols import HDF5Filter
from libertem_live.transport.ring import AUX, OFFSET, SIZE

DATASET = "data"
"""Where the frames are in a recording: ``ctx.load("hdf5", path=..., ds_path="data")``."""

_ALL_FILTERS_SKIPPED = 0xFFFFFFFF
CHECKPOINT_S = 2.0
"""While frames come, what is stored is made durable at least this often;
while the recorder waits for frames, within half a second."""


@dataclass(frozen=True)
class RecordingSummary:
    """What :meth:`LiveContext.record` wrote."""

    path: str
    """The recording (the requested name: it is complete)."""
    frames: int
    nbytes: int
    """Bytes of the stored chunks (compressed frames as they came)."""
    stored_as: str
    """The chunks' HDF5 filter (``"bitshuffle+lz4"``, ...) or ``"uncompressed"``."""
    decoded: int
    """Frames that had no chunk form and were decoded before storing."""
    seconds: float
    """From the first frame's wait to the last frame stored."""

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else math.inf


def _incomplete_name(path: str) -> str:
    """``<stem>.incomplete<ext>``, numbered when an earlier one is still there."""
    stem, ext = os.path.splitext(path)
    name = f"{stem}.incomplete{ext or '.h5'}"
    k = 2
    while os.path.exists(name):
        name = f"{stem}.incomplete.{k}{ext or '.h5'}"
        k += 1
    return name


def _chunk_offset(nav: tuple[int, ...], sig_dims: int) -> Callable[[int], tuple[int, ...]]:
    """Frame index -> the chunk's offset in the dataset (nav position, zeros)."""
    zeros = (0,) * sig_dims
    if len(nav) == 1:
        return lambda i: (i,) + zeros
    if len(nav) == 2:
        width = nav[1]
        return lambda i: (i // width, i % width) + zeros
    return lambda i: tuple(int(k) for k in np.unravel_index(i, nav)) + zeros


class H5Recording:
    """One recording, driven by ``LiveContext.record``: the file is created
    before the detector is armed (:meth:`before_live_run`, which refuses an
    existing name), filled by :meth:`write`, and completed or marked
    incomplete by :meth:`after_live_run`."""

    def __init__(self, path: str | os.PathLike[str], overwrite: bool = False):
        self.path = os.fspath(path)
        self.overwrite = overwrite
        self.partial: str | None = None
        self.frames = 0
        self.nbytes = 0
        self.decoded = 0
        self.seconds = 0.0
        self._file: Any = None
        self._ds: Any = None
        self._filter: HDF5Filter | None = None
        self._checkpointed = (0, 0.0)
        self._check_target()

    def _check_target(self) -> None:
        if os.path.exists(self.path) and not self.overwrite:
            raise FileExistsError(
                f"{self.path} exists; recording refuses to overwrite it. Choose another name, "
                "or pass overwrite=True to replace it")
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"cannot record to {self.path}: the folder {folder} "
                                    "does not exist")

    # --- before arming ------------------------------------------------------
    def before_live_run(self, aq: Any) -> None:
        import h5py
        self._check_target()
        self.partial = _incomplete_name(self.path)
        # "w-": never truncate a file that appeared since the name was chosen.
        # Format bounds from HDF5 1.8 on: newer ones (superblock 3) mark the
        # file as open for writing, and after a crash HDF5 refuses to open it
        # at all until h5clear has run; 1.8's still give large attributes
        self._file = h5py.File(self.partial, "w-", libver="v108")
        attrs = self._file.attrs
        attrs["complete"] = False
        attrs["frames_expected"] = int(aq.nimages)
        attrs["frames_written"] = 0

    # --- the frames ---------------------------------------------------------
    def _dataset(self, aq: Any, filt: HDF5Filter | None) -> Any:
        shape = tuple(int(n) for n in aq.shape)
        sig_dims = len(tuple(aq.shape.sig))
        chunks = (1,) * (len(shape) - sig_dims) + shape[-sig_dims:]
        kw: dict[str, Any] = {}
        if filt is not None:
            # the filter's library is needed to read the file, not to write
            # it: the chunks are compressed already
            kw = {"compression": filt.id, "compression_opts": tuple(filt.options),
                  "allow_unknown_filter": True}
        self._ds = self._file.create_dataset(DATASET, shape=shape, dtype=np.dtype(aq.dtype),
                                             chunks=chunks, **kw)
        self._filter = filt
        return self._ds

    def write(self, aq: Any, progress: bool = False) -> None:
        """Store every frame of the running acquisition, in order, as it comes."""
        stream = aq.stream
        decoder = aq.frame_format.decoder
        chunk_of = getattr(decoder, "hdf5_chunk", None)
        n = int(aq.nimages)
        sig = tuple(int(k) for k in aq.shape.sig)
        dtype = np.dtype(aq.dtype)
        # raw pixels are only stored as they are in the dataset's own dtype
        # (a decoder that names another one converts while decoding)
        raw_bytes = dtype.itemsize * math.prod(sig)
        if np.dtype(getattr(decoder, "dtype", dtype)) != dtype:
            raw_bytes = -1
        offset_of = _chunk_offset(tuple(int(k) for k in aq.shape.nav), len(sig))
        ring = stream.ring
        bar = _progress(n) if progress else None
        buf: np.ndarray | None = None
        t0 = time.perf_counter()
        self._checkpointed = (0, time.monotonic())
        try:
            while self.frames < n:
                if time.monotonic() - self._checkpointed[1] > CHECKPOINT_S:
                    self._checkpoint()
                st = stream.next_stack(check=self._checkpoint, check_every=0.5)
                count = min(st.count, n - self.frames)
                try:
                    views = ring.views
                    data = views.payload[st.slot]
                    table = views.table[st.slot]
                    offsets = table[OFFSET, :count]
                    sizes = table[SIZE, :count]
                    aux = table[AUX, :count]
                    todo: list[int] = []  # frames to decode, stored before the next chunk
                    for i, (o, s, a) in enumerate(zip(offsets.tolist(), sizes.tolist(),
                                                      aux.tolist())):
                        got = chunk_of(data[o:o + s], a) if chunk_of is not None else None
                        if got is not None and self._ds is None:
                            self._dataset(aq, got[0])
                        if got is None:
                            todo.append(i)
                            continue
                        filt, chunk = got
                        nbytes = memoryview(chunk).nbytes
                        if filt is not None and filt == self._filter:
                            mask = 0
                        elif filt is None and nbytes == raw_bytes:
                            mask = 0 if self._filter is None else _ALL_FILTERS_SKIPPED
                        else:
                            todo.append(i)
                            continue
                        if todo:
                            buf = self._decode(aq, decoder, data, offsets, sizes, aux, todo, buf)
                            todo = []
                        index = self.frames
                        self._ds.id.write_direct_chunk(offset_of(index), chunk, mask)
                        self.frames = index + 1
                        self.nbytes += nbytes
                    if todo:
                        buf = self._decode(aq, decoder, data, offsets, sizes, aux, todo, buf)
                    views.finish(st.slot, 0, count, st.gen, None)
                finally:
                    ring.release(st.slot, 0, st.count, st.gen)
                stream.ledger.add(dispatched=count)
                if bar is not None:
                    bar.update(count)
        finally:
            self.seconds = time.perf_counter() - t0
            if bar is not None:
                bar.close()

    def _checkpoint(self) -> None:
        """Make the frames stored so far durable: flushed, with their count
        in ``frames_written``, so that the file opens whatever happens next."""
        if self._file is None or self._checkpointed[0] == self.frames:
            return
        self._file.attrs["frames_written"] = self.frames
        self._file.flush()
        self._checkpointed = (self.frames, time.monotonic())

    def _decode(self, aq: Any, decoder: Any, data: np.ndarray, offsets: np.ndarray,
                sizes: np.ndarray, aux: np.ndarray, rows: list[int],
                buf: np.ndarray | None) -> np.ndarray:
        """Decode ``rows`` of the stack (consecutive frames from ``self.frames``
        on) here and store them as uncompressed chunks."""
        from libertem_live.transport.reader import _decode_error
        if self._ds is None:
            self._dataset(aq, None)
        sig = tuple(aq.shape.sig)
        k = len(rows)
        if buf is None or len(buf) < k:
            buf = np.empty((max(k, len(offsets)),) + sig, dtype=np.dtype(aq.dtype))
        idx = np.asarray(rows)
        try:
            decoder.decode(data, offsets[idx], sizes[idx], aux[idx], buf[:k])
        except (DecodeError, ValueError, IndexError) as e:
            raise _decode_error(e, self.frames, 0, k, None) from e
        mask = 0 if self._filter is None else _ALL_FILTERS_SKIPPED
        offset_of = _chunk_offset(tuple(int(n) for n in aq.shape.nav), len(sig))
        for j in range(k):
            index = self.frames
            self._ds.id.write_direct_chunk(offset_of(index), buf[j], mask)
            self.frames = index + 1
            self.nbytes += buf[j].nbytes
        self.decoded += k
        return buf

    # --- after the run ------------------------------------------------------
    def after_live_run(self, aq: Any, error: BaseException | None) -> None:
        if self._file is None:
            return
        import h5py

        from libertem_live.udf.record import recording_info
        complete = error is None and self.frames == int(aq.nimages)
        try:
            if self._ds is None:
                self._dataset(aq, None)
            info = recording_info(aq, self.path if complete else str(self.partial),
                                  None if complete else (error or RuntimeError()), ("h5py",))
            info["versions"]["hdf5"] = h5py.version.hdf5_version
            info["dataset"] = DATASET
            info["stored_as"] = self._stored_as()
            info["frames_written"] = self.frames
            info["frames_decoded_by_recorder"] = self.decoded
            attrs = self._file.attrs
            attrs["frames_written"] = self.frames
            if not complete:
                info["error"] = (f"{type(error).__name__}: {error}" if error is not None
                                 else f"only {self.frames} of {aq.nimages} frames arrived")
                attrs["error"] = info["error"]
                attrs["missing"] = (f"frames {self.frames}..{int(aq.nimages) - 1} (in C order "
                                    "of the scan) were not recorded and read as 0")
            attrs["libertem_live"] = json.dumps(info)
            attrs["complete"] = complete
        finally:
            self._file.close()
            self._file = None
        if complete:
            self._publish()
        elif error is not None and hasattr(error, "add_note"):
            error.add_note(f"the {self.frames} frames recorded before are in {self.partial}")

    def _stored_as(self) -> str:
        return "uncompressed" if self._filter is None else (
            self._filter.name or f"HDF5 filter {self._filter.id}")

    def _publish(self) -> None:
        """Rename the complete file to the requested name, never over a file
        that appeared meanwhile (unless ``overwrite``)."""
        assert self.partial is not None
        if self.overwrite:
            os.replace(self.partial, self.path)
            return
        try:
            os.link(self.partial, self.path)
        except FileExistsError:
            raise FileExistsError(
                f"{self.path} was created by someone else while recording; the complete "
                f"recording stays in {self.partial}") from None
        except OSError:  # no hard links on this file system
            if os.path.exists(self.path):
                raise FileExistsError(
                    f"{self.path} was created by someone else while recording; the complete "
                    f"recording stays in {self.partial}") from None
            os.rename(self.partial, self.path)
            return
        os.unlink(self.partial)

    def summary(self) -> RecordingSummary:
        return RecordingSummary(path=self.path, frames=self.frames, nbytes=self.nbytes,
                                stored_as=self._stored_as(), decoded=self.decoded,
                                seconds=self.seconds)


def _progress(total: int) -> Any:
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="frame", desc="recording")
