"""Monthly plans: every month of the horizon in one MILP (``docs/planning-model.md``, Monthly plans).

Each month is the single-period model of that month (``build_milp`` on candidates whose
demand, capacity, prices and training load are the month's), and the months are stacked
block-diagonally.  What ties months together is added as extra columns and rows
(``plan/monthly_links.py``):

* training jobs: one placement for the whole horizon (``y`` equal in every month);
* reserved offers (``reserved-1y``/``-3y``): ``c[o,t]`` instances committed in month t are
  held (and paid) for 12/36 months, so holdings can only fall as commitments expire;
  months past the horizon are charged to the plan (the contract obliges them);
  capacity blocks (``capacity-block``) lock nothing beyond the month they are booked for:
  each month's instances are that month's booking (listed in ``commitments``);
* porting: a binary per (workload, stack) with a one-off cost, needed before any replica
  of the workload runs on that stack;
* the budget, on the whole horizon.

Lock-in caps and survival hold every month (they are rows of each month's block).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from polyfleet.plan.build import Milp, build_milp
from polyfleet.plan.candidates import HOURS_PER_MONTH, Candidates
from polyfleet.plan.diagnose import diagnose
from polyfleet.plan.monthly_links import (
    Links,
    add_budget,
    add_churn,
    add_min_api_share,
    add_porting,
    add_reserved,
    add_training_once,
    allow_idle_reserved,
    no_training_on_reserved,
    reserved_mask,
)
from polyfleet.plan.result import Infeasibility, Plan, read_plan
from polyfleet.plan.solve import Solution, SolveOptions, Status, solve_milp
from polyfleet.plan.terms import BLOCK_TERM
from polyfleet.spec import ApiWorkload, InferenceWorkload, Spec

#: the per-placement arrays of training candidates (``Candidates.tr_*``)
_TRAINING_FIELDS = ("tr_w", "tr_o", "tr_chips", "tr_instances", "tr_hours", "tr_usd", "tr_egress_usd")
#: offer fields a horizon purchase row repeats from its monthly rows
_OFFER_KEYS = ("offer", "provider", "vendor", "accelerator", "region", "term")


@dataclass
class MonthlyMilp:
    """The stacked model and what is needed to read each month back."""

    milp: Milp
    months: list[Candidates]
    blocks: list[Milp]
    offsets: np.ndarray  # first column of each month's block
    commit_offer: np.ndarray  # offer index of each commitment column (month-major)
    commit_month: np.ndarray
    commit_tail_usd: np.ndarray  # USD per committed instance for months past the horizon
    port: list[tuple[int, str, float]]  # (workload, stack, usd) per porting column
    churn_cols: np.ndarray  # column of each churn variable a[o,t] (instances added in month t)
    churn_usd: np.ndarray  # USD per instance added
    first_month: np.ndarray  # first usable month per offer
    growth: np.ndarray  # demand multiplier per (workload, month)


def growth(spec: Spec, cand: Candidates, months: int) -> np.ndarray:
    """Demand multiplier per (workload, month) relative to the spec's stated rate."""
    g = np.ones((len(cand.workloads), months))
    t = np.arange(months)
    for w, wl in enumerate(cand.workloads):
        if isinstance(wl, InferenceWorkload) and wl.requests_per_s_by_month is not None:
            g[w] = np.asarray(wl.requests_per_s_by_month) / wl.requests_per_s
        elif isinstance(wl, InferenceWorkload | ApiWorkload):
            g[w] = (1 + wl.growth_per_month) ** t
    return g


def _month(cand: Candidates, t: int, months: int, g: np.ndarray, first: np.ndarray) -> Candidates:
    """Candidates of month t: that month's demand, capacity, one month of prices, training load."""
    run_months = np.maximum(np.ceil(cand.tr_hours / HOURS_PER_MONTH), 1)
    left = np.maximum(cand.tr_hours - HOURS_PER_MONTH * t, 0)
    # a run longer than the horizon is charged whole: its last month takes the remainder
    in_month = left if t == months - 1 else np.minimum(left, HOURS_PER_MONTH)
    share = np.divide(in_month, cand.tr_hours, out=np.zeros_like(in_month), where=cand.tr_hours > 0)
    return replace(
        cand,
        peak_rps=cand.peak_rps * g[:, t],
        offer_usd_per_instance=cand.offer_usd_per_instance / months,
        offer_avail=np.where(t >= first, cand.offer_avail, 0),
        api_usd=cand.api_usd / months * g[cand.api_w, t],
        api_tpm=cand.api_tpm * g[cand.api_w, t],
        tr_instances=np.where(t < run_months, cand.tr_instances, 0),
        # the run is paid by its hours in each month; moving its data once, in month 0
        tr_usd=(cand.tr_usd - cand.tr_egress_usd) * share + cand.tr_egress_usd * (t == 0),
        tr_egress_usd=cand.tr_egress_usd * (t == 0),
    )


def build_monthly(spec: Spec, cand: Candidates) -> MonthlyMilp:
    """Stack one block per month and add the rows that link months (see the module docstring)."""
    months = int(spec.horizon_months)
    g = growth(spec, cand, months)
    q = spec.policy.plan_arrival_quantile
    first = np.array([o.first_month(q) for o in cand.offers], int)
    policy = spec.policy.model_copy(update={"budget_usd": None})
    month_cands = [_month(cand, t, months, g, first) for t in range(months)]
    blocks = [build_milp(c, policy) for c in month_cands]
    no_training_on_reserved(cand, blocks)
    sizes = np.array([b.n_cols for b in blocks])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_month_cols = int(sizes.sum())

    row_upper = np.concatenate([b.row_upper for b in blocks])
    A = sp.block_diag([b.A for b in blocks], format="csr")
    allow_idle_reserved(cand, blocks, offsets, A, row_upper)

    links = Links(n_month_cols)
    commit = add_reserved(cand, blocks, offsets, months, links)
    add_training_once(blocks, offsets, links)
    port = add_porting(spec, cand, blocks, offsets, links)
    churn_cols, churn_usd = add_churn(spec, cand, blocks, offsets, commit, links)
    add_min_api_share(spec, cand, blocks, offsets, links)
    add_budget(spec, blocks, offsets, commit, port, links)

    n_extra = links.n_cols
    A = sp.vstack([sp.hstack([A, sp.csr_matrix((A.shape[0], n_extra))]), links.matrix()], format="csr")
    cost = np.concatenate([*(b.cost for b in blocks), links.cost])
    milp = Milp(
        cost=cost,
        objective=np.concatenate([*(b.objective for b in blocks), links.cost]),
        lower=np.concatenate([*(b.lower for b in blocks), np.zeros(n_extra)]),
        upper=np.concatenate([*(b.upper for b in blocks), links.upper]),
        integer=np.concatenate([*(b.integer for b in blocks), np.ones(n_extra, bool)]),
        cols={"all": slice(0, len(cost))},
        A=A,
        row_lower=np.concatenate([*(b.row_lower for b in blocks), links.lo]),
        row_upper=np.concatenate([row_upper, links.hi]),
        row_family=np.concatenate([*(b.row_family for b in blocks), np.array(links.family, dtype=object)]),
        row_label=np.concatenate([*(b.row_label for b in blocks), np.array(links.label, dtype=object)]),
    )
    return MonthlyMilp(
        milp,
        month_cands,
        blocks,
        offsets,
        *commit,
        port=port,
        churn_cols=churn_cols,
        churn_usd=churn_usd,
        first_month=first,
        growth=g,
    )


def plan_monthly(spec: Spec, cand: Candidates, options: SolveOptions) -> Plan:
    """Solve every month at once; a ``Plan`` whose ``months`` hold each month's plan."""
    start = time.perf_counter()
    model = build_monthly(spec, cand)
    build_seconds = time.perf_counter() - start
    sol = solve_milp(model.milp, replace(options, rounding_start_above=math.inf))
    months = int(spec.horizon_months)
    if sol.status in (Status.INFEASIBLE, Status.UNKNOWN):
        info = (
            Infeasibility("time-limit", "", f"no plan within the time limit ({options.time_limit_s:g} s)")
            if sol.status == Status.UNKNOWN
            else _diagnose(spec, model, options)
        )
        return Plan(status=sol.status, horizon_months=months, solve_seconds=sol.seconds,
                    build_seconds=build_seconds, infeasibility=info)  # fmt: skip
    month_plans = []
    for t, (c, b) in enumerate(zip(model.months, model.blocks, strict=True)):
        values = sol.values[model.offsets[t] : model.offsets[t] + b.n_cols]
        month_sol = Solution(sol.status, values, float("nan"), sol.gap, 0.0)
        month_plan = read_plan(c, b, month_sol, spec.policy, 1.0).to_dict()
        month_plan.pop("commitments", None)  # the horizon's commitments are listed once, below
        for w, workload in enumerate(month_plan["workloads"]):  # the month's demand, not the base
            demand = workload["demand"]
            for key in ("requests_per_s", "mtok_in_per_month", "mtok_out_per_month"):
                if key in demand:
                    demand[key] = round(demand[key] * float(model.growth[w, t]), 6)
        month_plans.append(month_plan)
    first = int(model.offsets[-1] + model.blocks[-1].n_cols)  # the first link column
    n_c, n_p = len(model.commit_offer), len(model.port)
    commits = np.rint(sol.values[first : first + n_c]).astype(int)
    ported = np.rint(sol.values[first + n_c : first + n_c + n_p]).astype(int)
    moved = np.rint(sol.values[model.churn_cols]).astype(int) if len(model.churn_cols) else np.zeros(0, int)
    return _assemble(spec, model, sol, month_plans, commits, ported, build_seconds, moved)


def _diagnose(spec: Spec, model: MonthlyMilp, options: SolveOptions) -> Infeasibility:
    """The first month infeasible on its own, else the links between months."""
    policy = spec.policy.model_copy(update={"budget_usd": None})
    for t, (c, b) in enumerate(zip(model.months, model.blocks, strict=True)):
        if solve_milp(b, options).status == Status.INFEASIBLE:
            from polyfleet.plan.build import FAMILIES

            # the month's block closes training on reserved offers by bounds; diagnose
            # rebuilds it from candidates, so drop those placements there too (else every
            # family solves and the message blamed the solver)
            keep = ~reserved_mask(c)[c.tr_o] if len(c.tr_o) else np.zeros(0, bool)
            c = replace(c, **{f: getattr(c, f)[keep] for f in _TRAINING_FIELDS})
            info = diagnose(c, policy, FAMILIES, options)
            return Infeasibility(info.family, info.subject, f"month {t}: {info.message}")
    names = ", ".join(w.name for w in model.months[0].workloads)
    return Infeasibility(
        "months",
        names,
        f"every month can be planned alone, but not all together for workloads {names}: reserved "
        "commitments, one placement per training job, porting or the budget over the whole "
        "horizon cannot all be met",
    )


def _assemble(
    spec: Spec,
    model: MonthlyMilp,
    sol: Solution,
    month_plans: list[dict[str, Any]],
    commits: np.ndarray,
    ported: np.ndarray,
    build_seconds: float,
    moved: np.ndarray,
) -> Plan:
    """Horizon totals, per-offer instances by month, and the migration schedule."""
    months = len(month_plans)
    cand = model.months[0]
    tail = float(commits @ model.commit_tail_usd)
    port_usd = float(sum(usd for (_, _, usd), on in zip(model.port, ported, strict=True) if on))
    # moving capacity: instances added after month 0 (on-demand/spot) and later commitments
    later = model.commit_month >= 1
    move_rate = np.array(
        [spec.policy.move_hours_per_chip * o.chips_per_instance * o.usd_per_chip_hour for o in cand.offers]
    )
    move_usd = float(moved @ model.churn_usd) + float(commits[later] @ move_rate[model.commit_offer[later]])
    total = sum(p["total_usd"] for p in month_plans) + tail + port_usd + move_usd
    by_offer: dict[str, dict[str, Any]] = {}
    for t, p in enumerate(month_plans):
        for purchase in p["purchases"]:
            row = by_offer.setdefault(
                purchase["offer"],
                {k: purchase[k] for k in _OFFER_KEYS if k in purchase}
                | {"instances_by_month": [0] * months, "usd": 0.0},
            )
            row["instances_by_month"][t] = purchase.get("instances", 0)
            row["usd"] = round(row["usd"] + purchase["usd"], 2)
    commitments = [
        {"offer": cand.offers[o].id, "month": int(t), "instances": int(n),
         "term": cand.offers[o].term, "usd_after_horizon": round(float(n * tail_usd), 2)}
        for o, t, n, tail_usd in zip(model.commit_offer, model.commit_month, commits,
                                     model.commit_tail_usd, strict=True) if n > 0
    ]  # fmt: skip
    # capacity blocks: each month's instances are booked for that month, no lock beyond it
    commitments += [
        {"offer": row["offer"], "month": t, "instances": int(n), "term": BLOCK_TERM, "usd_after_horizon": 0.0}
        for row in by_offer.values() if row.get("term") == BLOCK_TERM
        for t, n in enumerate(row["instances_by_month"]) if n > 0
    ]  # fmt: skip
    for c in commitments:  # months past the horizon are the reserved offer's spend too
        row = by_offer.get(c["offer"])
        if row is not None:
            row["usd"] = round(row["usd"] + c["usd_after_horizon"], 2)
    porting = [
        {"workload": cand.workloads[w].name, "stack": stack, "usd": usd}
        for (w, stack, usd), on in zip(model.port, ported, strict=True)
        if on
    ]
    spend: dict[str, float] = {}
    for row in by_offer.values():
        spend[row["provider"]] = spend.get(row["provider"], 0.0) + row["usd"]
    provider_total = sum(spend.values())
    purchases = list(by_offer.values()) + [
        {"offer": f"port {p['workload']} to {p['stack']}", "provider": "", "vendor": "", "accelerator": None,
         "term": "one-off", "instances_by_month": [], "usd": p["usd"]}
        for p in porting
    ]  # fmt: skip
    if move_usd > 0:  # moving capacity between months (docs: Monthly plans), paid to no provider
        purchases.append({"offer": "moves", "provider": "", "vendor": "", "accelerator": None,
                          "term": "one-off", "instances_by_month": [],
                          "usd": round(move_usd, 2)})  # fmt: skip
    result = Plan(
        status=sol.status,
        horizon_months=months,
        total_usd=total,
        solve_seconds=sol.seconds,
        build_seconds=build_seconds,
        gap=sol.gap,
        limit=sol.limit,
        purchases=purchases,
        workloads=[],
        shares={
            "provider": {k: round(v / provider_total, 6) for k, v in sorted(spend.items())}
            if provider_total
            else {}
        },
        survival={},
        policy=month_plans[0]["policy"],
    )
    result.monthly = {
        "months": month_plans,
        "schedule": schedule(month_plans),
        "commitments": commitments,
        "porting": [
            {"workload": cand.workloads[w].name, "stack": stack, "usd": usd}
            for (w, stack, usd), on in zip(model.port, ported, strict=True)
            if on
        ],
        "commitment_usd_after_horizon": round(tail, 2),
        "move_usd": round(move_usd, 2),
        "first_usable_month": {cand.offers[o].id: int(m) for o, m in enumerate(model.first_month) if m > 0},
    }
    return result


def schedule(month_plans: list[dict[str, Any]]) -> list[str]:
    """What changes month to month, per workload: the migration story in words."""
    lines: list[str] = []
    before: dict[str, dict[str, int | float]] = {}
    for t, p in enumerate(month_plans):
        for w in p["workloads"]:
            now = {a["offer"]: (a["replicas"] or round(a["share"], 3)) for a in w["allocations"]}
            now = {offer: n for offer, n in now.items() if n}  # shares that round to 0 are noise
            old = before.get(w["name"], {})
            if now != old:
                added = [f"+{o} ({n})" for o, n in now.items() if o not in old]
                dropped = [f"-{o}" for o in old if o not in now]
                changed = [f"{o} {old[o]}->{n}" for o, n in now.items() if o in old and old[o] != n]
                lines.append(f"month {t}: {w['name']}: " + ", ".join(added + changed + dropped))
            before[w["name"]] = now
    return lines
