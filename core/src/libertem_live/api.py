"""The user-facing entry point: :class:`LiveContext`.

``LiveContext`` is a :class:`libertem.api.Context` that can also open detector
connections and run UDFs on live acquisitions.  Offline datasets
(``ctx.load(...)``) work in the same context.
"""
from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable

from libertem.api import ResultGenerator

from libertem_live import navshape
from libertem_live._libertem_compat import ContextOverrides
from libertem_live.acquisition import LiveAcquisition
from libertem_live.dispatch import HookDispatcher
from libertem_live.errors import (
    AcquisitionError, AcquisitionStateError, AcquisitionTimeoutError,
)
from libertem_live.executor import executor_named, make_default_executor
from libertem_live.heap import keep_freed_memory
from libertem_live.hooks import (
    AcquisitionEndedEnv, AcquisitionStartedEnv, DetermineNavShapeEnv, Hooks, PartialResultsEnv,
)
from libertem_live.protocols import AcquisitionController, DetectorConnection, PendingAcquisition
from libertem_live.registry import Registry, default_registry
from libertem_live.udf.lifecycle import LiveRunAware

if TYPE_CHECKING:
    from libertem_live.recorder import RecordingSummary

__all__ = ["LiveContext", "Hooks"]

log = logging.getLogger(__name__)
_run_ids = itertools.count(1)


class _Unset:
    """``make_acquisition(pending_aq=...)`` not given (active mode), as opposed to
    an explicit None (a passive wait that timed out)."""

    def __repr__(self) -> str:
        return "<not given>"


_UNSET = _Unset()


class ConnectionBuilder:
    """Returned by :meth:`LiveContext.make_connection`; ``open(**params)``
    connects to the detector with driver-specific parameters."""

    def __init__(self, name: str, opener: Any):
        self.name = name
        self._open = opener

    def open(self, **params: Any) -> DetectorConnection:
        return self._open(**params)

    def __repr__(self) -> str:
        return f"<ConnectionBuilder {self.name!r}>"


class LiveContext(ContextOverrides):
    """A LiberTEM context for live processing.

    The default executor is LiberTEM's ``PipelinedExecutor`` with one worker
    process per CPU core (and CUDA device), the only local executor that
    streams data to workers.  ``executor=`` takes a LiberTEM executor object
    as with :class:`libertem.api.Context`, or a name: ``'pipelined'`` (the
    default) or ``'inline'`` (everything in this process, for debugging).
    With LiberTEM's ``DaskJobExecutor`` (``DaskJobExecutor.connect(address)``)
    live acquisitions run on the workers of a dask.distributed cluster: the
    frames travel to them as the detector sent them (see
    :mod:`libertem_live.cluster`).

    It makes this process and its workers keep freed heap memory for reuse
    (see :mod:`libertem_live.heap`; ``LIBERTEM_LIVE_KEEP_HEAP=0`` opts out).
    """

    def __init__(self, executor: Any = None, plot_class: Any = None, *,
                 registry: Registry | None = None):
        self._registry = registry
        self._warmed: set[Any] = set()
        if isinstance(executor, str):
            executor = executor_named(executor)
        executor = _for_live(executor)
        super().__init__(executor=executor, plot_class=plot_class)
        keep_freed_memory()
        self._set_up_workers()

    def _set_up_workers(self) -> None:
        """Our executor sets its workers up as they start; another one gets
        the same once, here.  The inline executor has no workers of its own
        (and must not ignore SIGINT in this process)."""
        from libertem.executor.pipelined import PipelinedExecutor

        from libertem_live.executor import LivePipelinedExecutor
        from libertem_live.interrupts import ignore_in_worker
        if isinstance(self.executor, LivePipelinedExecutor):
            return
        if isinstance(self.executor, PipelinedExecutor):
            self.executor.run_each_worker(ignore_in_worker)
        self.executor.run_each_worker(keep_freed_memory)

    @property
    def registry(self) -> Registry:
        return self._registry if self._registry is not None else default_registry()

    def _default_executor(self) -> Any:
        return make_default_executor()

    # --- connections and acquisitions -------------------------------------------
    def make_connection(self, detector_type: str) -> ConnectionBuilder:
        """Find the driver for ``detector_type`` (an installed plugin)."""
        info = self.registry.get(detector_type)
        return ConnectionBuilder(detector_type, info.open)

    def prepare_acquisition(self, *args: Any, **kwargs: Any) -> Any:
        """Removed in upstream LiberTEM-live 0.2; kept so that old scripts fail
        with a message saying what replaced it (upstream raises RuntimeError too)."""
        raise RuntimeError(
            "LiveContext.prepare_acquisition was removed: open a connection with "
            "ctx.make_connection('<detector>').open(...), then describe the acquisition with "
            "ctx.make_acquisition(conn=conn, nav_shape=...) (active mode) or "
            "ctx.make_acquisition(conn=conn, pending_aq=conn.wait_for_acquisition(timeout)) "
            "(passive mode)")

    def make_acquisition(
        self,
        *,
        conn: DetectorConnection,
        nav_shape: tuple[int, ...] | None = None,
        frames_per_partition: int | None = None,
        controller: AcquisitionController | None = None,
        pending_aq: PendingAcquisition | None | _Unset = _UNSET,
        hooks: Hooks | None = None,
    ) -> LiveAcquisition:
        """Describe a live acquisition; nothing is armed until a UDF runs on it.

        With ``pending_aq`` (from ``conn.wait_for_acquisition``) the acquisition
        is passive; otherwise it is active, armed by ``controller`` (default:
        ``conn.get_active_controller()``) at the start of every run.

        ``nav_shape`` follows the rules of :mod:`libertem_live.navshape`: in
        passive mode it may be left out (the hooks, the detector or a square
        guess decide); in active mode it must be concrete unless the
        controller's ``determine_nav_shape(None)`` knows the scan shape.
        """
        if conn is None:
            raise TypeError("make_acquisition needs conn=, an open detector connection")
        if pending_aq is None:
            raise AcquisitionTimeoutError(
                "pending_aq is None: conn.wait_for_acquisition(timeout) returned None because "
                "no acquisition started within its timeout. Start the acquisition on the "
                "detector (or in its software) and wait again, or wait longer. To let "
                "LiberTEM arm the detector itself (active mode), leave pending_aq out.")
        dispatcher = HookDispatcher(self.registry, hooks)
        if not isinstance(pending_aq, _Unset):
            if controller is not None:
                raise ValueError(
                    "pass either pending_aq= (passive mode) or controller= (active mode), "
                    "not both"
                )
            nimages = int(pending_aq.nimages)
            hint = None if nav_shape is None else tuple(nav_shape)

            def ask_hooks() -> tuple[int, ...] | None:
                return dispatcher.on_determine_nav_shape(
                    env=DetermineNavShapeEnv(nimages=nimages, shape_hint=hint))

            resolved = navshape.resolve(
                nav_shape, nimages, hook=ask_hooks, detector_hint=pending_aq.nav_shape,
            )
            self._warm_up(pending_aq.format.decoder)
            return LiveAcquisition(
                conn=conn, nav_shape=resolved, frame_format=pending_aq.format,
                frames_per_partition=frames_per_partition, pending=pending_aq,
                hook_caller=dispatcher,
            )
        if controller is None:
            controller = conn.get_active_controller()
        resolved = navshape.resolve(
            nav_shape, None, controller_hint=navshape.controller_hint(controller), active=True)
        fmt = controller.frame_format(conn)
        self._warm_up(fmt.decoder)
        return LiveAcquisition(
            conn=conn, nav_shape=resolved, frame_format=fmt,
            frames_per_partition=frames_per_partition, controller=controller,
            hook_caller=dispatcher,
        )

    def _warm_up(self, decoder: Any) -> None:
        """Let every worker compile the decoder's kernels (``decoder.warmup``, if
        it has one) before the first frame arrives, once per decoder kind:
        a first-frame compile stall would back up the stream."""
        warmup = getattr(decoder, "warmup", None)
        if warmup is None:
            return
        key = (getattr(self.executor, "pool_generation", 0),
               getattr(decoder, "warmup_key", None) or (type(decoder), repr(vars(decoder))))
        if key in self._warmed:
            return
        import functools
        # bound here: PipelinedExecutor.run_each_worker mishandles positional args
        self.executor.run_each_worker(functools.partial(warmup, "float32"))
        self._warmed.add(key)

    # --- recording ----------------------------------------------------------------
    def record(self, aq: LiveAcquisition, path: str | os.PathLike[str], *,
               overwrite: bool = False, progress: bool = False) -> RecordingSummary:
        """Record the acquisition into the HDF5 file ``path`` as fast as the
        frames arrive: each frame becomes one chunk of the dataset ``"data"``
        (shaped ``nav_shape + sig_shape``), still compressed where the detector
        compressed it and the driver declares the compression an HDF5 filter
        (DECTRIS bitshuffle-LZ4); other frames are decoded here and stored
        uncompressed.  No UDF runs and no worker is involved.

        Arms the detector (active mode) or takes the announced stream
        (passive mode), like :meth:`run_udf`.  The file is written as
        ``<stem>.incomplete.h5`` and renamed to ``path`` once every frame is
        in; after a failure it keeps that name, with attributes saying which
        frames are missing and why, and the error is raised.  Refuses an
        existing ``path`` unless ``overwrite=True``.  Reading a compressed
        recording needs the filter (``import hdf5plugin``).
        """
        from libertem_live.recorder import H5Recording
        if not isinstance(aq, LiveAcquisition):
            raise TypeError(f"ctx.record records a live acquisition (ctx.make_acquisition), "
                            f"not {type(aq).__name__}")
        recording = H5Recording(path, overwrite=overwrite)
        run = _Run(aq, [], None, also=[recording])
        run.before()
        try:
            recording.write(aq, progress=progress)
        except BaseException as e:
            run.finish(e)
            raise  # run.finish raises; this is for type checkers
        run.finish(None)
        return recording.summary()

    # --- running ------------------------------------------------------------------
    def _live_run(self, dataset: Any, udf: Any, roi: Any, iterate: bool,
                  libertem_run: Callable[..., Any]) -> Any:
        """Every UDF run: arm before LiberTEM runs the UDFs, always end after
        (for an iterated run, when iteration ends).  When result hooks are
        implemented, ``run_udf`` iterates internally so that they see the
        partial results too."""
        udfs = list(udf) if isinstance(udf, (list, tuple)) else [udf]
        run = _Run(dataset, udfs, roi)
        check_ready = getattr(self.executor, "check_ready", None)
        if check_ready is not None and run.live:
            check_ready()  # a cluster that cannot run it: fail before arming the detector
        run.before()
        internal_iterate = not iterate and run.wants_partials
        try:
            result = libertem_run(iterate=True) if internal_iterate else libertem_run()
        except BaseException as e:
            run.finish(e)
            raise  # run.finish raises; this is for type checkers
        if iterate:
            return _LiveResultGenerator(result, run)
        if internal_iterate:
            last = None
            for last in _LiveResultGenerator(result, run):
                pass
            assert last is not None, "LiberTEM yields at least one result"
            return last.buffers if isinstance(udf, Iterable) else last.buffers[0]
        run.finish(None)
        return result


def _for_live(executor: Any) -> Any:
    """A LiberTEM ``DaskJobExecutor`` becomes our subclass (same client and
    state) that can also run live acquisitions on the cluster's workers,
    once its scheduler answered.  The check costs no import: without
    ``libertem.executor.dask`` loaded, no executor can be one."""
    import sys
    dask_module = sys.modules.get("libertem.executor.dask")
    if dask_module is None or not isinstance(executor, dask_module.DaskJobExecutor):
        return executor
    from libertem_live.cluster.executor import LiveDaskExecutor
    from libertem_live.cluster.watch import identity
    identity(executor.client)
    return LiveDaskExecutor.adopt(executor)


class _Run:
    """One UDF run in a LiveContext: arms before, always ends after."""

    def __init__(self, dataset: Any, udfs: list[Any], roi: Any, also: Iterable[Any] = ()):
        self.dataset = dataset
        self.live = isinstance(dataset, LiveAcquisition)
        self.udfs = udfs
        self.aware = [u for u in udfs if isinstance(u, LiveRunAware)] + list(also)
        self.roi = roi
        self.ended = False
        self.cancelled = False
        self.hooks = getattr(dataset, "_hook_caller", None) if self.live else None
        self.wants_partials = self.hooks is not None and self.hooks.has_result_hooks()
        self.run_id = next(_run_ids)
        self.started_at = 0.0
        self.last_results: Any = None
        self._updates: dict[int, dict[str, Any]] = {}

    def before(self) -> None:
        for u in self.aware:
            u.before_live_run(self.dataset)
        if self.live:
            try:
                self.dataset.start_acquisition()
            except BaseException as e:
                self._after_udfs(e)
                raise
            self.started_at = time.monotonic()
            if self.hooks is not None:
                aq: LiveAcquisition = self.dataset
                self.hooks.acquisition_started(AcquisitionStartedEnv(
                    run_id=self.run_id, aq=aq, udfs=self.udfs,
                    detector=str(getattr(aq.conn, "detector_name", "?")), mode=aq.mode,
                    nav_shape=tuple(aq.shape.nav), sig_shape=tuple(aq.shape.sig),
                    dtype=str(aq.dtype), metadata=dict(aq.frame_format.metadata),
                    started_at=time.time(),
                ))

    def partial(self, results: Any, generator: Any) -> None:
        """Hand partial results to the result hooks, then apply the parameter
        updates they asked for."""
        self.last_results = results
        if not self.wants_partials:
            return
        self.hooks.partial_results(PartialResultsEnv(
            run_id=self.run_id, aq=self.dataset, udfs=self.udfs, results=results,
            ledger=self.dataset.ledger.snapshot(),
            elapsed_s=time.monotonic() - self.started_at,
            request_update=lambda index, params: self._updates.setdefault(index, {}).update(params),
        ))
        if self._updates:
            patch = [self._updates.get(i, {}) for i in range(len(self.udfs))]
            self._updates = {}
            try:
                generator.update_parameters_experimental(patch)
            except Exception:
                log.exception("a result hook asked for UDF parameters %r that could not be "
                              "applied; the run goes on with the previous ones", patch)

    def _ended(self, error: BaseException | None) -> None:
        if self.hooks is None or not self.live:
            return
        if error is None:
            outcome = "complete"
        elif self.cancelled or isinstance(error, (KeyboardInterrupt, GeneratorExit)):
            outcome = "cancelled"
        else:
            outcome = "failed"
        buffers = None
        if self.last_results is not None:
            try:
                buffers = tuple(self.last_results.buffers)
            except Exception:
                log.debug("last results of run %d unavailable", self.run_id, exc_info=True)
        self.hooks.acquisition_ended(AcquisitionEndedEnv(
            run_id=self.run_id, aq=self.dataset, udfs=self.udfs, outcome=outcome, error=error,
            ledger=self.dataset.ledger.snapshot(),
            elapsed_s=time.monotonic() - self.started_at, buffers=buffers,
        ))

    def _after_udfs(self, error: BaseException | None) -> None:
        for u in self.aware:
            u.after_live_run(self.dataset, error)

    def expected_processed(self) -> int:
        if self.roi is None:
            return self.dataset.nimages
        import numpy as np
        from libertem.common.sparse import to_dense
        return int(np.count_nonzero(to_dense(self.roi)))

    def finish(self, error: BaseException | None) -> None:
        """End the run; raise the stream's own error in place of LiberTEM's cancel."""
        if self.ended:
            return
        self.ended = True
        if not self.live:
            self._after_udfs(error)
            if error is not None:
                raise error
            return
        dataset: LiveAcquisition = self.dataset
        stream_error = dataset.stream_error
        final = error
        if stream_error is not None and stream_error is not error:
            final = stream_error
            if error is not None and stream_error.__cause__ is None:
                stream_error.__cause__ = error
        try:
            dataset.end_acquisition(error=final)
        except Exception as stop_error:
            if final is None:
                final = stop_error
            else:
                final.__context__ = stop_error
        if isinstance(final, AcquisitionError) and final.ledger is None:
            final.ledger = dataset.ledger  # e.g. a decode error raised in a worker
        if final is None:
            dataset.ledger.processed = self.expected_processed()
        self._after_udfs(final)
        self._ended(final)
        if final is not None:
            raise final


class _LiveResultGenerator(ResultGenerator):
    """Ends the acquisition when iteration ends: exhausted, failed or closed."""

    def __init__(self, inner: ResultGenerator, run: _Run):
        self._inner = inner
        self._run = run

    def __iter__(self) -> _LiveResultGenerator:
        return self

    def __next__(self) -> Any:
        if self._run.ended:
            raise StopIteration
        try:
            res = next(self._inner)
        except StopIteration:
            self._run.finish(None)
            raise
        except BaseException as e:
            self._run.finish(e)
            raise
        if self._run.live:
            try:
                self._run.dataset.ledger.processed = int(res.damage.data.sum())
            except Exception:
                pass
            self._run.partial(res, self._inner)
        return res

    def close(self) -> None:
        if self._run.ended:
            return
        self._run.cancelled = True
        try:
            self._inner.close()
        finally:
            try:
                self._run.finish(
                    AcquisitionStateError("the result iterator was closed before the end"))
            except AcquisitionStateError:
                pass

    def update_parameters_experimental(self, parameters: list[dict[str, Any]]) -> None:
        self._inner.update_parameters_experimental(parameters)

    def throw(self, exc: Exception) -> Any:
        try:
            return self._inner.throw(exc)
        except BaseException as e:
            self._run.finish(e)
            raise

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
