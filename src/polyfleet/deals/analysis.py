"""``polyfleet deal``'s answer: the recommended deals and what they are worth (``docs/deals.md``).

Pure: takes a validated spec, returns a dictionary (the JSON output); the CLI renders it.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np

from polyfleet.deals.benders import (
    Evaluations,
    PoolEvaluations,
    SaaResult,
    build_solvers,
    cvar,
    solve_saa,
    wait_and_see,
)
from polyfleet.deals.evaluate import (
    Mapper,
    Outcome,
    evaluate_scenarios,
    in_sample,
    local_mapper,
    out_of_sample,
)
from polyfleet.deals.problem import DealProblem, build_problem
from polyfleet.deals.scenarios import Scenarios
from polyfleet.errors import InfeasibleError
from polyfleet.spec import Spec


def describe(pb: DealProblem, first: np.ndarray) -> list[dict[str, Any]]:
    """The signed deals of a first stage, with their sizes."""
    out = []
    for d, t in enumerate(pb.deals):
        if first[2 * d] > 0.5:
            unit = "usd_per_year" if t.kind == "spend" else "instances"
            out.append({"deal": t.name, "kind": t.kind, unit: round(float(first[2 * d + 1]), 4)})
    return out


def label(pb: DealProblem, first: np.ndarray) -> str:
    parts = [
        f"{t.name} ({first[2 * d + 1]:,.0f}{' USD/yr' if t.kind == 'spend' else ' instances'})"
        for d, t in enumerate(pb.deals)
        if first[2 * d] > 0.5
    ]
    return ", ".join(parts) or "no deal"


def _check_base(pb: DealProblem, sc: Scenarios) -> None:
    """Exit 1 when the mean scenario cannot be served without deals, naming the workload."""
    mean = sc.mean()
    out = evaluate_scenarios(pb, mean, [np.zeros(pb.n_first)])
    if out.unserved[0, 0]:
        from polyfleet.deals.benders import ScenarioSolver
        from polyfleet.deals.lp import scenario_lp

        lp = scenario_lp(pb, mean, 0)
        values = ScenarioSolver(lp).solve(np.zeros(pb.n_first))[2]
        n_w = len(pb.workload_names)
        short = values[lp.unserved].reshape(-1, n_w).max(axis=0)
        w = int(np.argmax(short))
        raise InfeasibleError(
            "demand",
            f"workload {pb.workload_names[w]!r} cannot be served in the mean scenario without deals "
            "(capacity, caps or arrivals leave it short)",
        )


def _stats(cost: np.ndarray, prob: np.ndarray, alpha: float) -> dict[str, float]:
    order = np.argsort(cost)
    cum = np.cumsum(prob[order])

    def q(level: float) -> float:
        return float(cost[order][np.searchsorted(cum, level - 1e-12)])

    return {
        "expected_usd": round(float(prob @ cost), 2),
        "p50_usd": round(q(0.5), 2),
        "p95_usd": round(q(0.95), 2),
        "cvar_usd": round(cvar(cost, prob, alpha), 2),
    }


def _se(diff: np.ndarray, prob: np.ndarray, named: bool) -> float:
    """Standard error of a mean difference (0 for named scenarios: exact, not sampled)."""
    if named or len(diff) < 2:
        return 0.0
    return float(np.std(diff, ddof=1) / np.sqrt(len(diff)))


def deal_cvar(spec: Spec) -> tuple[float, float]:
    """The mean-CVaR objective's (alpha, weight): ``risk.cvar_*`` where the spec sets them
    (the issue's spelling), else ``uncertainty.cvar_*``."""
    risk, unc = spec.model.risk, spec.model.uncertainty
    assert unc is not None
    alpha = risk.cvar_alpha if risk.cvar_alpha is not None else unc.cvar_alpha
    weight = risk.cvar_weight if risk.cvar_weight is not None else unc.cvar_weight
    return alpha, weight


def analyse(
    spec: Spec,
    mapper: Mapper = local_mapper,
    *,
    sweep: tuple[str, list[float]] | None = None,
    out_of_sample_count: int | None = None,
    evpi: bool = True,
    workers: int = 1,
) -> dict[str, Any]:
    """Everything ``polyfleet deal`` reports, as a dictionary.

    ``workers`` > 1 holds the in-sample scenario LPs in that many processes
    (``PoolEvaluations``); the out-of-sample scenarios go through ``mapper``.
    """
    start = time.perf_counter()
    unc = spec.model.uncertainty
    pb = build_problem(spec)
    assert unc is not None
    risk = spec.model.risk
    sc = in_sample(pb, unc, risk)
    _check_base(pb, sc)
    alpha, weight = deal_cvar(spec)
    pool = PoolEvaluations(pb, sc, workers) if workers > 1 else None
    try:
        solvers = [] if pool else build_solvers(pb, sc)
        ev = pool or Evaluations(solvers)
        cuts: list = []
        kw = {"alpha": alpha, "weight": weight, "gap": unc.gap}
        rec = solve_saa(pb, ev, sc.probability, cuts=cuts, **kw)
        n_d = len(pb.deals)
        singles: list[SaaResult] = []
        for d in range(n_d):
            allowed = [i == d for i in range(n_d)]
            singles.append(solve_saa(pb, ev, sc.probability, cuts=cuts, allowed=allowed, **kw))
        mean_sc = sc.mean()
        ev_mean = Evaluations(build_solvers(pb, mean_sc))
        mean_value = solve_saa(pb, ev_mean, mean_sc.probability, gap=unc.gap)
        ws = None
        if evpi:
            ws = pool.wait_and_see() if pool else np.array([wait_and_see(pb, s) for s in solvers])
    finally:
        if pool is not None:
            pool.close()
    none = np.zeros(pb.n_first)
    firsts = [rec.first, none, mean_value.first] + [r.first for r in singles]
    oos = out_of_sample(pb, unc, risk, firsts, mapper, out_of_sample_count)
    named = unc.scenarios is not None
    result: dict[str, Any] = {
        "recommended": {
            "deals": describe(pb, rec.first),
            "label": label(pb, rec.first),
            "objective_usd": round(rec.objective, 2),
            "bound_usd": round(rec.bound, 2),
            "gap": round(rec.gap, 6),
            "iterations": rec.iterations,
        },
        "scenarios": {
            "in_sample": sc.size,
            "out_of_sample": len(oos.probability),
            "source": "named" if named else "sampled",
            "periods": len(pb.periods),
            "objective": "mean" if weight == 0 else f"(1-{weight:g}) mean + {weight:g} CVaR_{alpha:g}",
        },
    }
    result["alternatives"] = _alternatives(pb, oos, firsts, singles, alpha, named)
    diff = oos.cost[2] - oos.cost[0]
    result["vss"] = {
        "usd": round(float(oos.probability @ diff), 2),
        "se_usd": round(_se(diff, oos.probability, named), 2),
        "mean_value_deals": label(pb, mean_value.first),
        "note": "E[cost of the first stage sized for the mean scenario] - E[cost of the recommended], "
        + ("on the named scenarios" if named else "out of sample"),
    }
    if ws is not None:
        in_q = rec.q + _first_usd(pb, rec.first)
        result["evpi"] = {
            "usd": round(float(sc.probability @ in_q - sc.probability @ ws), 2),
            "note": "expected cost of the recommended minus the expected wait-and-see cost, in sample",
        }
    result["regret"] = _regret(oos)
    result["unused_worst_5pct"] = _unused(pb, oos, rec.first)
    result["unserved_share"] = round(float(oos.probability @ oos.unserved[0]), 4)
    if sweep is not None:
        result["sweep"] = _sweep(pb, sc, sweep, kw)
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def _first_usd(pb: DealProblem, first: np.ndarray) -> float:
    from polyfleet.deals.benders import first_stage_usd

    return first_stage_usd(pb, first)


def _alternatives(pb, oos: Outcome, firsts, singles, alpha: float, named: bool) -> list[dict[str, Any]]:
    names = ["recommended", "no deal", "sized for the mean scenario"] + [f"{t.name} alone" for t in pb.deals]
    rows = []
    p = oos.probability
    for f, (name, first) in enumerate(zip(names, firsts, strict=True)):
        diff = oos.cost[f] - oos.cost[0]
        deals = label(pb, first)
        if f >= 3 and deals == "no deal":
            deals = "not signed: no size of it pays"
        rows.append(
            {
                "alternative": name,
                "deals": deals,
                **_stats(oos.cost[f], p, alpha),
                "minus_recommended_usd": round(float(p @ diff), 2),
                "se_usd": round(_se(diff, p, named), 2),
            }
        )
    return rows


def _regret(oos: Outcome) -> list[dict[str, Any]]:
    """Per scenario family: E[cost of the recommended - cost of no deal] within it."""
    out = []
    p = oos.probability
    for family, member in oos.families.items():
        w = p * member
        if w.sum() <= 0:
            continue
        delta = float(w @ (oos.cost[0] - oos.cost[1]) / w.sum())
        out.append(
            {
                "family": family,
                "share": round(float(w.sum()), 4),
                "recommended_minus_no_deal_usd": round(delta, 2),
                "in_words": f"saves ${-delta:,.0f} against no deal"
                if delta < 0
                else f"costs ${delta:,.0f} more than no deal",
            }
        )
    return out


def _unused(pb: DealProblem, oos: Outcome, first: np.ndarray) -> list[dict[str, Any]]:
    """Mean unused commitment of each signed deal over the worst 5% of scenarios by cost."""
    cost = oos.cost[0]
    n = max(1, int(np.ceil(0.05 * len(cost))))
    worst = np.argsort(cost)[::-1][:n]
    out = []
    for d, t in enumerate(pb.deals):
        if first[2 * d] < 0.5:
            continue
        row = {"deal": t.name, "unused_usd": round(float(oos.unused_usd[0, worst, d].mean()), 2)}
        if t.kind == "reservation":
            row["idle_instance_months"] = round(float(oos.idle_instance_months[0, worst, d].mean()), 2)
        out.append(row)
    return out


def _sweep(pb: DealProblem, sc: Scenarios, sweep: tuple[str, list[float]], kw: dict) -> dict[str, Any]:
    """Re-solve the SAA at each value of one parameter; name where the decision flips."""
    param, values = sweep
    points = []
    for v in values:
        if param == "discount":
            pb_v, sc_v = pb.with_discount(v), sc
        else:  # growth: extra demand growth per year on every scenario
            t = np.arange(sc.demand.shape[1]) / 12.0
            sc_v = Scenarios(sc.probability, sc.demand * (1 + v) ** t[None], sc.decline, sc.arrival,
                             sc.rps_factor, sc.cap_factor, sc.families)  # fmt: skip
            pb_v = pb
        res = solve_saa(pb_v, Evaluations(build_solvers(pb_v, sc_v)), sc_v.probability, **kw)
        signed = sorted(t.name for d, t in enumerate(pb.deals) if res.first[2 * d] > 0.5)
        points.append({"value": v, "deals": label(pb, res.first), "signed": signed,
                       "objective_usd": round(res.objective, 2)})  # fmt: skip
    flips = [
        f"{param} {a['value']:g} -> {b['value']:g}: {a['deals']} -> {b['deals']}"
        for a, b in itertools.pairwise(points)
        if a["deals"] != b["deals"]
    ]
    return {"parameter": param, "points": points, "flips": flips}
