"""Import paths of the form ``libertem_live.detectors.<name>``.

The core never imports a plugin by name: ``libertem_live.detectors.<name>``
(and its submodules) resolves, through the registry, to the module the
installed driver declared as its ``compat_module``, so scripts written for
older import paths keep working when the driver is installed.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Sequence

_PREFIX = __name__ + "."


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self._target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self._target)

    def exec_module(self, module: ModuleType) -> None:
        pass


class _DriverAliasFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        rest = fullname[len(_PREFIX):]
        driver, _, sub = rest.partition(".")
        if driver == "memory":
            return None
        from libertem_live.registry import default_registry
        base = default_registry().compat_module_for(driver)
        if base is None:
            return None
        target_name = base if not sub else f"{base}.{sub}"
        if importlib.util.find_spec(target_name) is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(target_name),
                                               is_package=True)


# first in line: the parent alias is the plugin's real package, so the normal
# path finder would otherwise load its submodules a second time under the alias
if not any(isinstance(f, _DriverAliasFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _DriverAliasFinder())
