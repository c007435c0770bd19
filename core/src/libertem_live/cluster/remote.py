"""The function a dask worker runs for a live partition, and the form its
task travels in.

The task (LiberTEM's UDF task, its partition and the partition's frames)
travels as one opaque pickled blob, a uint8 array.  Why: the scheduler
unpickles every task's arguments it is given; a blob it only stores and
forwards (out-of-band, without a copy), so it never imports LiberTEM or a
detector driver, and never unpickles frames it does not use.  dask keeps
the blob until the task is done, which is what lets it run the task again
on another worker when one dies.  This module is what the scheduler does
import (to find the function), so it imports nothing heavy itself.
"""
from __future__ import annotations

import pickle
from typing import Any

import numpy as np


def blob_of(task: Any) -> np.ndarray:
    """``task`` pickled (with cloudpickle, as LiberTEM sends tasks: a UDF
    class defined in a notebook travels by value)."""
    import cloudpickle
    return np.frombuffer(cloudpickle.dumps(task, protocol=5), dtype=np.uint8)


def run_live_task(blob: np.ndarray, params: Any, task_id: int,
                  threaded_executor: bool) -> dict[str, Any]:
    """Runs on a dask worker: LiberTEM's task call (as its dask executor makes
    it), plus who ran it and how many frames it decoded, for the ledger in
    the main process.  Module-level, so dask caches one function."""
    from distributed import get_worker
    from libertem.common.backend import get_use_cuda
    from libertem.common.executor import Environment
    from libertem.executor.dask import DaskWorkerContext

    task = pickle.loads(memoryview(blob))
    env = Environment(threads_per_worker=1, threaded_executor=threaded_executor,
                      worker_context=DaskWorkerContext(None), gpu_id=get_use_cuda())
    result = task(env=env, params=params)
    try:
        worker = get_worker().address
    except ValueError:
        worker = "<not a dask worker>"
    return {"task_result": result, "task_id": task_id, "worker": worker,
            "decoded": int(getattr(task.partition, "decoded", 0))}


def call_blob(blob: np.ndarray) -> Any:
    """Runs on a dask worker: call the function pickled in ``blob`` (by
    :func:`blob_of`; functions sent to every worker travel like tasks)."""
    return pickle.loads(memoryview(blob))()
