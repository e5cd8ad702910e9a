"""Monte Carlo risk of a bought fleet: outages, capacity shocks, price moves, chip delays.

Pure: takes a plan dictionary and :class:`RiskAssumptions`, returns arrays and
dictionaries; reading files and printing live in ``polyfleet.cli.risk``.

>>> from polyfleet.risk import RiskAssumptions, fleet_from_plan, analyse
>>> fleet = fleet_from_plan(plan_dict)  # doctest: +SKIP
>>> report = analyse(fleet, RiskAssumptions(), scenarios=10_000, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from polyfleet.risk.assumptions import RiskAssumptions
from polyfleet.risk.dispatch import Outcome, evaluate
from polyfleet.risk.engine import Mapper, local_mapper, monte_carlo, ray_mapper
from polyfleet.risk.fleet import Fleet, PlanDataError, fleet_from_plan
from polyfleet.risk.scenarios import Scenarios, draw_scenarios, provider_down
from polyfleet.risk.summary import summarise


def analyse(
    fleet: Fleet, assumptions: RiskAssumptions, scenarios: int, seed: int = 0, mapper: Mapper = local_mapper
) -> dict[str, Any]:
    """Monte Carlo plus the one-provider-down sweep, summarised (see :func:`summarise`)."""
    outcome = monte_carlo(fleet, assumptions, scenarios, seed, mapper)
    sweep = evaluate(fleet, provider_down(fleet, assumptions), assumptions)
    return summarise(fleet, outcome, sweep, seed)


__all__ = [
    "Fleet",
    "Mapper",
    "Outcome",
    "PlanDataError",
    "RiskAssumptions",
    "Scenarios",
    "analyse",
    "draw_scenarios",
    "evaluate",
    "fleet_from_plan",
    "local_mapper",
    "monte_carlo",
    "provider_down",
    "ray_mapper",
    "summarise",
]
