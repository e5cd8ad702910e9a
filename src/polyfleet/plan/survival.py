"""What each service keeps after losing one provider: the one rule every output uses.

``docs/planning-model.md`` (Survival) defines it.  After losing provider p, an inference
workload is served by

- the replicas the plan bought outside p (spot replicas only when the policy says
  ``spot_counts_for_survival``),
- the api tokens the plan buys outside p (its ``share`` of peak demand), and
- api capacity it can rely on in an emergency: each api offer of its model outside p
  counts up to its stated emergency quota (``requests_per_s`` of the workload's
  ``api_fallbacks`` entry, from ``fallback_tokens_per_minute`` or else
  ``max_tokens_per_minute``), or without limit (``requests_per_s: null``) only when the
  policy says ``api_fallback: unlimited``.  An offer counts for the larger of what the
  plan buys from it and its quota, not both.

The plan table, the risk report's one-provider-down sweep and ``polyfleet frontier`` all
call :func:`survival_from_workloads` on the plan's own ``workloads`` list (plain data, as
``Plan.to_dict()`` writes it), so they cannot disagree.  Pure: no I/O.
"""

from __future__ import annotations

import math
from typing import Any

#: seconds in a month (730 hours): what one month of outage lasts
SECONDS_PER_MONTH = 730.0 * 3600.0


def _counted_replicas(alloc: dict[str, Any], spot_counts: bool) -> float:
    """Requests/s an allocation of replicas brings after a loss elsewhere (0 for spot unless counted)."""
    if alloc.get("term") == "spot" and not spot_counts:
        return 0.0
    return float(alloc.get("requests_per_s") or 0.0)


def served_after_loss(workload: dict[str, Any], lost: str, spot_counts: bool) -> dict[str, Any]:
    """``served_fraction`` of one inference workload's peak after losing ``lost``, and what it relies on.

    ``relies_on`` lists, in order, the replica allocations outside ``lost`` that count,
    the api allocations outside it, then the api fallbacks (cheapest per request first)
    that cover what is still short, each with the requests/s and share of peak relied
    on; fallbacks also carry ``tokens_per_minute`` and ``usd_per_month_of_outage`` (the
    mean traffic they would carry for one month, at their own prices).
    """
    peak = float(workload["demand"]["peak_requests_per_s"])
    mean = float(workload["demand"].get("requests_per_s", peak))
    relies: list[dict[str, Any]] = []
    served = 0.0
    bought_api: dict[str, float] = {}
    for alloc in workload["allocations"]:
        if alloc["provider"] == lost:
            continue
        if alloc.get("accelerator") is None:  # bought per token
            rps = float(alloc["share"]) * peak
            bought_api[alloc.get("offer", "")] = rps
            kind = "api"
        else:
            rps = _counted_replicas(alloc, spot_counts)
            kind = "replicas"
        if rps <= 0:
            continue
        served += rps
        relies.append(
            {
                "offer": alloc.get("offer", ""),
                "provider": alloc["provider"],
                "kind": kind,
                "requests_per_s": round(rps, 6),
                "share": round(rps / peak, 6),
            }
        )
    fallbacks = sorted(
        (f for f in workload.get("api_fallbacks", []) if f["provider"] != lost),
        key=lambda f: (f["usd_per_request"], f["offer"]),
    )
    for fb in fallbacks:
        short = peak - served
        if short <= 1e-12:
            break
        quota = math.inf if fb["requests_per_s"] is None else float(fb["requests_per_s"])
        extra = min(short, max(quota - bought_api.get(fb["offer"], 0.0), 0.0))
        if extra <= 0:
            continue
        served += extra
        relies.append(
            {
                "offer": fb["offer"],
                "provider": fb["provider"],
                "kind": "api-fallback",
                "requests_per_s": round(extra, 6),
                "share": round(extra / peak, 6),
                "tokens_per_minute": round(extra * fb["tokens_per_request"] * 60, 1),
                "unlimited": fb["requests_per_s"] is None,
                "usd_per_month_of_outage": round(
                    extra * (mean / peak) * SECONDS_PER_MONTH * fb["usd_per_request"], 2
                ),
            }
        )
    return {"served_fraction": round(min(1.0, served / peak), 6), "relies_on": relies}


def survival_from_workloads(
    workloads: list[dict[str, Any]], providers: list[str], spot_counts: bool
) -> dict[str, dict[str, dict[str, Any]]]:
    """Per inference workload, per provider in ``providers``: :func:`served_after_loss`."""
    return {
        w["name"]: {p: served_after_loss(w, p, spot_counts) for p in providers}
        for w in workloads
        if w["kind"] == "inference"
    }


def worst_by_provider(detail: dict[str, dict[str, dict[str, Any]]], providers: list[str]) -> dict[str, float]:
    """Per provider: the smallest served fraction over workloads (1.0 when no inference workload)."""
    return {p: min((d[p]["served_fraction"] for d in detail.values()), default=1.0) for p in providers}


def plan_providers(plan: dict[str, Any]) -> list[str]:
    """Providers a plan pays for capacity (egress-only providers host nothing), sorted."""
    return sorted({p["provider"] for p in plan.get("purchases", []) if p.get("term") != "egress"})


def survival_of_plan(plan: dict[str, Any]) -> tuple[dict[str, float], dict[str, dict[str, dict[str, Any]]]]:
    """(worst served fraction per provider, per-workload detail) of a plan dictionary."""
    providers = plan_providers(plan)
    spot_counts = bool(plan.get("policy", {}).get("spot_counts_for_survival", False))
    detail = survival_from_workloads(plan["workloads"], providers, spot_counts)
    return worst_by_provider(detail, providers), detail
