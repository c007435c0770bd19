"""Finding detector drivers.

Drivers are distributions with an entry point in the group
``libertem_live.detectors``; the registry loads them through a pluggy
``PluginManager`` the first time a driver is needed.  A driver that fails to
import, declares the wrong plugin-API version, or claims a name another
driver also claims is remembered with its error and reported when it is
asked for, so one broken driver never hides the others.  So is a plugin that
marks a function ``@hookimpl`` under a name that is no hook (a misspelt
``libertem_live_detector``, say): pluggy would register it and never call it.
A plugin that provides no driver but implements other hooks (a frontend
following acquisitions through the result hooks) is loaded the same way.
"""
from __future__ import annotations

import difflib
import threading
import traceback
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Iterable

import pluggy

from libertem_live import hookspecs
from libertem_live.errors import DriverError, UnknownDetectorError
from libertem_live.plugin import PLUGIN_API_VERSION, CommandInfo, DetectorInfo

ENTRY_POINT_GROUP = "libertem_live.detectors"


@dataclass
class DriverRecord:
    """One driver as the registry sees it, good or broken."""

    name: str
    distribution: str
    version: str
    status: str  # "ok", "broken", "incompatible", "conflict"
    info: DetectorInfo | None = None
    error: str = ""
    cause: BaseException | None = None

    @property
    def label(self) -> str:
        return f"{self.name} ({self.distribution} {self.version})"


def _dist_of(ep: metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return ("<unknown distribution>", "?")
    return (dist.metadata["Name"] or "<unnamed>", dist.version or "?")


class Registry:
    def __init__(self, entry_points: Iterable[metadata.EntryPoint] | None = None):
        self._entry_points = entry_points
        self._lock = threading.Lock()
        self._records: dict[str, DriverRecord] | None = None
        self.plugin_manager = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.plugin_manager.add_hookspecs(hookspecs)

    def _discover(self) -> Iterable[metadata.EntryPoint]:
        if self._entry_points is not None:
            return list(self._entry_points)
        return list(metadata.entry_points(group=ENTRY_POINT_GROUP))

    def _load(self) -> dict[str, DriverRecord]:
        with self._lock:
            if self._records is not None:
                return self._records
            records: dict[str, DriverRecord] = {}
            seen_dists: set[tuple[str, str]] = set()
            for ep in self._discover():
                dist, version = _dist_of(ep)
                if (ep.name, ep.value) in seen_dists:
                    continue
                seen_dists.add((ep.name, ep.value))
                try:
                    plugin = ep.load()
                    self.plugin_manager.register(plugin, name=f"{dist}:{ep.name}")
                    misspelt = self._unknown_hooks(plugin)
                    if misspelt:
                        self.plugin_manager.unregister(plugin)
                        self._add(records, DriverRecord(
                            name=ep.name, distribution=dist, version=version,
                            status="broken", error=misspelt))
                        continue
                    impls = [
                        impl for impl in
                        self.plugin_manager.hook.libertem_live_detectors.get_hookimpls()
                        if impl.plugin is plugin
                    ]
                    infos: list[DetectorInfo] = []
                    for impl in impls:
                        infos.extend(impl.function() or [])
                except Exception as e:  # a broken driver must not hide the others
                    self._add(records, DriverRecord(
                        name=ep.name, distribution=dist, version=version, status="broken",
                        error=f"failed to load entry point {ep.value!r}: "
                              f"{type(e).__name__}: {e}\n{traceback.format_exc()}",
                        cause=e,
                    ))
                    continue
                if not infos and self._implements_other_hooks(plugin):
                    continue  # a frontend (result hooks), not a driver
                if not infos:
                    self._add(records, DriverRecord(
                        name=ep.name, distribution=dist, version=version, status="broken",
                        error=f"entry point {ep.value!r} registers no detector "
                              "(no libertem_live_detectors hook implementation returned one)",
                    ))
                for info in infos:
                    record = DriverRecord(name=info.name, distribution=dist,
                                          version=version, status="ok", info=info)
                    if info.plugin_api != PLUGIN_API_VERSION:
                        record.status = "incompatible"
                        record.error = (
                            f"written for plugin API version {info.plugin_api}, but "
                            f"libertem-live-core provides version {PLUGIN_API_VERSION}; "
                            f"install a version of {dist} made for this core"
                        )
                    self._add(records, record)
            # every plugin with a hook implementation that matches no hook was
            # refused above; this is pluggy's own check of the same
            self.plugin_manager.check_pending()
            self._records = records
            return records

    def _implements_other_hooks(self, plugin: Any) -> bool:
        """Whether ``plugin`` implements some hook besides ``libertem_live_detectors``
        (a frontend such as a dashboard registers only result hooks)."""
        return any(caller.name != "libertem_live_detectors"
                   for caller in self.plugin_manager.get_hookcallers(plugin) or [])

    def _unknown_hooks(self, plugin: Any) -> str:
        """Why ``plugin`` is refused, if it marks a function ``@hookimpl`` that is no
        hook of libertem-live (a misspelling would otherwise never be called)."""
        pm = self.plugin_manager
        known = sorted(name for name, caller in vars(pm.hook).items()
                       if isinstance(caller, pluggy.HookCaller) and caller.has_spec())
        bad = []
        for caller in pm.get_hookcallers(plugin) or []:
            if caller.has_spec():
                continue
            if all(impl.optionalhook for impl in caller.get_hookimpls()
                   if impl.plugin is plugin):
                continue
            close = difflib.get_close_matches(caller.name, known, n=1)
            bad.append(f"{caller.name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        if not bad:
            return ""
        where = getattr(plugin, "__name__", repr(plugin))
        return (f"{where} marks {', '.join(bad)} with @hookimpl, but libertem-live has no "
                f"such hook, so it would never be called; the hooks are: {', '.join(known)}. "
                "Rename the function (or mark it @hookimpl(optionalhook=True) if it is meant "
                "for another program's hooks)")

    @staticmethod
    def _add(records: dict[str, DriverRecord], record: DriverRecord) -> None:
        other = records.get(record.name)
        if other is None:
            records[record.name] = record
            return
        if other.distribution == record.distribution and other.status == record.status == "ok":
            return
        records[record.name] = DriverRecord(
            name=record.name, distribution=f"{other.distribution}, {record.distribution}",
            version=f"{other.version}, {record.version}", status="conflict",
            error=f"two drivers claim the name {record.name!r}: {other.label} and "
                  f"{record.label}; uninstall one of them",
        )

    def records(self) -> list[DriverRecord]:
        return sorted(self._load().values(), key=lambda r: r.name)

    def installed_summary(self) -> str:
        good = [r.label for r in self.records() if r.status == "ok"]
        return ", ".join(good) if good else "none"

    def get(self, name: str) -> DetectorInfo:
        records = self._load()
        record = records.get(name)
        if record is None:
            hint = _did_you_mean(name, list(records))
            if hint:
                advice = f" Did you mean {hint!r}?"
            else:
                advice = (f" Drivers are found through the entry-point group "
                          f"{ENTRY_POINT_GROUP!r}: install the distribution that provides "
                          f"{name!r} (its vendor's or this project's driver package).")
            raise UnknownDetectorError(
                f"no detector driver named {name!r} is installed.{advice} Installed drivers: "
                f"{self.installed_summary()}."
            )
        if record.status != "ok":
            err = DriverError(
                f"detector driver {record.label} cannot be used: {record.error}\n"
                f"Installed drivers that work: {self.installed_summary()}."
            )
            if record.cause is not None:
                raise err from record.cause
            raise err
        assert record.info is not None
        return record.info

    def compat_module_for(self, name: str) -> str | None:
        record = self._load().get(name)
        if record is None or record.status != "ok" or record.info is None:
            return None
        return record.info.compat_module

    def commands(self, taken: Iterable[str] = ()) -> tuple[dict[str, tuple[CommandInfo, str]],
                                                            list[str]]:
        """The subcommands plugins add to ``libertem-live``: name -> (info, the
        distribution), and why any were left out (a name in ``taken``, the
        core's own, or one claimed twice; a hook that raised)."""
        found: dict[str, tuple[CommandInfo, str]] = {}
        left_out: list[str] = []
        taken = set(taken)
        for impl in self.hook.libertem_live_commands.get_hookimpls():
            dist = impl.plugin_name.split(":", 1)[0]
            try:
                infos = list(impl.function() or [])
            except Exception as e:  # a broken plugin must not break the command line
                left_out.append(f"{dist}: its libertem_live_commands hook raised "
                                f"{type(e).__name__}: {e}")
                continue
            for info in infos:
                if info.name in taken:
                    left_out.append(f"{info.name!r} of {dist}: a command of libertem-live-core")
                elif info.name in found:
                    left_out.append(f"{info.name!r} of {dist}: also claimed by "
                                    f"{found[info.name][1]}")
                else:
                    found[info.name] = (info, dist)
        return found, left_out

    @property
    def hook(self) -> Any:
        self._load()
        return self.plugin_manager.hook


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry() -> Registry:
    global _default
    with _default_lock:
        if _default is None:
            _default = Registry()
        return _default


def _did_you_mean(name: str, known: list[str]) -> str | None:
    """The installed driver ``name`` most likely meant (case and ``-``/``_``
    ignored, then spelling), or None."""
    def norm(n: str) -> str:
        return n.lower().replace("-", "_")
    by_norm = {norm(k): k for k in known}
    if norm(name) in by_norm:
        return by_norm[norm(name)]
    close = difflib.get_close_matches(norm(name), list(by_norm), n=1)
    return by_norm[close[0]] if close else None
