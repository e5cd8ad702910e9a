"""The figures of ``polyfleet report``: read from a plan dictionary, or planned on its spec.

Every figure the HTML report shows is computed here, as plain JSON-ready data, and the
page embeds exactly this data (``<script id="polyfleet-report-data">``), so a test can
check the page against the plan.  What each figure means is in ``docs/report.md``.

Figures read from the plan (``Plan.to_dict()``): the headline total, spend shares and
caps, allocations, survival, monthly capacity.  Figures that plan again or simulate
(baselines, risk, frontier, $/Mtok per accelerator) are in :mod:`polyfleet.report.html_runs`.

Pure: no file or network I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polyfleet.spec import InferenceWorkload, Spec

#: hours and seconds in a month, as the planning model counts them
HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
#: a share this close to its cap, or a budget this close to spent, binds
BIND_TOL = 1e-6
#: survival within this many points of the policy floor is reported as binding
SURVIVAL_BIND_TOL = 0.01

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


def feasible(plan_dict: dict[str, Any]) -> bool:
    """Whether the plan has allocations to report."""
    return plan_dict.get("status") in ("optimal", "feasible")


def single_period(plan_dict: dict[str, Any]) -> dict[str, Any]:
    """The plan whose allocations the report tabulates: the plan, or month 0 of a monthly plan."""
    if plan_dict.get("periods") == "monthly" and plan_dict.get("months"):
        return plan_dict["months"][0]
    return plan_dict


# --- read from the plan -----------------------------------------------------------------------


def spend_caps(policy: dict[str, Any]) -> dict[str, float | None]:
    """Each group's cap on its share of spend: ``max_spend_share`` if the plan has it, else ``max_share``.

    Plans from before issue 13 have no ``max_spend_share``: their ``max_share`` capped spend.
    """
    caps = policy.get("max_spend_share") if "max_spend_share" in policy else policy.get("max_share")
    caps = caps or {}
    return {"provider": caps.get("provider"), "vendor": caps.get("vendor")}


def capacity_caps(policy: dict[str, Any]) -> dict[str, float | None]:
    """Each group's cap on its share of any service's peak (``max_share`` since issue 13), else None."""
    caps = (policy.get("max_share") or {}) if "max_spend_share" in policy else {}
    return {"provider": caps.get("provider"), "vendor": caps.get("vendor")}


def capacity_shares(plan_dict: dict[str, Any], group: str) -> dict[str, tuple[float, str]]:
    """Per provider (or vendor): the largest share of one service's peak it serves, and that service.

    The plan's ``capacity_shares`` when it has them; else (plans from before issue 13) a
    service's share at v is the sum of the ``share`` of its allocations at v (replicas'
    requests/s over the peak, or the per-token share), training jobs not counted
    (docs/planning-model.md, lock-in caps).  The service is the one with the largest share.
    """
    out: dict[str, tuple[float, str]] = {}
    given = single_period(plan_dict).get("capacity_shares", {}).get(group)  # the plan's own figure
    for w in single_period(plan_dict).get("workloads", []):
        if w["kind"] == "training":
            continue
        by_value: dict[str, float] = {}
        for a in w["allocations"]:
            value = a.get(group) or ""
            if value:
                by_value[value] = by_value.get(value, 0.0) + float(a.get("share") or 0.0)
        for value, share in by_value.items():
            if share > out.get(value, (-1.0, ""))[0]:
                out[value] = (round(share, 6), w["name"])
    if given is not None:
        return {value: (float(share), out.get(value, (0.0, ""))[1]) for value, share in given.items()}
    return out


def spend_rows(plan_dict: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (group, value): share of spend, USD (share x total), the largest share of a
    service's peak it serves, and the group's spend and capacity caps."""
    policy = plan_dict.get("policy", {})
    caps, cap_caps = spend_caps(policy), capacity_caps(policy)
    total = float(plan_dict["total_usd"])
    rows = []
    for group in ("provider", "vendor"):
        shares = plan_dict.get("shares", {}).get(group, {})
        peak = capacity_shares(plan_dict, group)
        for value, share in sorted(shares.items(), key=lambda kv: (-kv[1], kv[0])):
            top, service = peak.get(value, (0.0, ""))
            rows.append(
                {
                    "group": group,
                    "value": value,
                    "share": float(share),
                    "usd": round(float(share) * total, 2),
                    "cap": caps[group],
                    "peak_share": top,
                    "peak_service": service,
                    "capacity_cap": cap_caps[group],
                }
            )
    return rows


def _tokens_per_request(spec: Spec | None, workload: dict[str, Any]) -> float | None:
    """Mean input + output tokens of one request of an inference workload, if known."""
    if spec is not None:
        for w in spec.workloads:
            if w.name == workload["name"] and isinstance(w, InferenceWorkload):
                mean_in, mean_out = w.mean_tokens
                return float(mean_in + mean_out)
    for fallback in workload.get("api_fallbacks") or []:
        if fallback.get("tokens_per_request"):
            return float(fallback["tokens_per_request"])
    return None


def _workload_mtok(workload: dict[str, Any], horizon_months: float, tokens: float | None) -> float | None:
    """Million tokens a workload serves (inference), trains on (training) or buys (api) over the horizon."""
    demand = workload.get("demand", {})
    if workload["kind"] == "inference":
        if tokens is None or "requests_per_s" not in demand:
            return None
        return float(demand["requests_per_s"]) * tokens * SECONDS_PER_MONTH * horizon_months / 1e6
    if workload["kind"] == "training":
        return float(demand["tokens_b"]) * 1e3 if "tokens_b" in demand else None
    if "mtok_in_per_month" in demand:
        return (
            float(demand["mtok_in_per_month"]) + float(demand.get("mtok_out_per_month", 0))
        ) * horizon_months
    return None


def allocation_rows(plan_dict: dict[str, Any], spec: Spec | None = None) -> list[dict[str, Any]]:
    """Service x offer rows: chips, instances, USD, USD per month and USD per Mtok.

    An allocation's tokens are the workload's tokens in proportion to its ``share``
    (normalised when the plan bought more than the peak); $/Mtok = usd / Mtok.
    Instances: the allocation's own when the plan gives them (training), else its chips
    over the offer's chips per instance (from the plan's purchases).
    """
    base = single_period(plan_dict)
    horizon = float(base.get("horizon_months") or plan_dict.get("horizon_months") or 1.0)
    per_instance = {
        p["offer"]: p["chips"] / p["instances"]
        for p in base.get("purchases", [])
        if p.get("instances") and p.get("chips")
    }
    rows = []
    for w in base.get("workloads", []):
        mtok = _workload_mtok(w, horizon, _tokens_per_request(spec, w) if w["kind"] == "inference" else None)
        share_sum = sum(float(a.get("share") or 0.0) for a in w["allocations"])
        norm = max(1.0, share_sum)
        for a in w["allocations"]:
            share = float(a.get("share") or 0.0)
            a_mtok = None if mtok is None else mtok * share / norm
            chips = int(a.get("chips") or 0)
            if a.get("instances") is not None:
                instances: float | None = float(a["instances"])
            elif chips and a["offer"] in per_instance:
                instances = round(chips / per_instance[a["offer"]], 4)
            else:
                instances = None
            usd = float(a["usd"])
            rows.append(
                {
                    "service": w["name"],
                    "kind": w["kind"],
                    "offer": a["offer"],
                    "provider": a["provider"],
                    "vendor": a.get("vendor") or "",
                    "accelerator": a.get("accelerator") or "",
                    "term": a.get("term") or "per-token",
                    "chips": chips,
                    "instances": instances,
                    "share": share,
                    "usd": usd,
                    "usd_per_month": round(usd / horizon, 2),
                    "mtok": None if a_mtok is None else round(a_mtok, 3),
                    "usd_per_mtok": None if not a_mtok else round(usd / a_mtok, 4),
                }
            )
    return rows


def _served(value: Any) -> float:
    """A survival cell: a fraction, or a ``{"served_fraction": ...}`` detail."""
    return float(value["served_fraction"] if isinstance(value, dict) else value)


def survival_rows(plan_dict: dict[str, Any]) -> list[dict[str, Any]]:
    """Service x lost provider: the share of the service's peak still served.

    Read from each inference workload's ``survival`` (per provider) when the plan has it;
    otherwise the plan's ``survival`` (worst service per provider) as one row, ``service``
    = ``"worst service"``.
    """
    base = single_period(plan_dict)
    rows = []
    for w in base.get("workloads", []):
        for provider, value in (w.get("survival") or {}).items():
            rows.append({"service": w["name"], "lost_provider": provider, "served_fraction": _served(value)})
    if not rows:
        for provider, value in (base.get("survival") or {}).items():
            rows.append(
                {"service": "worst service", "lost_provider": provider, "served_fraction": _served(value)}
            )
    return rows


def binding_constraints(plan_dict: dict[str, Any]) -> list[str]:
    """The policies the plan meets with no slack, in words."""
    base = single_period(plan_dict)
    policy = plan_dict.get("policy", {})
    out = []
    for row in spend_rows(plan_dict):
        if row["cap"] is not None and row["share"] >= row["cap"] - BIND_TOL:
            out.append(
                f"{row['group']} spend cap: {row['value']} takes {_pct(row['share'])} of spend, "
                f"the most the {_pct(row['cap'])} cap allows"
            )
        cap = row["capacity_cap"]
        if cap is not None and row["peak_share"] >= cap - 1e-4:
            verdict = "more than" if row["peak_share"] > cap + 1e-4 else "the most"
            out.append(
                f"{row['group']} cap: {row['value']} serves {_pct(row['peak_share'])} of "
                f"{row['peak_service']}'s peak, {verdict} the {_pct(cap)} cap allows"
            )
    floor = float(policy.get("survive_provider_loss") or 0.0)
    if floor > 0:
        for row in survival_rows(plan_dict):
            if row["served_fraction"] <= floor + SURVIVAL_BIND_TOL:
                out.append(
                    f"survival: losing {row['lost_provider']} leaves {row['service']} "
                    f"{_pct(row['served_fraction'])} of its peak, at the {_pct(floor)} floor"
                )
    budget = policy.get("budget_usd")
    if budget and float(plan_dict["total_usd"]) >= float(budget) * (1 - BIND_TOL):
        out.append(f"budget: the plan spends the whole ${float(budget):,.0f}")
    spot_cap = policy.get("max_spot_share")
    if spot_cap is not None and spot_cap < 1:
        for w in base.get("workloads", []):
            if w["kind"] != "inference":
                continue
            spot = sum(float(a.get("share") or 0) for a in w["allocations"] if a.get("term") == "spot")
            if spot >= float(spot_cap) - 1e-4:
                out.append(
                    f"spot: {w['name']} has {_pct(spot)} of its peak on spot, the {_pct(spot_cap)} limit"
                )
    return out


def monthly_rows(plan_dict: dict[str, Any]) -> list[dict[str, Any]]:
    """Month x provider: chips held (from each month's purchases); empty for single-period plans."""
    if plan_dict.get("periods") != "monthly":
        return []
    rows = []
    for t, month in enumerate(plan_dict.get("months", [])):
        chips: dict[str, int] = {}
        for p in month.get("purchases", []):
            if p.get("chips"):
                chips[p["provider"]] = chips.get(p["provider"], 0) + int(p["chips"])
        for provider in sorted(chips):
            rows.append({"month": t, "provider": provider, "chips": chips[provider]})
    return rows


def plan_accelerator_rows(plan_dict: dict[str, Any], spec: Spec | None = None) -> list[dict[str, Any]]:
    """$/Mtok per accelerator the plan uses, per service (USD over the tokens its allocations serve)."""
    acc: dict[tuple[str, str], list[float]] = {}
    for row in allocation_rows(plan_dict, spec):
        if row["kind"] == "inference" and row["accelerator"] and row["mtok"]:
            cell = acc.setdefault((row["service"], row["accelerator"]), [0.0, 0.0])
            cell[0] += row["usd"]
            cell[1] += row["mtok"]
    return [
        {
            "service": s,
            "accelerator": a,
            "usd_per_mtok": round(usd / mtok, 4),
            "basis": "plan",
            "in_plan": True,
        }
        for (s, a), (usd, mtok) in sorted(acc.items())
        if mtok > 0
    ]


def headline(plan_dict: dict[str, Any], base: dict[str, dict[str, Any]] | None) -> dict[str, Any]:
    """Monthly cost, savings against the single-provider / single-vendor baselines, binding policies."""
    horizon = float(plan_dict.get("horizon_months") or 1.0)
    total = float(plan_dict["total_usd"])
    out: dict[str, Any] = {
        "total_usd": total,
        "horizon_months": horizon,
        "usd_per_month": round(total / horizon, 2),
        "binding": binding_constraints(plan_dict),
    }
    for group in ("provider", "vendor"):
        b = (base or {}).get(group)
        if b is None or b["best"] is None:
            out[f"single_{group}"] = None
            continue
        out[f"single_{group}"] = {
            "best": b["best"],
            "total_usd": b["total_usd"],
            "usd_per_month": round(b["total_usd"] / horizon, 2),
            "savings_usd_per_month": round((b["total_usd"] - total) / horizon, 2),
        }
    return out


# --- words ------------------------------------------------------------------------------------


def _pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%"
