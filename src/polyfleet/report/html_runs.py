"""The figures of ``polyfleet report`` that plan again or simulate: baselines, risk, frontier, $/Mtok.

- baselines: the best plan on ONE provider's offers (and api offers) only, and the best
  plan on ONE chip vendor's accelerators (api offers naming no vendor, or that vendor,
  kept), re-planned with :func:`polyfleet.plan`; the cap on that group and, for one
  provider, survival are dropped (they cannot hold with one provider or vendor), every
  other policy is kept;
- the risk histogram: :func:`polyfleet.risk.monte_carlo` on the plan's fleet;
- the frontier: :func:`polyfleet.risk.frontier.frontier` over provider caps;
- $/Mtok per accelerator: :func:`polyfleet.perf.compare.compare_accelerators` per service.

Pure: no file or network I/O.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from polyfleet.errors import SpecError
from polyfleet.plan import SolveOptions, plan
from polyfleet.report.html_data import Progress, _pct, _quiet, allocation_rows, single_period
from polyfleet.spec import InferenceWorkload, Spec


def _relaxed(spec: Spec, group: str) -> Spec:
    """``spec`` without the caps on ``group`` (and without survival when the group is provider)."""
    policy = spec.model.policy
    update: dict[str, Any] = {"max_share": policy.max_share.model_copy(update={group: None})}
    spend = getattr(policy, "max_spend_share", None)
    if spend is not None:
        update["max_spend_share"] = spend.model_copy(update={group: None})
    if group == "provider":
        update["survive_provider_loss"] = 0.0
    return dataclasses.replace(
        spec, model=spec.model.model_copy(update={"policy": policy.model_copy(update=update)})
    )


def _restricted(spec: Spec, group: str, value: str) -> Spec:
    """``spec`` planned on one provider's (or one vendor's) offers only; see the module docstring."""
    cat = spec.catalog
    if group == "provider":
        offers = {k: o for k, o in cat.offers.items() if o.provider == value}
        api = {k: a for k, a in cat.api_offers.items() if a.provider == value}
    else:
        offers = {
            k: o
            for k, o in cat.offers.items()
            if o.accelerator in cat.accelerators and cat.accelerators[o.accelerator].vendor == value
        }
        api = {k: a for k, a in cat.api_offers.items() if a.vendor in ("", value)}
    relaxed = _relaxed(spec, group)
    model = relaxed.model.model_copy(  # the spec's own offers too: the planner checks each is usable
        update={
            "offers": [o for o in relaxed.model.offers if o.id in offers],
            "api_offers": [a for a in relaxed.model.api_offers if a.id in api],
        }
    )
    return dataclasses.replace(
        relaxed, model=model, catalog=dataclasses.replace(cat, offers=offers, api_offers=api)
    )


def group_values(spec: Spec, group: str) -> list[str]:
    """Every provider (or chip vendor) the spec's catalog offers."""
    cat = spec.catalog
    if group == "provider":
        return sorted(
            {o.provider for o in cat.offers.values()} | {a.provider for a in cat.api_offers.values()}
        )
    vendors = {
        cat.accelerators[o.accelerator].vendor
        for o in cat.offers.values()
        if o.accelerator in cat.accelerators
    }
    return sorted(vendors | {a.vendor for a in cat.api_offers.values() if a.vendor})


def baselines(
    spec: Spec, options: SolveOptions | None = None, progress: Progress = _quiet
) -> dict[str, dict[str, Any]]:
    """The best single-provider and single-vendor plans (see the module docstring).

    Returns ``{"provider": {...}, "vendor": {...}}``, each with ``best`` (the value, or
    None when no single one can run every workload), ``total_usd`` and ``tried``
    (value -> total USD, or the reason it cannot).
    """
    options = options or SolveOptions(time_limit_s=20.0)
    out: dict[str, dict[str, Any]] = {}
    for group in ("provider", "vendor"):
        tried: dict[str, Any] = {}
        values = group_values(spec, group)
        progress(f"baselines: {len(values)} single-{group} plans")
        for value in values:
            try:
                result = plan(_restricted(spec, group, value), options)
            except SpecError as exc:  # no offer of this group can host some workload
                tried[value] = {"feasible": False, "reason": exc.message}
                continue
            if result.feasible:
                tried[value] = {"feasible": True, "total_usd": result.to_dict()["total_usd"]}
            else:
                info = result.infeasibility
                tried[value] = {"feasible": False, "reason": info.message if info else str(result.status)}
        ok = {v: t["total_usd"] for v, t in tried.items() if t["feasible"]}
        best = min(ok, key=lambda v: (ok[v], v)) if ok else None
        out[group] = {"best": best, "total_usd": ok.get(best) if best else None, "tried": tried}
    return out


def risk_figures(
    plan_dict: dict[str, Any], assumptions: Any, scenarios: int, seed: int, bins: int = 40
) -> dict[str, Any]:
    """Monte Carlo cost histogram with p50, p95 and CVaR95, and the five costliest scenarios named.

    A monthly plan's month 0 is stressed.  CVaR95 is the mean cost of the costliest 5%.
    A scenario is named by the providers with an outage in it and the services it
    left with more than 1% of demand unserved.
    """
    from polyfleet.risk import fleet_from_plan, monte_carlo

    fleet = fleet_from_plan(single_period(plan_dict))
    outcome = monte_carlo(fleet, assumptions, scenarios, seed)
    cost = outcome.cost_usd
    p95 = float(np.quantile(cost, 0.95))
    tail = np.sort(cost)[math.floor(0.95 * cost.size) :]
    counts, edges = np.histogram(cost, bins=bins)
    worst = []
    for i in np.argsort(-cost, kind="stable")[:5]:
        out_providers = [p for j, p in enumerate(fleet.providers) if outcome.outage[i, j]]
        short = [
            f"{name} {_pct(float(outcome.unserved[i, w]))} unserved"
            for w, name in enumerate(fleet.workloads)
            if outcome.unserved[i, w] > 0.01
        ]
        worst.append(
            {
                "scenario": int(i),
                "cost_usd": round(float(cost[i]), 2),
                "outages": out_providers,
                "name": (
                    ", ".join(f"{p} down" for p in out_providers)
                    or "no outage: capacity shock, delay or prices"
                )
                + ("; " + ", ".join(short) if short else ""),
            }
        )
    return {
        "scenarios": int(cost.size),
        "seed": seed,
        "plan_usd": round(float(fleet.total_usd), 2),
        "expected_usd": round(float(cost.mean()), 2),
        "p50_usd": round(float(np.quantile(cost, 0.5)), 2),
        "p95_usd": round(p95, 2),
        "cvar95_usd": round(float(tail.mean()), 2),
        "histogram": [
            {
                "bin_start": round(float(edges[k]), 2),
                "bin_end": round(float(edges[k + 1]), 2),
                "count": int(c),
            }
            for k, c in enumerate(counts)
        ],
        "worst": worst,
    }


def frontier_figures(
    spec: Spec,
    plan_dict: dict[str, Any],
    caps: Sequence[float],
    scenarios: int = 200,
    seed: int = 0,
    options: SolveOptions | None = None,
) -> dict[str, Any]:
    """Plans at each provider cap (the spec's survival kept): cost against the largest provider share.

    Returns ``points`` (the feasible plans and, marked ``chosen``, this plan; each marked
    ``dominated`` when another has a largest provider share and a cost no higher, one of
    them lower: the frontier line joins the others), ``infeasible_caps`` and ``survival``.
    """
    from polyfleet.risk.frontier import frontier

    survival = float(spec.model.policy.survive_provider_loss)
    result = frontier(
        spec, list(caps), [survival], spec.model.risk, scenarios=scenarios, seed=seed, options=options
    )
    points = [
        {
            "label": f"cap {_pct(p['provider_cap'], 0)}",
            "provider_cap": p["provider_cap"],
            "max_provider_share": p["max_provider_share"],
            "total_usd": p["total_usd"],
            "chosen": False,
        }
        for p in result["points"]
        if p["feasible"]
    ]
    # the frontier's own measure: capacity shares since issue 13, spend shares before
    measure = "capacity" if "capacity_shares" in plan_dict else "spend"
    lockin = plan_dict["capacity_shares" if measure == "capacity" else "shares"]["provider"]
    points.append(
        {
            "label": "this plan",
            "provider_cap": spec.model.policy.max_share.provider,
            "max_provider_share": max(lockin.values(), default=0.0),
            "total_usd": plan_dict["total_usd"],
            "chosen": True,
        }
    )
    return {
        "points": mark_dominated(points, options.mip_rel_gap if options is not None else 0.0),
        "infeasible_caps": [p["provider_cap"] for p in result["points"] if not p["feasible"]],
        "survival": survival,
        "measure": measure,
    }


def mark_dominated(points: list[dict[str, Any]], rel_tol: float = 0.0) -> list[dict[str, Any]]:
    """Set ``dominated`` on each point: another has a largest provider share and a cost no
    higher, and one of them lower.  Costs within ``rel_tol`` (the sweep's MIP gap) are equal:
    a plan solved to a gap is not cheaper than another by less than that gap."""

    def cheaper(a: float, b: float) -> bool:  # a < b beyond the tolerance
        return a < b - max(1e-6, rel_tol * abs(b))

    for p in points:
        share, cost = p["max_provider_share"], p["total_usd"]
        p["dominated"] = any(
            q is not p
            and q["max_provider_share"] <= share + 1e-9
            and not cheaper(cost, q["total_usd"])
            and (q["max_provider_share"] < share - 1e-9 or cheaper(q["total_usd"], cost))
            for q in points
        )
    return points


def accelerator_rows(spec: Spec, plan_dict: dict[str, Any]) -> list[dict[str, Any]]:
    """$/Mtok out per accelerator (cheapest on-demand offer) for each inference service, at its SLO."""
    from polyfleet.perf.compare import compare_accelerators

    used = {(r["service"], r["accelerator"]) for r in allocation_rows(plan_dict, spec) if r["accelerator"]}
    rows = []
    for w in spec.workloads:
        if not isinstance(w, InferenceWorkload):
            continue
        for r in compare_accelerators(
            spec.card(w),
            spec.catalog.accelerators,
            spec.catalog.offers,
            input_tokens=w.input_tokens,
            output_tokens=w.output_tokens,
            tpot_ms=w.slo.tpot_ms,
            ttft_ms=w.slo.ttft_ms,
            batching=w.batching,
        ):
            stack = spec.catalog.accelerators[r["accelerator"]].stack
            if w.stacks and stack not in w.stacks:
                continue
            if r["feasible"] and r.get("usd_per_mtok_out") is not None:
                rows.append(
                    {
                        "service": w.name,
                        "accelerator": r["accelerator"],
                        "vendor": r["vendor"],
                        "offer": r["offer"],
                        "usd_per_mtok": round(float(r["usd_per_mtok_out"]), 4),
                        "basis": "perf model, $/Mtok out",
                        "in_plan": (w.name, r["accelerator"]) in used,
                    }
                )
    return rows
