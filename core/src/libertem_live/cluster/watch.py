"""What the main process knows about the dask cluster during a live run.

A live run must never hang on a cluster that lost its scheduler or all of
its workers: the detector keeps streaming and the ring fills.  dask itself
re-runs the task of a worker that died on another worker, but waits
forever when none is left, and a client that lost its scheduler keeps
trying to reconnect.  So while the run waits (for frames or for results)
it asks the scheduler, with a timeout, which workers are there and which
tasks each one is running, and raises a clear error when nobody can
finish the run.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from libertem_live.errors import LiveError, WorkerDiedError

log = logging.getLogger(__name__)

#: Seconds to wait for the scheduler's answer before calling it unreachable.
SCHEDULER_TIMEOUT_S = 5.0
#: Seconds a run waits with no worker in the cluster (a nanny restarting a
#: killed worker takes a few) before it fails instead of hanging.
NO_WORKER_TIMEOUT_S = 10.0
#: At most this often, the cluster is asked while the run waits.
POLL_S = 0.5


class SchedulerUnreachableError(LiveError, ConnectionError):
    """The dask scheduler of a live run does not answer."""


def scheduler_address(client: Any) -> str:
    try:
        return str(client.scheduler.address)
    except Exception:
        return "<unknown address>"


def identity(client: Any, timeout: float = SCHEDULER_TIMEOUT_S) -> dict[str, Any]:
    """The scheduler's description of itself and its workers; raises
    :class:`SchedulerUnreachableError` naming the address when it does not
    answer within ``timeout`` seconds."""
    address = scheduler_address(client)
    if client.status not in ("running", "newly-created"):
        raise SchedulerUnreachableError(
            f"the dask client is not connected to the scheduler at {address} (client "
            f"status {client.status!r}); start the scheduler (`dask scheduler`) or connect "
            "a new LiveContext with DaskJobExecutor.connect(<its address>)")
    try:
        return client.sync(client.scheduler.identity, n_workers=-1, callback_timeout=timeout)
    except Exception as e:
        raise SchedulerUnreachableError(
            f"the dask scheduler at {address} did not answer within {timeout:g} s ({e!r}); "
            "is it running and reachable from this machine (firewall, address)?") from e


def lost_words(left: dict[str, str]) -> str:
    return "; ".join(f"{w} (was running {what})" for w, what in left.items()) or "none seen"


def frames_of(task: Any) -> str:
    part = task.get_partition()
    start = int(part.slice.origin[0])
    return f"frames {start}..{start + int(part.slice.shape[0]) - 1}"


class ClusterWatch:
    """Polled by a live run while it waits; raises when the run cannot end.

    ``keys`` maps each task key in flight to words naming its frames; the
    watch remembers which worker last held which key, to name them when a
    worker leaves.
    """

    def __init__(self, client: Any):
        self.client = client
        self.address = scheduler_address(client)
        info = identity(client)
        self.workers: set[str] = set(info.get("workers", {}))
        self.left: dict[str, str] = {}
        """Workers that left during the run -> what they were running."""
        self._held: dict[str, list[str]] = {}
        self._no_worker_since: float | None = None if self.workers else time.monotonic()
        self._last = 0.0

    def require_workers(self) -> None:
        if not self.workers:
            raise WorkerDiedError(
                f"the dask cluster at {self.address} has no worker; start one with "
                f"`dask worker {self.address}` and run again")

    def check(self, keys: dict[str, str], force: bool = False) -> None:
        now = time.monotonic()
        if now - self._last < POLL_S and not force:
            return
        self._last = now
        info = identity(self.client)
        current = set(info.get("workers", {}))
        for gone in sorted(self.workers - current):
            if gone in self._held:
                doing = ", ".join(keys[k] for k in self._held[gone] if k in keys)
                self.left[gone] = doing or "no task of this run"
            else:  # it left before this watch saw it working
                self.left[gone] = "tasks not known"
            log.warning("dask worker %s left the cluster during a live run (it was running: "
                        "%s); dask runs its task again on another worker", gone,
                        self.left[gone])
        self.workers = current
        try:
            processing = self.client.processing()
        except Exception:
            processing = {}
        self._held = {w: list(ks) for w, ks in processing.items()}
        if current:
            self._no_worker_since = None
            return
        if self._no_worker_since is None:
            self._no_worker_since = now
        if now - self._no_worker_since > NO_WORKER_TIMEOUT_S:
            pending = ", ".join(sorted(set(keys.values()), key=first_frame)) or "none"
            raise WorkerDiedError(
                f"no worker left in the dask cluster at {self.address} for "
                f"{NO_WORKER_TIMEOUT_S:g} s; lost: {lost_words(self.left)}; "
                f"unfinished partitions: {pending}. Start workers "
                f"(`dask worker {self.address}`) and run the acquisition again")


def first_frame(words: str) -> int:
    """The first frame of ``frames_of``'s words (to sort them)."""
    try:
        return int(words.split()[1].split("..")[0])
    except (IndexError, ValueError):
        return 0
