"""Calls lifecycle hooks on the user's ``Hooks`` object and on every installed
plugin that implements them, through one pluggy hook call."""
from __future__ import annotations

from typing import Any

from libertem_live.hooks import DetermineNavShapeEnv, ReadyForDataEnv, overridden_hook_methods
from libertem_live.registry import Registry


class HookDispatcher:
    def __init__(self, registry: Registry, user_hooks: Any = None):
        self._hook = registry.hook
        self._extra: dict[str, list[Any]] = {}
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
