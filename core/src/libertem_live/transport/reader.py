"""The worker side of the transport: turn slot handles into DataTiles.

Runs inside a LiberTEM worker (or the main thread with the inline executor).
Frames are decoded straight from the shared-memory slot into the tile buffer
and their ``consumed`` marks are set as soon as they have been decoded, so
the receiver can reuse the slot while the UDF still works on the tile.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from libertem_live.errors import DecodeError
from libertem_live.transport.ring import AUX, OFFSET, SIZE, RingSpec, attach

Piece = tuple[int, int, int, int, int]


def messages(worker_queue: Any) -> Iterator[tuple[RingSpec, Iterator[Piece]]]:
    """Read one partition's messages: yields (ring spec, pieces iterator) once."""
    with worker_queue.get() as (header, _payload):
        begin = header
    if begin.get("type") != "BEGIN_TASK":
        raise RuntimeError(f"live partition expected BEGIN_TASK, got {begin.get('type')!r}")
    spec: RingSpec = begin["ring"]
    if "pieces" in begin:  # in-process executor: pull mode
        yield spec, begin["pieces"]
        return

    def pushed() -> Iterator[Piece]:
        while True:
            with worker_queue.get() as (header, _payload):
                msg = header
            kind = msg.get("type")
            if kind == "END_PARTITION":
                if msg.get("failed"):
                    raise RuntimeError("the acquisition failed while feeding this partition")
                return
            if kind != "FRAMES":
                raise RuntimeError(f"live partition got unexpected message {kind!r}")
            yield msg["slot"], msg["lo"], msg["hi"], msg["first"], msg["gen"]

    pieces = pushed()
    try:
        yield spec, pieces
    finally:
        # never leave messages of this partition behind: the executor's own
        # drain must only see its END_TASK sentinel
        for slot, lo, hi, _first, gen in pieces:
            views = attach(spec)
            views.release(slot, lo, hi, gen)


def _rows(spec: RingSpec, slot: int, lo: int, hi: int,
          select: np.ndarray | None) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    views = attach(spec)
    table = views.table[slot]
    offsets, sizes, aux = table[OFFSET, lo:hi], table[SIZE, lo:hi], table[AUX, lo:hi]
    if select is not None:
        offsets, sizes, aux = offsets[select], sizes[select], aux[select]
    return views.payload[slot], offsets, sizes, aux


def _decode_error(e: Exception, first: int, lo: int, hi: int,
                  select: np.ndarray | None) -> DecodeError:
    """Name the frame when the decoder says which one of the batch failed
    (``e.index``), else the range of the batch."""
    idx = getattr(e, "index", None)
    if idx is not None:
        frame = first + (int(select[idx]) if select is not None else int(idx))
        where = f"could not decode frame {frame}"
    else:
        last = first + (int(select[-1]) if select is not None and len(select) else hi - lo - 1)
        where = f"could not decode a frame in {first}..{last}"
    text = e.message if isinstance(e, DecodeError) else str(e)
    cls = type(e) if isinstance(e, DecodeError) else DecodeError
    try:
        return cls(f"{where}: {text}")
    except TypeError:  # a driver's subclass with a constructor of its own
        return DecodeError(f"{where}: {text}")


def decode_csr_from(decoder: Any, spec: RingSpec, slot: int, lo: int, hi: int, first: int,
                    select: np.ndarray | None = None) -> Any:
    """Frames ``lo..hi`` of ``slot`` (or the ``select``-ed subset) as one CSR matrix
    of shape (n, prod(sig_shape)), from a decoder that offers ``decode_csr``."""
    data, offsets, sizes, aux = _rows(spec, slot, lo, hi, select)
    try:
        return decoder.decode_csr(data, offsets, sizes, aux)
    except (DecodeError, ValueError, IndexError) as e:
        raise _decode_error(e, first, lo, hi, select) from e


def decode_into(decoder: Any, spec: RingSpec, slot: int, lo: int, hi: int,
                out: np.ndarray, first: int, select: np.ndarray | None = None) -> None:
    """Decode frames ``lo..hi`` of ``slot`` (or the ``select``-ed subset) into ``out``."""
    data, offsets, sizes, aux = _rows(spec, slot, lo, hi, select)
    try:
        decoder.decode(data, offsets, sizes, aux, out)
    except (DecodeError, ValueError, IndexError) as e:
        raise _decode_error(e, first, lo, hi, select) from e
