"""Calls lifecycle hooks on the user's ``Hooks`` object and on every installed
plugin that implements them, through one pluggy hook call.

Result hooks (started, partial results, ended) are called differently: each
implementation on its own, its exceptions logged and swallowed, because a
frontend that fails must never end or slow an acquisition that works."""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

from libertem_live.hooks import (
    RESULT_HOOKS, AcquisitionEndedEnv, AcquisitionStartedEnv, DetermineNavShapeEnv,
    PartialResultsEnv, ReadyForDataEnv, overridden_hook_methods,
)
from libertem_live.registry import Registry

log = logging.getLogger(__name__)

#: A result hook implementation that takes longer than this is reported (once).
SLOW_HOOK_S = 0.05


class HookDispatcher:
    def __init__(self, registry: Registry, user_hooks: Any = None):
        self._hook = registry.hook
        self._extra: dict[str, list[Any]] = {}
        self._reported: set[tuple[str, ...]] = set()
        if user_hooks is not None:
            for name, method in overridden_hook_methods(user_hooks):
                self._extra.setdefault(name, []).append(method)

    def on_ready_for_data(self, env: ReadyForDataEnv) -> None:
        self._hook.on_ready_for_data.call_extra(
            self._extra.get("on_ready_for_data", []), {"env": env})

    def on_determine_nav_shape(self, env: DetermineNavShapeEnv) -> tuple[int, ...] | None:
        result = self._hook.on_determine_nav_shape.call_extra(
            self._extra.get("on_determine_nav_shape", []), {"env": env})
        if isinstance(result, list):  # call_extra ignores firstresult on old pluggy
            result = next((r for r in result if r is not None), None)
        return result

    # --- result hooks: isolated calls -----------------------------------------------
    def _result_impls(self, name: str) -> list[tuple[str, Callable[..., Any], bool]]:
        """(who, function, takes env) of every implementation of ``name``."""
        found = []
        for impl in getattr(self._hook, name).get_hookimpls():
            found.append((impl.plugin_name, impl.function, "env" in impl.argnames))
        for method in self._extra.get(name, []):
            found.append((f"hooks={type(getattr(method, '__self__', method)).__name__}",
                          method, True))
        return found

    def has_result_hooks(self) -> bool:
        return any(self._result_impls(name) for name in RESULT_HOOKS)

    def _call_isolated(self, name: str, env: Any) -> None:
        for who, function, takes_env in self._result_impls(name):
            t0 = time.perf_counter()
            try:
                function(env) if takes_env else function()
            except Exception:
                key = (name, who)
                if key not in self._reported:
                    self._reported.add(key)
                    log.exception("%s of %s failed; the acquisition goes on (further "
                                  "failures of this hook in this acquisition are not "
                                  "logged)", name, who)
                continue
            took = time.perf_counter() - t0
            if took > SLOW_HOOK_S and (name, who, "slow") not in self._reported:
                self._reported.add((name, who, "slow"))
                log.warning("%s of %s took %.0f ms; result hooks run between merges of "
                            "results and must return within about a millisecond: keep the "
                            "latest state and do the work in another thread",
                            name, who, took * 1e3)

    def acquisition_started(self, env: AcquisitionStartedEnv) -> None:
        self._call_isolated("on_acquisition_started", env)

    def partial_results(self, env: PartialResultsEnv) -> None:
        self._call_isolated("on_partial_results", env)

    def acquisition_ended(self, env: AcquisitionEndedEnv) -> None:
        self._call_isolated("on_acquisition_ended", env)
