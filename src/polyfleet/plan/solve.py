"""Solve a built ``Milp`` with HiGHS and read the column values back.

Small models go straight to HiGHS's branch and bound.  Models over
``SolveOptions.rounding_start_above`` integer columns first get a plan from the LP
relaxation (``_lp_plan``: the LP by column generation, a dive, the greedy plan of
plan/greedy.py when the dive's is poor or the LP has no point in time, HiGHS on the model
restricted to the LP's columns when none of those finds a plan, then a
large-neighbourhood search; the older rounding, plan/rounding.py, when none finds one);
when too little time
is left for HiGHS's root on the full model, that plan is the answer, with its gap to the
LP bound (docs/planning-model.md, "Solving within the time limit").
"""

from __future__ import annotations

import time
from dataclasses import replace

import highspy
import numpy as np

from polyfleet.plan.build import Milp
from polyfleet.plan.colgen import initial_columns, price_in, run_until
from polyfleet.plan.dive import (
    derive,
    dive,
    feasible,
    first_per_group,
    keep_columns,
    keep_placements,
    shave,
    subset,
)
from polyfleet.plan.greedy import greedy_plan
from polyfleet.plan.highs import Solution, SolveOptions, Status, build_highs, interrupt_at, run_highs
from polyfleet.plan.lns import improve
from polyfleet.plan.rounding import rounded_start

__all__ = ["Solution", "SolveOptions", "Status", "solve_milp"]


# Shares of the time limit, counted from the start of the solve, that each step of
# ``_lp_plan`` may run to: the LP (column generation, plan/colgen.py), then the dive,
# then (only when the dive found no plan) HiGHS on the restricted MILP, then the
# large-neighbourhood search (plan/lns.py).
LP_SHARE = 0.4
DIVE_SHARE = 0.6
RESTRICTED_SHARE = 0.75
LNS_SHARE = 0.9
#: the greedy plan (plan/greedy.py) is also built when the dive's is this far above the LP bound
GREEDY_ABOVE = 1.2
#: seconds one neighbourhood's MILP may take: a twentieth of the limit, within these
LNS_ROUND_S = (0.5, 1.0)


def _lp_plan(milp: Milp, options: SolveOptions, start: float) -> tuple[np.ndarray | None, float, str, float]:
    """(a plan from the greedy and the LP relaxation or None, the LP bound, its method, the LP's seconds).

    The LP, solved by column generation (plan/colgen.py) until ``LP_SHARE`` of the limit,
    gives the bound (nan when
    columns still priced in at that time) and picks, per inference workload, the replica
    columns it uses plus the one with the lowest price per request/s at each provider and
    each vendor (plan/dive.py ``keep_columns``), and per training job its placements plus
    the cheapest (``keep_placements``).  The LP dive (round up, re-solve, shave) runs on
    the kept columns; when it finds no plan, or one over ``GREEDY_ABOVE`` times the LP
    bound, the greedy plan (plan/greedy.py: a fraction of a second, no LP) is built too
    and the cheaper kept; when no LP point comes in time, the greedy plan alone, so a
    limit the LP uses up still ends with a plan.  Only when there is no plan at all does
    HiGHS solve the MILP restricted to the kept columns, until
    ``RESTRICTED_SHARE`` of the limit (presolve drops the other columns, so its root is
    fast: 0.5 s on the 300-workload portfolio instead of minutes); then the
    large-neighbourhood search (``_improve``) improves the plan until ``LNS_SHARE``.
    Any plan returned satisfies every row of the full model (checked); only the LP bound
    holds for the full model.
    Needs the single-period layout (one provider code per offer, one offer per replica
    column): otherwise (None, nan, "", 0.0).
    """
    n_x = milp.cols["x"].stop - milp.cols["x"].start
    n_u = milp.cols["u"].stop - milp.cols["u"].start
    if len(milp.x_offer) != n_x or len(milp.u_provider) != n_u or n_x == 0:
        return None, float("nan"), "", 0.0
    limit = options.time_limit_s
    lp_began = time.perf_counter()
    lp = _colgen_lp(milp, options, start + LP_SHARE * limit)
    lp_seconds = time.perf_counter() - lp_began
    if lp is None:  # no LP point in time: the greedy plan, improved around its own columns
        best = greedy_plan(milp)
        if best is None:
            return None, float("nan"), "", lp_seconds
        zero = np.zeros(milp.n_cols)
        keep = keep_columns(milp, zero, milp.u_provider)
        keep |= first_per_group(milp.x_workload, _usd_per_rps(milp), 3)
        best, method = _improve(milp, best, keep, keep_placements(milp, zero), zero, options,
                                start + LNS_SHARE * limit, "greedy")  # fmt: skip
        return best, float("nan"), method, lp_seconds
    lp_values, bound, active = lp
    keep = keep_columns(milp, lp_values, milp.u_provider)
    keep_y = keep_placements(milp, lp_values)
    # the dive, on the kept columns only (each round re-solves that LP: on the portfolio
    # 0.7 s for ~100 rounds there, 3.9 s over every column the LP priced in)
    now = time.perf_counter()
    deadline = min(start + DIVE_SHARE * limit, now + max(1.5 * (now - start), 0.25 * limit))
    best = _sub_dive(milp, options, active, keep, deadline)
    method = "dive" if best is not None else ""
    # the greedy plan, when the dive has none or one far above the LP bound (on the
    # portfolio 2.1x, where the greedy's is 1.5x; on 100 x 1,000 the dive's is 1.14x and
    # the greedy's 1.23x: its 0.4 s go to the search instead)
    if best is None or not np.isfinite(bound) or milp.objective @ best > GREEDY_ABOVE * bound:
        greedy = greedy_plan(milp)
        if greedy is not None and (best is None or milp.objective @ greedy < milp.objective @ best):
            best, method = greedy, "greedy"
    upper = milp.upper.copy()
    upper[milp.cols["x"].start + np.flatnonzero(~keep)] = 0.0
    upper[milp.cols["y"].start + np.flatnonzero(~keep_y)] = 0.0
    left = start + RESTRICTED_SHARE * limit - time.perf_counter()
    if best is None and left > 0:
        restricted = build_highs(milp, replace(options, time_limit_s=left), milp.integer, upper)
        interrupt_at(restricted, start + RESTRICTED_SHARE * limit)
        sol = run_highs(restricted, milp, True)
        if sol.status in (Status.OPTIMAL, Status.FEASIBLE) and feasible(milp, sol.values):
            best, method = sol.values, "restricted-milp"
    if best is not None:
        lns_deadline = start + LNS_SHARE * limit
        best, method = _improve(milp, best, keep, keep_y, lp_values, options, lns_deadline, method)
    return best, bound, method if best is not None else "", lp_seconds


def _usd_per_rps(milp: Milp) -> np.ndarray:
    """Instance price of each replica column's chips per request/s it serves."""
    us = milp.cols["u"]
    per_chip = milp.cost[us] / np.maximum(milp.u_cpi, 1)
    return milp.x_chips * per_chip[milp.x_offer] / np.maximum(milp.x_rps, 1e-12)


def _colgen_lp(
    milp: Milp, options: SolveOptions, deadline: float
) -> tuple[np.ndarray, float, np.ndarray] | None:
    """(LP point, LP bound or nan, columns priced in) by column generation until ``deadline``.

    The bound is nan when columns still priced in at the deadline (the point is still
    feasible for the full LP); None when no LP point was found in time.
    """
    relaxed = np.zeros_like(milp.integer)
    active = initial_columns(milp)
    left = max(deadline - time.perf_counter(), 0.01)
    h = build_highs(milp, replace(options, time_limit_s=left), relaxed, np.where(active, milp.upper, 0.0))
    priced = price_in(h, milp, active, deadline)
    if priced is None:  # the first columns cannot carry the LP (a tight capacity row): all
        left = max(deadline - time.perf_counter(), 0.01)
        h = build_highs(milp, replace(options, time_limit_s=left), relaxed, milp.upper)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        priced = np.asarray(h.getSolution().col_value), float(h.getInfo().objective_function_value), True
        active[:] = True
    lp_values, bound, converged = priced
    return lp_values, bound if converged else float("nan"), active


def _improve(
    milp: Milp,
    plan: np.ndarray,
    keep: np.ndarray,
    keep_y: np.ndarray,
    lp_values: np.ndarray,
    options: SolveOptions,
    deadline: float,
    method: str,
) -> tuple[np.ndarray, str]:
    """``plan`` improved by the large-neighbourhood search (plan/lns.py) until ``deadline``.

    The search runs on the sub-model of the kept replica columns (``keep`` and the plan's
    own), the kept placements (``keep_y`` and the plan's own) and every other column, so
    each round's HiGHS model is a few thousand columns, not the whole model's hundreds of
    thousands (on the portfolio, 26,656 placements made each round ~2x slower).
    """
    xs = milp.cols["x"]
    mask = np.ones(milp.n_cols, bool)
    mask[xs] = keep | (plan[xs] > 0.5)
    ys = milp.cols["y"]
    mask[ys] = keep_y | (plan[ys] > 0.5)
    cols = np.flatnonzero(mask)
    sub = subset(milp, cols)
    round_s = min(max(options.time_limit_s / 20, LNS_ROUND_S[0]), LNS_ROUND_S[1])
    every = np.ones
    better, _rounds = improve(
        sub, plan[cols], every(sub.cols["x"].stop - sub.cols["x"].start, bool),
        every(sub.cols["y"].stop - sub.cols["y"].start, bool), lp_values[cols],
        deadline,
        lambda model, upper, seconds, incumbent: _solve_sub(model, upper, seconds, incumbent, options),
        round_seconds=round_s,
    )  # fmt: skip
    full = np.zeros(milp.n_cols)
    full[cols] = better
    full = derive(milp, full)
    if milp.objective @ full < milp.objective @ plan and feasible(milp, full):
        return full, "lns"
    return plan, method


def _solve_sub(
    sub: Milp, upper: np.ndarray, seconds: float, incumbent: np.ndarray, options: SolveOptions
) -> tuple[np.ndarray | None, bool]:
    """HiGHS on one neighbourhood's model (``sub.lower``, ``upper``), started at ``incumbent``."""
    h = build_highs(sub, replace(options, time_limit_s=max(seconds, 0.01)), sub.integer, upper)
    start = highspy.HighsSolution()
    start.col_value = list(incumbent)
    start.value_valid = True
    h.setSolution(start)
    interrupt_at(h, time.perf_counter() + seconds)
    h.run()
    if h.getInfo().primal_solution_status != 2:  # kSolutionStatusFeasible
        return None, False
    optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return np.asarray(h.getSolution().col_value), optimal


def _sub_dive(
    milp: Milp, options: SolveOptions, active: np.ndarray, keep: np.ndarray, deadline: float
) -> np.ndarray | None:
    """A plan of ``milp`` by diving on the sub-model of the ``active`` columns, replica
    columns only where ``keep``, then shaving (on the sub-model: each trial checks its rows)."""
    mask = active.copy()
    mask[milp.cols["x"]] &= keep
    cols = np.flatnonzero(mask)
    sub = subset(milp, cols)
    h = build_highs(sub, replace(options, time_limit_s=max(deadline - time.perf_counter(), 0.01)),
               np.zeros_like(sub.integer), sub.upper)  # fmt: skip
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    lp_values = np.asarray(h.getSolution().col_value)
    run_until(h, deadline)
    v = dive(h, sub, lp_values, np.ones(sub.cols["x"].stop - sub.cols["x"].start, bool), deadline)
    if v is None:
        return None
    v[sub.integer] = np.round(v[sub.integer])
    v = derive(sub, v)  # definitions (served, spend) from the rounded columns
    if not feasible(sub, v):
        return None
    v = shave(sub, v, deadline)
    plan = np.zeros(milp.n_cols)
    plan[cols] = v
    plan = derive(milp, plan)
    return plan if feasible(milp, plan) else None


#: HiGHS's root LP inside its MIP solver took 12-20x the same LP solved alone on the
#: scale benchmarks (and cannot be interrupted); with less time left than this many LP
#: solves, the rounded plan is returned rather than overrunning the time limit
ROOT_LP_FACTOR = 20.0
#: the same, counted in the LP by column generation's seconds (2.5-5x faster than the full
#: LP on the scale benchmarks): HiGHS runs on the full model after the LP plan path only
#: when more than this many of them are left
ROOT_FROM_COLGEN = 5 * ROOT_LP_FACTOR


def _lp_seconds(milp: Milp, options: SolveOptions) -> tuple[float, float]:
    """(objective, seconds) of the plain LP relaxation: a lower bound on every plan."""
    lp = run_highs(build_highs(milp, options, np.zeros_like(milp.integer), milp.upper), milp, False)
    return (lp.objective if lp.status == Status.OPTIMAL else float("nan")), lp.seconds


def solve_milp(milp: Milp, options: SolveOptions | None = None) -> Solution:
    """Solve ``milp`` with HiGHS to ``options.mip_rel_gap`` within ``options.time_limit_s``.

    Models over ``options.rounding_start_above`` integer columns first get a plan from the
    LP (``_lp_plan``, else ``rounded_start``).  When too little time is left for HiGHS's
    root on the full model (``ROOT_FROM_COLGEN`` times the LP by column generation took,
    or ``ROOT_LP_FACTOR`` times the rounding), the plan is returned as ``feasible`` with
    its gap to the LP bound and its ``method`` (``unknown`` without one), not an overrun;
    otherwise HiGHS runs for the time left and the better plan is kept.
    """
    options = options or SolveOptions()
    start = time.perf_counter()
    given, lp_bound, method = None, float("nan"), "highs"
    if int(milp.integer.sum()) > options.rounding_start_above:
        lp_start = time.perf_counter()
        given, lp_bound, method, lp_seconds = _lp_plan(milp, options, start)
        if given is None and time.perf_counter() - lp_start < options.time_limit_s / 2:
            given, method = rounded_start(milp, options), "rounding"  # no plan, not for want of time
        rounds = time.perf_counter() - lp_start
        left = options.time_limit_s - (time.perf_counter() - start)
        # HiGHS's root LP on the full model, which cannot be interrupted, takes 12-20x the
        # full LP; the LP by column generation is 2.5-5x faster than that (the rounding,
        # when it ran alone, solves the full LP)
        root_s = ROOT_FROM_COLGEN * lp_seconds if lp_seconds > 0 else ROOT_LP_FACTOR * rounds
        if given is not None and left < root_s:
            # the LP by column generation ran out of its share: the full LP, slower still,
            # would only overrun the limit, so the bound stays unknown (gap null)
            left = 0.0 if lp_seconds > 0 else left
            return _rounded_only(milp, given, options, start, left, lp_bound, method)
        if given is None and left < root_s:
            return Solution(Status.UNKNOWN, np.zeros(milp.n_cols), float("nan"), float("nan"),
                            time.perf_counter() - start, limit="time")  # fmt: skip
    left = max(options.time_limit_s - (time.perf_counter() - start), 0.01)
    h = build_highs(milp, replace(options, time_limit_s=left), milp.integer, milp.upper)
    interrupt_at(h, start + options.time_limit_s)
    # The rounded plan is not handed to HiGHS as a start: with an incumbent, HiGHS's root
    # ran more than twice past its time limit on the scale benchmark (without, it stops
    # on time); the better of the two plans is kept instead.
    sol = run_highs(h, milp, bool(milp.integer.any()))
    if given is not None and sol.status != Status.OPTIMAL:
        objective = float(milp.objective @ given)
        if sol.status == Status.UNKNOWN or objective < sol.objective:
            bound = float(h.getInfo().mip_dual_bound)
            if not np.isfinite(bound):  # HiGHS stopped before its root: the LP's, when known
                bound = lp_bound
            known = np.isfinite(bound) and objective > 0
            gap = max(objective - bound, 0.0) / objective if known else float("nan")
            sol = Solution(Status.FEASIBLE, given, objective, gap, sol.seconds, limit="time", method=method)
    sol.seconds = time.perf_counter() - start
    sol.rounded_start = given is not None
    return sol


def _rounded_only(
    milp: Milp,
    v: np.ndarray,
    options: SolveOptions,
    start: float,
    left: float,
    bound: float = float("nan"),
    method: str = "rounding",
) -> Solution:
    """The heuristic plan as the answer, with its gap to the LP bound (solved here when not known)."""
    objective = float(milp.objective @ v)
    gap = float("nan")
    if not np.isfinite(bound) and left > 0:
        bound, _ = _lp_seconds(milp, replace(options, time_limit_s=left))
    if np.isfinite(bound) and objective > 0:
        gap = max(objective - bound, 0.0) / objective
    sol = Solution(
        Status.FEASIBLE, v, objective, gap, time.perf_counter() - start, limit="time", method=method
    )
    sol.rounded_start = True
    return sol
