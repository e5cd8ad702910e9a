"""polyfleet: plan AI work across clouds and chip vendors.

>>> import polyfleet
>>> spec = polyfleet.load_spec("examples/startup.yaml")
>>> result = polyfleet.plan(spec)
>>> result.to_dict()["total_usd"]  # doctest: +SKIP
"""

from __future__ import annotations

from polyfleet.errors import InfeasibleError, PolyfleetError, SpecError
from polyfleet.plan import Plan, SolveOptions, Status, plan
from polyfleet.spec import Spec, build_spec, load_spec

__version__ = "0.1.0"

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
