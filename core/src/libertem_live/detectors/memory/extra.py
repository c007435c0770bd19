"""``open(data=..., extra_kwargs=...)``: the keywords upstream LiberTEM-live
passed on to LiberTEM's ``MemoryDataSet``, mapped onto this driver.

Those that shape the data (``datashape``, ``sig_dims``, ``nav_shape``,
``array_backends``) keep their meaning; those that only tuned how
``MemoryDataSet`` reads (tiling, partitions, delays) do not apply to a
stream and are accepted with a warning, so old scripts still run.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

#: MemoryDataSet keywords about reading an array, not about its content
IGNORED = frozenset({"tileshape", "num_partitions", "tiledelay", "check_cast", "base_shape",
                     "force_need_decode", "io_backend"})
KNOWN = frozenset({"datashape", "sig_dims", "nav_shape", "array_backends"}) | IGNORED


def apply_extra_kwargs(
    extra: dict[str, Any], data: np.ndarray | None, sig_dims: int,
    nav_shape: tuple[int, ...] | None, array_backends: Sequence[str] | None,
) -> tuple[np.ndarray | None, int, tuple[int, ...] | None, Sequence[str] | None]:
    unknown = sorted(set(extra) - KNOWN)
    if unknown:
        raise TypeError(
            f"memory driver: extra_kwargs {unknown} are not supported; it understands "
            f"{sorted(KNOWN)} (the MemoryDataSet keywords that apply to a stream)")
    ignored = sorted(set(extra) & IGNORED)
    if ignored:
        warnings.warn(
            f"memory driver: extra_kwargs {ignored} tune how MemoryDataSet reads an array and "
            "have no effect on a stream; they are ignored", UserWarning, stacklevel=4)
    sig_dims = int(extra.get("sig_dims", sig_dims))
    if extra.get("nav_shape") is not None:
        nav_shape = tuple(extra["nav_shape"])
    if extra.get("array_backends") is not None:
        array_backends = tuple(extra["array_backends"])
    if data is None and extra.get("datashape") is not None:
        # what MemoryDataSet did without data: random float32 frames of that shape
        data = np.random.default_rng().random(tuple(extra["datashape"]), dtype=np.float32)
    return data, sig_dims, nav_shape, array_backends
