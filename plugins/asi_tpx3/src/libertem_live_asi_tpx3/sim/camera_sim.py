"""``TpxCameraSim``: upstream LiberTEM-live's TPX3 simulator name and
constructor, as a thin adapter over :class:`Tpx3Sim`.

Upstream's docs and test helpers start it with ``TpxCameraSim(paths=[...],
cached='MEM', port=0, sleep=0.1)`` (a capture replay) or
``mock_nav_shape=(h, w)`` (synthetic data) and read the port from
``server_t.port``.  Here the synthetic data are this simulator's random
events with a known ground truth (512x512 frames), not upstream's
one-event-per-frame pattern; ``cached='MEMFD'`` serves from ordinary memory.
"""
from __future__ import annotations

from typing import Optional, Sequence

from .server import Tpx3Sim

__all__ = ["TpxCameraSim"]


class _Endpoint:
    def __init__(self, sim: Tpx3Sim):
        self._sim = sim

    @property
    def port(self) -> int:
        return self._sim.port

    @property
    def sockname(self) -> tuple[str, int]:
        return (self._sim.host, self._sim.port)


class TpxCameraSim:
    """Acquisitions back to back on every connection, ``sleep`` seconds apart."""

    def __init__(self, *, cached: str, port: int, sleep: float,
                 paths: Optional[Sequence[str]] = None,
                 mock_nav_shape: Optional[tuple[int, int]] = None):
        if cached.lower() not in ("mem", "memfd"):
            raise ValueError(f"unknown cache type: {cached!r} (use 'MEM' or 'MEMFD')")
        if bool(paths) == (mock_nav_shape is not None):
            raise ValueError("give paths=[capture file] or mock_nav_shape=(h, w), not both "
                             "or neither")
        if paths and len(paths) > 1:
            raise ValueError(f"{len(paths)} capture files given; this simulator replays one: "
                             "concatenate them and pass that")
        common = dict(port=port, acquisitions_per_connection=None, acquisition_interval=sleep)
        if paths:
            self.sim = Tpx3Sim(capture=paths[0], **common)  # type: ignore[arg-type]
        else:
            assert mock_nav_shape is not None
            self.sim = Tpx3Sim(nav_shape=tuple(mock_nav_shape),  # type: ignore[arg-type]
                               sig_shape=(512, 512), **common)
        self.server_t = _Endpoint(self.sim)

    def start(self) -> None:
        self.sim.start()

    def wait_for_listen(self) -> None:
        self.sim.wait_for_listen()

    def is_alive(self) -> bool:
        return self.sim.thread_alive()

    def maybe_raise(self) -> None:
        """The error that ended the server thread, if any (upstream's name)."""
        if self.sim.error is not None:
            raise self.sim.error

    def stop(self) -> None:
        self.sim.stop()
