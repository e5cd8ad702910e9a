"""polyfleet: plan AI work across clouds and chip vendors.

>>> import polyfleet
>>> spec = polyfleet.load_spec("examples/startup.yaml")
>>> result = polyfleet.plan(spec)
>>> result.to_dict()["total_usd"]  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

from polyfleet.errors import InfeasibleError, PolyfleetError, SpecError

if TYPE_CHECKING:
    from polyfleet.plan import Plan, SolveOptions, Status, plan
    from polyfleet.spec import Spec, build_spec, load_spec

__version__ = "0.1.0"

# The planner pulls in numpy, scipy, HiGHS and pydantic: imported on first use, so that
# `polyfleet --version` and `polyfleet --help` answer at once.
_LAZY = {
    "Plan": "polyfleet.plan",
    "SolveOptions": "polyfleet.plan",
    "Status": "polyfleet.plan",
    "plan": "polyfleet.plan",
    "Spec": "polyfleet.spec",
    "build_spec": "polyfleet.spec",
    "load_spec": "polyfleet.spec",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'polyfleet' has no attribute {name!r}")


class _Module(types.ModuleType):
    """``polyfleet.plan`` is the function, as with an eager import, not the subpackage that
    importing ``polyfleet.plan.*`` would otherwise bind here."""

    @property
    def plan(self) -> Any:
        return importlib.import_module("polyfleet.plan").plan

    @plan.setter
    def plan(self, value: Any) -> None:
        pass  # the import system binding the subpackage: the function stays


sys.modules[__name__].__class__ = _Module

__all__ = [
    "InfeasibleError",
    "Plan",
    "PolyfleetError",
    "SolveOptions",
    "Spec",
    "SpecError",
    "Status",
    "__version__",
    "build_spec",
    "load_spec",
    "plan",
]
