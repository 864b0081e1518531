"""Make a module callable, forwarding calls to one of its own functions.

`spladebridge.ingest` and `spladebridge.migrate` each name both a submodule and the function the package
re-exports: importing the submodule binds the name on the package to the module, shadowing the function. Making
the module callable keeps `spladebridge.ingest(...)` / `spladebridge.migrate(...)` working whatever the import
order.
"""

from __future__ import annotations

import sys
import types
from typing import Any, ClassVar


class _CallableModule(types.ModuleType):
    """A module whose calls go to its attribute `_call_target` names (looked up on every call)."""

    _call_target: ClassVar[str]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self._call_target)(*args, **kwargs)


def make_module_callable(module_name: str, func_name: str) -> None:
    """Let the module `module_name` be called like its function `func_name` (resolved at call time, as a
    global name would be, so a monkeypatched function is the one called)."""
    module_class = type("_CallableModule", (_CallableModule,), {"_call_target": func_name})
    sys.modules[module_name].__class__ = module_class
