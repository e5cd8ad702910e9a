"""Explain a plan: what each policy costs, and what margin goes to resellers.

Each policy's premium is found by solving again without it (all other policies kept):
``premium = plan cost - cost without the policy``.  The reseller markup compares what the
plan pays each api offer that resells a model with what the cheapest direct host of the
same model (an api offer of the maker itself) would charge for the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polyfleet.plan.build import FAMILIES
from polyfleet.plan.candidates import Candidates
from polyfleet.plan.result import Plan
from polyfleet.plan.solve import SolveOptions
from polyfleet.spec import Spec

Solver = Callable[..., Plan]


def _premium(
    cand: Candidates, spec: Spec, plan: Plan, options: SolveOptions, solve: Solver, drop: str
) -> float | None:
    relaxed = solve(cand, spec, options, families=tuple(f for f in FAMILIES if f != drop))
    if not relaxed.feasible:
        return None
    return round(max(plan.total_usd - relaxed.total_usd, 0.0), 2)


def reseller_markups(cand: Candidates, plan: Plan) -> list[dict[str, Any]]:
    """Per api allocation that resells a model: the markup over the cheapest direct host."""
    usd_of = {
        (int(w), int(a)): float(usd) for w, a, usd in zip(cand.api_w, cand.api_a, cand.api_usd, strict=True)
    }
    index = {a.id: i for i, a in enumerate(cand.api_offers)}
    names = {w.name: i for i, w in enumerate(cand.workloads)}
    out = []
    for workload in plan.workloads:
        wi = names[workload["name"]]
        for alloc in workload["allocations"]:
            maker = alloc.get("resells")
            if not maker:
                continue
            a = index[alloc["offer"]]
            direct = [
                (usd_of[(wi, d)], cand.api_offers[d].id)
                for d in range(len(cand.api_offers))
                if (wi, d) in usd_of
                and cand.api_offers[d].provider == maker
                and cand.api_offers[d].model == cand.api_offers[a].model
            ]
            if not direct:
                continue
            direct_usd, direct_id = min(direct)
            share = alloc["share"]
            out.append(
                {
                    "workload": workload["name"],
                    "offer": alloc["offer"],
                    "resells": maker,
                    "usd": alloc["usd"],
                    "direct_offer": direct_id,
                    "direct_usd": round(direct_usd * share, 2),
                    "markup_usd": round(alloc["usd"] - direct_usd * share, 2),
                }
            )
    return out


def service_configurations(cand: Candidates, plan: Plan) -> list[dict[str, Any]]:
    """Per inference allocation: the serving configuration the perf model chose on that offer."""
    columns = zip(cand.inf_w, cand.inf_o, cand.inf_config, cand.inf_chips, cand.inf_rps, strict=True)
    cfg = {
        (cand.workloads[int(w)].name, cand.offers[int(o)].id): (str(c), int(t), float(r))
        for w, o, c, t, r in columns
    }
    out = []
    for workload in plan.workloads:
        for alloc in workload["allocations"]:
            found = cfg.get((workload["name"], alloc["offer"]))
            if found is not None and alloc.get("replicas", 0) > 0:
                label, chips, rps = found
                out.append(
                    {
                        "workload": workload["name"],
                        "offer": alloc["offer"],
                        "configuration": label,
                        "chips_per_replica": chips,
                        "requests_per_s_per_replica": round(rps, 4),
                    }
                )
    return out


def explain(cand: Candidates, spec: Spec, plan: Plan, options: SolveOptions, *, solve: Solver) -> dict:
    """Lock-in and survival premiums, dilution spend, budget slack and reseller markup for ``plan``."""
    policy = spec.policy
    caps = policy.max_share.provider is not None or policy.max_share.vendor is not None
    spend_caps = policy.max_spend_share.provider is not None or policy.max_spend_share.vendor is not None
    markups = reseller_markups(cand, plan)
    return {
        "lock_in_premium_usd": _premium(cand, spec, plan, options, solve, "lock-in") if caps else 0.0,
        # spend that exists only to dilute a share-of-spend cap: the plan minus the cheapest
        # plan meeting every other policy, the capacity caps (max_share) included
        "dilution_usd": _premium(cand, spec, plan, options, solve, "spend-share") if spend_caps else 0.0,
        "survival_premium_usd": (
            _premium(cand, spec, plan, options, solve, "survival")
            if policy.survive_provider_loss > 0
            else 0.0
        ),
        "budget_slack_usd": (
            round(policy.budget_usd - plan.total_usd, 2) if policy.budget_usd is not None else None
        ),
        "reseller_markup_usd": round(sum(m["markup_usd"] for m in markups), 2),
        "reseller_markups": markups,
        "configurations": service_configurations(cand, plan),
    }
