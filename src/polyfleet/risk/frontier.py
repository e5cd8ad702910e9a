"""The price of diversification: re-plan over a grid of provider caps and survival fractions.

For every (max provider share c, survival fraction f) the spec is planned again with
``policy.max_share.provider = c`` (1 = no cap) and ``policy.survive_provider_loss = f``;
every other policy of the spec (vendor cap, budget) is kept.  The **unconstrained plan**
is the same spec with no provider cap and f = 0: each point's premium is measured
against it.  Each feasible point carries two risk figures from :mod:`polyfleet.risk`:

- ``worst_loss_unserved_fraction``: the share of peak inference demand left unserved
  when the worst single provider is down for the whole horizon, after buying emergency
  capacity as the risk assumptions allow (deterministic), and ``worst_loss_extra_usd``,
  the largest extra cost of one provider down.  ``min_survival`` is the planner's own
  survival rule (``polyfleet.plan.survival``) on the point's plan: the smallest share
  of peak any service keeps after losing any one provider, before emergency purchases;
- ``expected_usd`` and ``p95_usd``: the Monte Carlo cost under the spec's risk
  assumptions, with a small fixed scenario count and seed (the same draws for every
  point, so differences between points are not sampling noise in the draws).

Caps are solved from the loosest down: when the plan for a looser cap already keeps every
provider within a tighter one, it is optimal there too and is reused (the row says
``same_plan_as_cap``) instead of solving again.

Infeasible (or time-limited) grid points are rows with ``feasible: false`` and the
planner's reason, never errors.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from polyfleet.errors import SpecError
from polyfleet.plan import SolveOptions, plan
from polyfleet.risk.assumptions import RiskAssumptions
from polyfleet.risk.dispatch import evaluate
from polyfleet.risk.engine import monte_carlo
from polyfleet.risk.fleet import fleet_from_plan
from polyfleet.risk.scenarios import provider_down
from polyfleet.spec import Spec


def check_single_period(spec: Spec) -> None:
    """Refuse a monthly spec (``SpecError`` naming ``periods``), before any plan is solved.

    Why: a point's provider share and risk figures are those of one period's fleet, and a
    monthly plan has one fleet per month (its top-level ``capacity_shares`` is empty).
    """
    if spec.model.periods == "monthly":
        raise SpecError(
            "the frontier re-plans one period: expected periods: single (a monthly plan's fleet"
            " changes by month; `polyfleet risk PLAN --month N` stresses one month)",
            file=spec.file,
            line=spec.lines.get(("periods",)),
            path="periods",
        )


def with_policy(spec: Spec, provider_cap: float | None, survival: float) -> Spec:
    """``spec`` with its provider cap and survival fraction replaced (``None`` or 1: no cap)."""
    policy = spec.model.policy
    cap = None if provider_cap is None or provider_cap >= 1 else provider_cap
    max_share = policy.max_share.model_copy(update={"provider": cap})
    new_policy = policy.model_copy(update={"max_share": max_share, "survive_provider_loss": survival})
    return dataclasses.replace(spec, model=spec.model.model_copy(update={"policy": new_policy}))


def plan_risk(
    plan_dict: dict[str, Any], assumptions: RiskAssumptions, scenarios: int, seed: int
) -> dict[str, float]:
    """The risk figures of one feasible plan (see the module docstring)."""
    fleet = fleet_from_plan(plan_dict)
    sweep = evaluate(fleet, provider_down(fleet, assumptions), assumptions)
    # the planner's own survival rule (plan.survival), on the plan's allocations
    min_survival = min(
        (p["served_fraction"] for d in fleet.survival.values() for p in d.values()), default=1.0
    )
    inference = np.array([kind == "inference" for kind in fleet.kinds])
    worst = 0.0
    if inference.any() and fleet.providers:
        lost = sweep.unserved[:, inference] @ fleet.demand[inference] / fleet.demand[inference].sum()
        worst = float(lost.max())
    outcome = monte_carlo(fleet, assumptions, scenarios, seed)
    return {
        "min_survival": round(min_survival, 6),
        "worst_loss_unserved_fraction": round(worst, 6),
        "worst_loss_extra_usd": round(float(sweep.cost_usd.max() - fleet.total_usd), 2)
        if fleet.providers
        else 0.0,
        "expected_usd": round(float(outcome.cost_usd.mean()), 2),
        "p95_usd": round(float(np.quantile(outcome.cost_usd, 0.95)), 2),
    }


def _point(
    spec: Spec,
    cap: float | None,
    survival: float,
    options: SolveOptions,
    assumptions: RiskAssumptions,
    scenarios: int,
    seed: int,
) -> dict[str, Any]:
    result = plan(with_policy(spec, cap, survival), options)
    row: dict[str, Any] = {"provider_cap": 1.0 if cap is None else cap, "survival": survival}
    if not result.feasible:
        info = result.infeasibility
        reason = f"{info.family}: {info.message}" if info else str(result.status)
        return {**row, "feasible": False, "status": str(result.status), "reason": reason}
    data = result.to_dict()
    return {
        **row,
        "feasible": True,
        "status": data["status"],
        "total_usd": data["total_usd"],
        # what the cap bounds: the largest share of any service's peak one provider serves
        "max_provider_share": max(data["capacity_shares"]["provider"].values(), default=0.0),
        **plan_risk(data, assumptions, scenarios, seed),
    }


def frontier(
    spec: Spec,
    provider_caps: Sequence[float],
    survivals: Sequence[float],
    assumptions: RiskAssumptions | None = None,
    *,
    scenarios: int = 2000,
    seed: int = 0,
    options: SolveOptions | None = None,
) -> dict[str, Any]:
    """Plan every grid point; return the unconstrained base and one row per point (caps major).

    A monthly spec is refused (``check_single_period``).
    """
    check_single_period(spec)
    assumptions = assumptions or RiskAssumptions()
    options = options or SolveOptions()
    base = _point(spec, None, 0.0, options, assumptions, scenarios, seed)
    by_point: dict[tuple[float, float], dict[str, Any]] = {}
    for survival in survivals:
        looser: dict[str, Any] | None = base if survival == 0 else None
        for cap in sorted(provider_caps, reverse=True):
            if looser is not None and looser["feasible"] and looser["max_provider_share"] <= cap + 1e-9:
                # optimal under a looser cap and already within this one: optimal here too
                row = {**looser, "provider_cap": cap, "same_plan_as_cap": looser["provider_cap"]}
                for key in ("premium_usd", "premium_fraction"):
                    row.pop(key, None)
            else:
                row = _point(spec, cap, survival, options, assumptions, scenarios, seed)
                looser = row
            if row["feasible"] and base["feasible"]:
                row["premium_usd"] = round(row["total_usd"] - base["total_usd"], 2)
                row["premium_fraction"] = round(row["premium_usd"] / base["total_usd"], 6)
            by_point[(cap, survival)] = row
    points = [by_point[(cap, survival)] for cap in provider_caps for survival in survivals]
    return {"unconstrained": base, "scenarios": scenarios, "seed": seed, "points": points}
