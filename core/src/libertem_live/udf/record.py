"""Record the live stream to a ``.npy`` file.

The workers write their frames straight into the file under a temporary
name (``.<name>.partial``).  Only when the acquisition completed
is it renamed to the requested name, next to a JSON sidecar describing the
recording (shape, dtype, detector, settings, versions, ledger).  A failed
run leaves ``<stem>.incomplete.npy`` and ``<stem>.incomplete.json`` instead,
so a half-written file is never presented as complete and data from a
sample that may not survive a second scan is not thrown away.
"""
from __future__ import annotations

import datetime
import functools
import json
import os
import platform
from typing import Any

import numpy as np
from libertem.udf.base import UDF


def _paths(filename: str) -> tuple[str, str, str, str]:
    filename = os.fspath(filename)
    head, tail = os.path.split(filename)
    stem = os.path.splitext(filename)[0]
    partial = os.path.join(head, f".{tail}.partial")
    return partial, stem + ".json", stem + ".incomplete.npy", stem + ".incomplete.json"


def _versions(conn: Any = None, packages: tuple[str, ...] = ()) -> dict[str, str]:
    """Python, LiberTEM, numpy, the core, ``packages``, and the distribution of
    the driver whose connection recorded (found from the connection's package)."""
    top = type(conn).__module__.split(".")[0] if conn is not None else None
    return dict(_versions_of(top, tuple(packages)))


@functools.lru_cache(maxsize=16)
def _versions_of(top: str | None, packages: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Looked up once per process: finding the driver's distribution reads
    every installed package's metadata (most of a second), which each
    recording would otherwise pay after its last frame."""
    from importlib import metadata
    out = [("python", platform.python_version())]
    dists = ["libertem", "libertem-live-core", "numpy", *packages]
    if top is not None:
        dists += metadata.packages_distributions().get(top, [])
    for dist in dict.fromkeys(dists):
        try:
            out.append((dist, metadata.version(dist)))
        except metadata.PackageNotFoundError:
            pass
    return tuple(out)


def recording_info(dataset: Any, filename: str, error: BaseException | None,
                   packages: tuple[str, ...] = ()) -> dict[str, Any]:
    """What a recording says about itself (RecordUDF's JSON sidecar, the HDF5
    recorder's attributes): shape, pixel type, the detector, its series id and
    settings, the versions of the software that took part (``packages`` adds
    distributions), the ledger, and whether the run completed."""
    ledger = getattr(dataset, "ledger", None)
    conn = getattr(dataset, "conn", None)
    settings = getattr(dataset, "meta", None) and dataset.meta.metadata
    run = dict(getattr(dataset, "run_info", None) or {})
    series = run.get("series", (settings or {}).get("series"))
    return {
        "file": os.path.basename(filename),
        "shape": [int(n) for n in dataset.shape],
        "nav_shape": [int(n) for n in dataset.shape.nav],
        "sig_shape": [int(n) for n in dataset.shape.sig],
        "dtype": str(np.dtype(dataset.dtype)),
        "detector": getattr(conn, "detector_name", None),
        "series": _jsonable(series),
        "run": _jsonable(run),
        "settings": _jsonable(settings),
        "versions": _versions(conn, packages),
        "ledger": ledger.as_dict() if ledger is not None else None,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "complete": error is None,
    }


class RecordUDF(UDF):
    """Write every frame, in its native dtype, to ``filename`` (NPY format).

    Refuses to overwrite an existing file unless ``overwrite=True``.
    """

    def __init__(self, filename: str, overwrite: bool = False):
        super().__init__(filename=os.fspath(filename), overwrite=overwrite)

    def get_preferred_input_dtype(self) -> Any:
        return self.USE_NATIVE_DTYPE

    def get_result_buffers(self) -> dict[str, Any]:
        return {}

    # main process, before arming
    def before_live_run(self, dataset: Any) -> None:
        filename = self.params.filename
        if os.path.exists(filename) and not self.params.overwrite:
            raise FileExistsError(
                f"{filename} exists; RecordUDF refuses to overwrite a recording. Pass "
                "RecordUDF(filename, overwrite=True) or choose another name"
            )
        partial = _paths(filename)[0]
        mm = np.lib.format.open_memmap(
            partial, mode="w+", dtype=dataset.dtype, shape=tuple(dataset.shape),
        )
        del mm

    def after_live_run(self, dataset: Any, error: BaseException | None) -> None:
        filename = self.params.filename
        partial, sidecar, incomplete, incomplete_sidecar = _paths(filename)
        info = recording_info(dataset, filename, error)
        if not os.path.exists(partial):
            return
        if error is None:
            os.replace(partial, filename)
            target = sidecar
        else:
            info["error"] = f"{type(error).__name__}: {error}"
            info["file"] = os.path.basename(incomplete)
            os.replace(partial, incomplete)
            target = incomplete_sidecar
        with open(target, "w") as f:
            json.dump(info, f, indent=2)

    # workers
    def get_task_data(self) -> dict[str, Any]:
        if self.meta.roi is not None:
            raise ValueError(
                "RecordUDF records every frame of the scan at its position; run it without "
                "roi= (and select positions from the recording afterwards)")
        partial = _paths(self.params.filename)[0]
        return {"out": _FrameWriter(partial, tuple(self.meta.dataset_shape.sig))}

    def process_tile(self, tile: Any) -> None:
        self.task_data.out.write(self.meta.slice.origin[0], tile)

    def postprocess(self) -> None:
        self.task_data.out.close()


class _FrameWriter:
    """Frames into the data section of an NPY file with ``os.pwrite``.

    Neither a memory map nor a flush: page faults on a freshly created
    file's mapping cost about twice the CPU of a write, and a flush per
    partition made each worker wait for the disk (half of a 512x512 u16
    recording's worker time) before it could decode the next partition.
    The page cache is shared, so once the last partition has been written
    the main process can rename a complete file; the kernel writes it back
    in its own time.  A full disk is an ``OSError`` here (an incomplete
    recording), not the SIGBUS that would kill a worker writing a mapping.
    """

    def __init__(self, path: str, sig_shape: tuple[int, ...]):
        header = np.load(path, mmap_mode="r")
        self.offset = int(header.offset)
        self.dtype = header.dtype
        self.frame_bytes = self.dtype.itemsize * int(np.prod(sig_shape, dtype=np.int64))
        self.path = path
        del header
        self._file = open(path, "r+b")

    def write(self, index: int, frames: Any) -> None:
        data = np.ascontiguousarray(frames, dtype=self.dtype)
        view = memoryview(data.reshape(-1).view(np.uint8))  # any byte order
        pos = self.offset + int(index) * self.frame_bytes
        fd = self._file.fileno()
        while view:
            n = os.pwrite(fd, view, pos)
            if n == 0:
                raise OSError(f"writing frame {index} and on to {self.path} stored "
                              f"nothing at byte {pos}; check the free space on that disk")
            view = view[n:]
            pos += n

    def close(self) -> None:
        self._file.close()


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except TypeError:
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        if isinstance(value, np.ndarray):
            return f"<array {value.shape} {value.dtype}>"
        return repr(value)
