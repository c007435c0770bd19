"""The image receive loop in machine code: libzmq called from numba.

Why: in Python every image costs four ``recv`` calls, a few checks and a
copy, about 20 µs with the GIL held.  At ARINA rates (100,000 frames/s of
~1 KB) that alone is two cores, and it starves the LiberTEM executor that
shares the main process.  Here the loop runs in a ``nogil`` numba function
that calls libzmq directly (the very library pyzmq loaded, found
through pyzmq's extension module, so the socket pointer pyzmq hands out is
valid): about 1-2 µs per image, and the GIL stays free.

The kernel receives an image's parts, compares its first two parts with
what the previous image predicts (the bytes up to the frame number, the
frame number itself, the descriptor up to ``"size"``) and copies the blob
into the current ring slot.  Whatever it cannot vouch for (the first image,
any message that is not predicted, a blob that does not fit the slot) it
*holds*: the parts stay received and unclosed in ``msgs`` and the Python
side (:class:`~libertem_live_dectris.receiver.DectrisFraming`) looks at them,
raises or learns new prefixes, and calls the kernel again, which then
stores the held image first.  So there is one set of rules, in Python, and
a fast path that only ever says "same as before".

Stream V2 has its own kernel, :func:`receive_images_v2`: one single-part
CBOR message per image, walked in place (the message's bytes inside libzmq,
no copy) by :mod:`.cbor_scan`'s compiled scan; an image of the series, the
next one, of the expected shape, type and compression has its channel's
bytes copied into the slot, anything else is held for Python the same way.

If libzmq's symbols cannot be found (another pyzmq build), ``AVAILABLE`` is
False and the receiver uses its Python loop.
"""
from __future__ import annotations

import ctypes
import logging
from typing import Any

import numpy as np
from numba import carray, njit, types
from numba.extending import intrinsic

from libertem_live.driver import FRAME_ALIGN  # frozen into the cached kernel

from libertem_live_dectris import cbor_scan

log = logging.getLogger(__name__)

MSG_BYTES = 64
"""sizeof(zmq_msg_t) in every libzmq 4.x."""
MAX_PARTS = 3
"""Parts an image needs: dimage, dimage_d, blob (dconfig and appendix are dropped)."""
SCRATCH = 4096
"""Bytes of the first two parts we compare; longer parts are held for Python."""

# return codes of receive_images
DONE = 0
AGAIN = 1
FULL = 2
HELD = 3
ERROR = 4
BATCH = 5

# state vector
S_FRAME, S_COUNT, S_FILL, S_HELD, S_ERRNO = range(5)

_EAGAIN = 11


_SYMBOLS = ("zmq_msg_init", "zmq_msg_recv", "zmq_msg_data", "zmq_msg_size",
            "zmq_msg_more", "zmq_msg_close", "zmq_errno")


def _load() -> dict[str, Any] | None:
    """ctypes handles of libzmq's message API, for the Python side, after
    making the same library's symbols visible to numba's linker."""
    try:
        import llvmlite.binding as llvm
        from zmq.backend.cython import _zmq
        lib = ctypes.CDLL(_zmq.__file__)
        fns = {name: getattr(lib, name) for name in _SYMBOLS}
        llvm.load_library_permanently(_zmq.__file__)
    except (ImportError, OSError, AttributeError, RuntimeError) as e:
        log.debug("libzmq not reachable through pyzmq, Python receive loop: %s", e)
        return None
    for name in _SYMBOLS:
        if llvm.address_of_symbol(name) != ctypes.cast(fns[name], ctypes.c_void_p).value:
            log.debug("%s resolves to another libzmq than pyzmq's; Python receive loop", name)
            return None
    fns["zmq_msg_data"].argtypes = [ctypes.c_uint64]
    fns["zmq_msg_data"].restype = ctypes.c_uint64
    fns["zmq_msg_size"].argtypes = [ctypes.c_uint64]
    fns["zmq_msg_size"].restype = ctypes.c_size_t
    fns["zmq_msg_close"].argtypes = [ctypes.c_uint64]
    fns["zmq_msg_close"].restype = ctypes.c_int
    return fns


_FNS = _load()
AVAILABLE = _FNS is not None


def msg_bytes(msgs: np.ndarray, i: int) -> bytes:
    """Contents of held part ``i`` (for the Python side's checks)."""
    assert _FNS is not None
    addr = msgs.ctypes.data + i * MSG_BYTES
    return ctypes.string_at(_FNS["zmq_msg_data"](addr), _FNS["zmq_msg_size"](addr))


def msg_size(msgs: np.ndarray, i: int) -> int:
    assert _FNS is not None
    return int(_FNS["zmq_msg_size"](msgs.ctypes.data + i * MSG_BYTES))


def close_held(msgs: np.ndarray, state: np.ndarray) -> None:
    """Drop the held parts (a message the Python side discarded or rejected)."""
    assert _FNS is not None
    for i in range(int(state[S_HELD])):
        _FNS["zmq_msg_close"](msgs.ctypes.data + i * MSG_BYTES)
    state[S_HELD] = 0


def new_buffers() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``msgs`` (room for the parts plus one to drain into), ``state``, ``scratch``."""
    return (np.zeros((MAX_PARTS + 1) * MSG_BYTES, dtype=np.uint8),
            np.zeros(5, dtype=np.int64), np.zeros(2 * SCRATCH, dtype=np.uint8))


if AVAILABLE:
    # by name, resolved when the code is linked or loaded from numba's cache
    # (which ctypes function pointers, fixed addresses, would rule out)
    _u = types.uintp
    _init = types.ExternalFunction("zmq_msg_init", types.intc(_u))
    _recv = types.ExternalFunction("zmq_msg_recv", types.intc(_u, _u, types.intc))
    _data = types.ExternalFunction("zmq_msg_data", _u(_u))
    _size = types.ExternalFunction("zmq_msg_size", _u(_u))
    _more = types.ExternalFunction("zmq_msg_more", types.intc(_u))
    _close = types.ExternalFunction("zmq_msg_close", types.intc(_u))
    _errno = types.ExternalFunction("zmq_errno", types.intc())
    _memcpy = types.ExternalFunction("memcpy", _u(_u, _u, _u))

    @njit(nogil=True, cache=True)
    def _recv_part(msg: int, sock: int, flags: int) -> int:
        """One message part into ``msg``: 0, or libzmq's errno (``msg`` closed)."""
        _init(msg)
        if _recv(msg, sock, flags) < 0:
            e = _errno()
            _close(msg)
            return e
        return 0

    @njit(nogil=True, cache=True, inline="always")
    def _booked(state: np.ndarray, table: np.ndarray, count: int, fill: int, size: int,
                aux: int) -> None:
        """Book the image just copied to ``fill`` (``size`` bytes) as row
        ``count`` of the slot's table; the parts are closed, the next image
        goes to the next aligned offset."""
        table[0, count] = fill
        table[1, count] = size
        table[2, count] = aux
        state[S_HELD] = 0
        state[S_COUNT] = count + 1
        state[S_FILL] = (fill + size + FRAME_ALIGN - 1) // FRAME_ALIGN * FRAME_ALIGN
        state[S_FRAME] += 1

    @njit(nogil=True, cache=True)
    def _predicted(scratch: np.ndarray, n_head: int, n_desc: int, frame: int,
                   head_prefix: np.ndarray, desc_prefix: np.ndarray) -> bool:
        hp = head_prefix.shape[0]
        dp = desc_prefix.shape[0]
        if hp == 0 or dp == 0 or n_head <= hp or n_desc < dp:
            return False
        for k in range(hp):
            if scratch[k] != head_prefix[k]:
                return False
        value = 0
        p = hp
        while p < n_head and 48 <= scratch[p] <= 57:
            value = value * 10 + (scratch[p] - 48)
            p += 1
        if p == hp or p >= n_head or scratch[p] != 44 or value != frame:
            return False
        for k in range(dp):
            if scratch[SCRATCH + k] != desc_prefix[k]:
                return False
        return True

    @njit(nogil=True, cache=True)
    def receive_images(sock: int, msgs: np.ndarray, scratch: np.ndarray, state: np.ndarray,
                       payload: np.ndarray, table: np.ndarray, nimages: int, batch: int,
                       head_prefix: np.ndarray, desc_prefix: np.ndarray) -> int:
        """Receive images into one ring slot until something needs Python.

        ``state`` carries frame, count and fill of the slot in and out, and
        the number of held parts.  Returns DONE (all ``nimages`` stored),
        AGAIN (nothing waiting on the socket), FULL (the slot's frame table
        is full), HELD (a message needs Python: not predicted, or its blob
        does not fit the slot), ERROR (libzmq error, errno in state) or
        BATCH (``batch`` images stored; lets Python look at the clock).
        """
        base = msgs.ctypes.data
        max_frames = table.shape[1]
        room = payload.shape[0]
        pbase = payload.ctypes.data
        sbase = scratch.ctypes.data
        stored = 0
        while state[S_FRAME] < nimages:
            count = state[S_COUNT]
            if count >= max_frames:
                return FULL
            if stored >= batch:
                return BATCH
            nparts = state[S_HELD]
            if nparts == 0:
                e = _recv_part(base, sock, 1)
                if e != 0:
                    if e == _EAGAIN:
                        return AGAIN
                    state[S_ERRNO] = e
                    return ERROR
                nparts = 1
                more = _more(base)
                drain = base + MAX_PARTS * MSG_BYTES
                while more:
                    m = base + nparts * MSG_BYTES if nparts < MAX_PARTS else drain
                    e = _recv_part(m, sock, 0)
                    if e != 0:
                        state[S_ERRNO] = e
                        state[S_HELD] = nparts
                        return ERROR
                    more = _more(m)
                    if m == drain:
                        _close(drain)
                    else:
                        nparts += 1
                state[S_HELD] = nparts
                if nparts < MAX_PARTS:
                    return HELD
                n_head = _size(base)
                n_desc = _size(base + MSG_BYTES)
                if n_head > SCRATCH or n_desc > SCRATCH:
                    return HELD
                _memcpy(sbase, _data(base), n_head)
                _memcpy(sbase + SCRATCH, _data(base + MSG_BYTES), n_desc)
                if not _predicted(scratch, n_head, n_desc, state[S_FRAME], head_prefix,
                                  desc_prefix):
                    return HELD
            blob = base + 2 * MSG_BYTES
            size = _size(blob)
            fill = state[S_FILL]
            if fill + size > room:
                return HELD
            _memcpy(pbase + fill, _data(blob), size)
            for i in range(MAX_PARTS):
                _close(base + i * MSG_BYTES)
            _booked(state, table, count, fill, size, 0)
            stored += 1
        return DONE


    @intrinsic
    def _bytes_at(typingctx, address):  # type: ignore[no-untyped-def]
        """The integer ``address`` as a uint8 pointer (for ``carray``)."""
        sig = types.CPointer(types.uint8)(address)

        def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
            return builder.inttoptr(args[0], context.get_value_type(types.CPointer(types.uint8)))
        return sig, codegen

    @njit(nogil=True, cache=True)
    def receive_images_v2(sock: int, msgs: np.ndarray, state: np.ndarray, payload: np.ndarray,
                          table: np.ndarray, nimages: int, batch: int, series: int,
                          channel: np.ndarray, expect: np.ndarray, tag_ok: np.ndarray,
                          found: np.ndarray, head: np.ndarray) -> int:
        """Receive stream V2 images into one ring slot until something needs
        Python; return codes and ``state`` as :func:`receive_images`.

        ``expect``: (height, width, itemsize, raw byte count) of the channel's
        array; ``tag_ok[t]``: typed-array tag ``t`` has the series' pixel
        type; ``found`` / ``head``: the scan's result and scratch arrays.  A
        message is stored only if the scan found the channel's array in it,
        it belongs to ``series``, is the next image and matches ``expect``;
        its ``aux`` is the compression (the decoder's kind).
        """
        base = msgs.ctypes.data
        max_frames = table.shape[1]
        room = payload.shape[0]
        pbase = payload.ctypes.data
        stored = 0
        while state[S_FRAME] < nimages:
            count = state[S_COUNT]
            if count >= max_frames:
                return FULL
            if stored >= batch:
                return BATCH
            if state[S_HELD] == 0:
                e = _recv_part(base, sock, 1)
                if e != 0:
                    if e == _EAGAIN:
                        return AGAIN
                    state[S_ERRNO] = e
                    return ERROR
                state[S_HELD] = 1
                if _more(base):
                    return HELD  # not a V2 message: Python reads the parts one by one
            data = _data(base)
            buf = carray(_bytes_at(data), (_size(base),))
            cbor_scan._scan(buf, channel, found, head)
            tag = found[cbor_scan.TYPED_TAG]
            alg = found[cbor_scan.ALGORITHM]
            length = found[cbor_scan.LENGTH]
            if (found[cbor_scan.STATUS] != cbor_scan.FOUND or found[cbor_scan.SERIES] != series
                    or found[cbor_scan.IMAGE_ID] != state[S_FRAME]
                    or found[cbor_scan.DIM0] != expect[0] or found[cbor_scan.DIM1] != expect[1]
                    or tag < 0 or tag >= tag_ok.shape[0] or tag_ok[tag] == 0
                    or (alg == cbor_scan.ALG_BSLZ4 and found[cbor_scan.ELEM_SIZE] != expect[2])
                    or (alg == cbor_scan.ALG_NONE and length != expect[3])):
                return HELD
            fill = state[S_FILL]
            if fill + length > room:
                return HELD
            _memcpy(pbase + fill, data + found[cbor_scan.OFFSET], length)
            _close(base)
            _booked(state, table, count, fill, length, alg)
            stored += 1
        return DONE


def warmup(v2: bool = False) -> None:
    """Compile the kernel (about a second; stream V2's with ``v2``) before
    the first series arrives."""
    if not AVAILABLE:
        return
    msgs, state, scratch = new_buffers()
    state[S_FRAME] = 1
    table = np.zeros((3, 1), np.int64)
    if v2:
        receive_images_v2(0, msgs, state, np.zeros(16, np.uint8), table, 0, 1, 0,
                          np.zeros(1, np.uint8), np.zeros(4, np.int64), np.zeros(1, np.uint8),
                          np.zeros(10, np.int64), np.zeros(2, np.int64))
        return
    receive_images(0, msgs, scratch, state, np.zeros(16, np.uint8), table, 0, 1,
                   np.zeros(1, np.uint8), np.zeros(1, np.uint8))
