"""User-facing lifecycle hooks.

Subclass :class:`Hooks` and override what you need; pass an instance as
``hooks=`` to :meth:`~libertem_live.api.LiveContext.make_acquisition`.  The
calls are dispatched through pluggy together with any installed plugin that
implements the same hooks (a scan-engine driver, say), so the user's object
and plugins see the same events.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from libertem_live.acquisition import LiveAcquisition
    from libertem_live.ledger import LedgerSnapshot


@dataclass
class ReadyForDataEnv:
    """Passed to :meth:`Hooks.on_ready_for_data`; ``aq`` is the acquisition
    that has just been armed (``aq.shape.nav`` is the scan shape)."""

    aq: LiveAcquisition


@dataclass
class DetermineNavShapeEnv:
    """Passed to :meth:`Hooks.on_determine_nav_shape`.

    ``nimages`` is the number of images the detector announced;
    ``shape_hint`` is the nav shape the user passed (may hold ``-1``
    placeholders) or None.
    """

    nimages: int
    shape_hint: tuple[int, ...] | None


@dataclass
class AcquisitionStartedEnv:
    """Passed to ``on_acquisition_started``: a UDF run on a live acquisition
    has just armed the detector (active) or taken the announced stream
    (passive).  ``run_id`` is unique in this process and names the same run
    in the partial-results and ended calls."""

    run_id: int
    aq: LiveAcquisition
    udfs: list[Any]
    detector: str
    mode: str
    nav_shape: tuple[int, ...]
    sig_shape: tuple[int, ...]
    dtype: str
    metadata: dict[str, Any]
    started_at: float


class PartialResultsEnv:
    """Passed to ``on_partial_results``: the UDF results after one more merged
    partition, as ``run_udf_iter`` yields them.

    ``buffers`` (one dict of name -> LiberTEM ``BufferWrapper`` per UDF, in
    ``udfs`` order) is computed on first access, so a hook that only looks at
    the ledger costs nothing; the arrays are LiberTEM's own and change after
    the call returns: copy what you keep.  ``damage`` is the nav mask of the
    positions processed so far.  ``update_parameters(udf, **params)`` asks
    for new parameters of one of ``udfs`` from the next partition on (e.g. a
    detector region a user dragged); the core applies the requests after all
    hooks returned.
    """

    def __init__(self, *, run_id: int, aq: LiveAcquisition, udfs: list[Any], results: Any,
                 ledger: LedgerSnapshot, elapsed_s: float,
                 request_update: Callable[[int, dict[str, Any]], None]):
        self.run_id = run_id
        self.aq = aq
        self.udfs = udfs
        self._results = results
        self.ledger = ledger
        self.elapsed_s = elapsed_s
        self._request_update = request_update

    @property
    def buffers(self) -> tuple[dict[str, Any], ...]:
        return tuple(self._results.buffers)

    @property
    def damage(self) -> Any:
        return self._results.damage.data

    @property
    def frames_per_s(self) -> float:
        """Frames received per second since the run started."""
        return self.ledger.received / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def update_parameters(self, udf: Any, **params: Any) -> None:
        for index, candidate in enumerate(self.udfs):
            if candidate is udf:
                self._request_update(index, params)
                return
        raise ValueError(f"{udf!r} is not one of the UDFs of this run")


@dataclass
class AcquisitionEndedEnv:
    """Passed to ``on_acquisition_ended``, once per started run.

    ``outcome`` is ``"complete"``, ``"failed"`` (``error`` says why) or
    ``"cancelled"`` (the result iterator was closed early, or the run was
    interrupted; ``error`` is what ended it).  ``buffers`` are the last results
    the run produced (as in :class:`PartialResultsEnv`), or None if none came.
    """

    run_id: int
    aq: LiveAcquisition
    udfs: list[Any]
    outcome: str
    error: BaseException | None
    ledger: LedgerSnapshot
    elapsed_s: float
    buffers: tuple[dict[str, Any], ...] | None = None


RESULT_HOOKS = ("on_acquisition_started", "on_partial_results", "on_acquisition_ended")


class Hooks:
    """Override these methods to synchronise other devices with an acquisition."""

    def on_ready_for_data(self, env: ReadyForDataEnv) -> None:
        """Called once in active mode, after the detector is armed and the
        receiver listens: trigger the scan here."""

    def on_determine_nav_shape(self, env: DetermineNavShapeEnv) -> tuple[int, ...] | None:
        """Called in passive mode when ``nav_shape`` is not concrete; return the
        scan shape (its product must equal ``env.nimages``) or None to fall
        back to the built-in rules."""
        return None

    def on_acquisition_started(self, env: AcquisitionStartedEnv) -> None:
        """Called when a UDF run on this acquisition has started."""

    def on_partial_results(self, env: PartialResultsEnv) -> None:
        """Called with the results after each merged partition; must return
        quickly (it runs between merges)."""

    def on_acquisition_ended(self, env: AcquisitionEndedEnv) -> None:
        """Called once when the run ended: complete, failed or cancelled."""


def overridden_hook_methods(hooks: Any) -> list[tuple[str, Any]]:
    """The hook methods a user object really implements (not the no-op defaults)."""
    found = []
    for name in ("on_ready_for_data", "on_determine_nav_shape") + RESULT_HOOKS:
        method = getattr(hooks, name, None)
        if method is None:
            continue
        default = getattr(Hooks, name)
        if getattr(method, "__func__", None) is default:
            continue
        found.append((name, method))
    return found
