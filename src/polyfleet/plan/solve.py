"""Solve a built ``Milp`` with HiGHS and read the column values back.

Small models go straight to HiGHS's branch and bound.  Models over
``SolveOptions.rounding_start_above`` integer columns first get a plan from the LP
relaxation (``_lp_plan``: the LP by column generation, then a dive and HiGHS on the model
restricted to the LP's columns; the older rounding when neither finds one); when too
little time is left for HiGHS's root on the full model, that plan is the answer, with
its gap to the LP bound (docs/planning-model.md, "Solving within the time limit").
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import highspy
import numpy as np
import scipy.sparse as sp

from polyfleet.plan.build import Milp
from polyfleet.plan.colgen import initial_columns, price_in, run_until
from polyfleet.plan.dive import derive, dive, keep_columns, keep_placements, shave, subset, violations
from polyfleet.plan.lns import improve


class Status(StrEnum):
    """How a solve ended.

    ``feasible``: a limit stopped HiGHS with a plan but before proving optimality.
    ``unknown``: a limit stopped it before any plan was found (not a proof of infeasibility).
    """

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class SolveOptions:
    """Solver settings.

    mip_rel_gap: relative MIP gap at which HiGHS stops.  time_limit_s: wall-clock limit
    for the whole solve.  threads: HiGHS threads (1 keeps runs repeatable).
    rounding_start_above: integer columns above which the plan first comes from the LP
    (``_lp_plan``; the name is older than the method).
    """

    mip_rel_gap: float = 1e-6
    time_limit_s: float = 60.0
    threads: int = 1
    rounding_start_above: int = 2000


@dataclass
class Solution:
    """Column values and what the solver said about them."""

    status: Status
    values: np.ndarray
    objective: float
    gap: float
    seconds: float
    limit: str = ""  # "time" when status is FEASIBLE or UNKNOWN because of the time limit
    rounded_start: bool = False  # a rounded LP plan was computed (kept when HiGHS found no better)
    #: where the plan came from: "highs" (branch and bound on the full model), or for large
    #: models "restricted-milp", "dive" or "rounding" (see docs/planning-model.md)
    method: str = "highs"


def _new_highs() -> highspy.Highs:
    """A ``Highs`` object whose construction prints nothing.

    HiGHS 1.16 writes a copyright banner to file descriptor 1 (from C++, once per process)
    when the first ``Highs`` is built, before ``output_flag`` can be set; that would corrupt
    ``polyfleet plan --format json`` on stdout, so fd 1 points at /dev/null meanwhile.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    h.setOptionValue("output_flag", False)
    return h


def _highs(milp: Milp, options: SolveOptions, integer: np.ndarray, upper: np.ndarray) -> highspy.Highs:
    h = _new_highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", float(options.mip_rel_gap))
    h.setOptionValue("time_limit", max(float(options.time_limit_s), 0.01))
    h.setOptionValue("threads", int(options.threads))
    h.setOptionValue("random_seed", 0)
    lp = highspy.HighsLp()
    n_rows, n_cols = milp.A.shape
    lp.num_col_ = n_cols
    lp.num_row_ = n_rows
    lp.col_cost_ = milp.objective
    lp.col_lower_ = milp.lower
    lp.col_upper_ = np.where(np.isinf(upper), highspy.kHighsInf, upper)
    lp.row_lower_ = np.where(np.isinf(milp.row_lower), -highspy.kHighsInf, milp.row_lower)
    lp.row_upper_ = np.where(np.isinf(milp.row_upper), highspy.kHighsInf, milp.row_upper)
    csc = milp.A.tocsc()
    csc.sort_indices()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr
    lp.a_matrix_.index_ = csc.indices
    lp.a_matrix_.value_ = csc.data
    if integer.any():
        kinds = np.array([highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger], dtype=object)
        lp.integrality_ = list(kinds[integer.astype(int)])
    h.passModel(lp)
    return h


def _run(h: highspy.Highs, milp: Milp, is_mip: bool) -> Solution:
    start = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - start
    model_status = h.getModelStatus()
    info = h.getInfo()
    S = highspy.HighsModelStatus
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    n_cols = milp.A.shape[1]
    values = np.asarray(h.getSolution().col_value) if has_solution else np.zeros(n_cols)
    gap = float(info.mip_gap) if is_mip and has_solution else 0.0
    if model_status == S.kOptimal:
        return Solution(Status.OPTIMAL, values, float(info.objective_function_value), gap, seconds)
    if model_status in (S.kTimeLimit, S.kIterationLimit, S.kSolutionLimit, S.kInterrupt):
        if has_solution:
            objective = float(info.objective_function_value)
            return Solution(Status.FEASIBLE, values, objective, gap, seconds, limit="time")
        return Solution(Status.UNKNOWN, values, float("nan"), float("nan"), seconds, limit="time")
    return Solution(Status.INFEASIBLE, values, float("nan"), float("nan"), seconds)


#: (row family, factor) applied to the LP before rounding: capacity rows keep 10% spare
#: instances, share caps and budget 3% headroom
_TIGHTEN = {"capacity": 0.9, "lock-in": 0.97, "budget": 0.97}


def _tightened(milp: Milp, extra: np.ndarray, cap_scale: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Row matrix and upper bounds with capacity, caps and budget tightened (see _TIGHTEN).

    ``extra`` is subtracted from the capacity rows' bounds: instances a previous rounding
    overshot at that offer, so the next LP leaves room for them.  ``cap_scale`` further
    scales each lock-in row's cap (1 until a rounding broke that cap).
    """
    A = milp.A.tocsr(copy=True)
    upper = milp.row_upper.copy()
    cap_rows = milp.row_family == "capacity"
    avail = upper[cap_rows]
    # small offers keep every instance (10% of a few would close them); overshoot repairs them
    tight = np.where(avail <= 10, avail, np.floor(avail * _TIGHTEN["capacity"]))
    upper[cap_rows] = np.maximum(tight - extra[cap_rows], 0.0)
    budget_rows = milp.row_family == "budget"
    upper[budget_rows] *= _TIGHTEN["budget"]
    t_col = milp.cols["T"].start
    for row in np.flatnonzero(milp.row_family == "lock-in"):  # few rows: one per provider/vendor
        lo, hi = A.indptr[row], A.indptr[row + 1]
        at_t = lo + np.flatnonzero(A.indices[lo:hi] == t_col)
        A.data[at_t] *= _TIGHTEN["lock-in"] * cap_scale[row]
    return A, upper


def _ceil_replicas(milp: Milp, x_lp: np.ndarray) -> np.ndarray:
    """Every fractional replica count rounded up (keeps every >= row of the LP)."""
    return np.ceil(x_lp - 1e-7)


def _share_matrix(milp: Milp, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lock-in rows' activity at ``v`` and their change per instance added at each offer.

    A row reads ``spend[group] - cap x T <= 0``; one more instance of offer o moves it by
    ``cost_o x (member - cap)``.
    """
    rows = np.flatnonzero(milp.row_family == "lock-in")
    us, t_col = milp.cols["u"], milp.cols["T"].start
    if not len(rows):
        return np.zeros(0), np.zeros((0, us.stop - us.start))
    lock = milp.A[rows]
    per_instance = lock[:, us.start : us.stop].toarray()
    t_coef = lock[:, t_col].toarray().ravel()
    return lock @ v, per_instance + t_coef[:, None] * milp.cost[us][None, :]


def _floor_and_fill(
    milp: Milp, x_lp: np.ndarray, s_lp: np.ndarray, room: np.ndarray, v: np.ndarray | None = None
) -> np.ndarray:
    """Replicas rounded down, then each short workload topped up at the least marginal cost.

    A replica added where a rented instance still has free chips costs nothing more; one
    that needs a new instance costs that instance.  Candidates are ranked by that marginal
    cost per request/s (ties: the offer's price per chip), within the offers' ``room``
    (instances they may still rent) and, given the rest of the plan ``v``, without pushing a
    provider or vendor past its share cap when another candidate would not.  Far cheaper
    than rounding every fractional pair up when workloads need only a few replicas each;
    the loop runs per added replica, over one workload's candidates at a time.
    """
    x = np.floor(x_lp + 1e-7)
    n_w = len(milp.peak_rps)
    served = np.bincount(milp.x_workload, milp.x_rps * x, minlength=n_w)
    api = np.bincount(milp.s_workload, s_lp, minlength=n_w) * milp.peak_rps if len(s_lp) else 0.0
    need = np.maximum(milp.peak_rps - served - api, 0.0)
    chips = np.bincount(milp.x_offer, milp.x_chips * x, minlength=len(room)).astype(float)
    inst_usd = milp.cost[milp.cols["u"]]
    per_chip = inst_usd / milp.u_cpi
    act, per_offer = np.zeros(0), np.zeros((0, len(room)))
    if v is not None:
        v = v.copy()
        v[milp.cols["x"]] = x
        v[milp.cols["u"]] = np.ceil(chips / milp.u_cpi - 1e-9)
        v[milp.cols["T"]] = milp.cost @ v
        act, per_offer = _share_matrix(milp, v)
    for w in np.flatnonzero(need > 1e-9)[np.argsort(-need[need > 1e-9], kind="stable")]:
        ks = np.flatnonzero(milp.x_workload == w)
        o, t, r = milp.x_offer[ks], milp.x_chips[ks], milp.x_rps[ks]
        while need[w] > 1e-9:
            now = np.ceil(chips[o] / milp.u_cpi[o] - 1e-9)
            after = np.ceil((chips[o] + t) / milp.u_cpi[o] - 1e-9)
            score = ((after - now) * inst_usd[o] + 1e-3 * per_chip[o] * t) / r
            score[after > room[o]] = np.inf
            if len(act):
                moved = act[:, None] + per_offer[:, o] * (after - now)[None, :]
                breaks = (moved > np.maximum(act, 0.0)[:, None] + 1e-6).any(axis=0)
                if not np.all(breaks | ~np.isfinite(score)):
                    score[breaks] = np.inf  # keep caps while some candidate can
            best = int(np.argmin(score))
            if not np.isfinite(score[best]):
                break  # no room anywhere: the row check will reject this rounding
            if len(act):
                act += per_offer[:, o[best]] * (after[best] - now[best])
            x[ks[best]] += 1
            chips[o[best]] += t[best]
            need[w] -= r[best]
    return x


def _round(milp: Milp, lp_values: np.ndarray, replicas) -> np.ndarray:
    """Replicas by ``replicas``, then the fewest instances that hold them, one place per job."""
    v = lp_values.copy()
    xs, ys = milp.cols["x"], milp.cols["y"]
    y = np.zeros(ys.stop - ys.start)
    for job in np.unique(milp.y_job):  # one job at a time: few training jobs
        k = np.flatnonzero(milp.y_job == job)
        y[k[np.argmax(v[ys][k])]] = 1.0
    v[ys] = y
    if replicas is _ceil_replicas:
        x = _ceil_replicas(milp, v[xs])
    else:
        # room for rented instances: the offer's availability less what training jobs hold
        cap_rows = np.flatnonzero(milp.row_family == "capacity")
        held = milp.A[cap_rows][:, ys.start : ys.stop] @ y
        room = np.maximum(milp.row_upper[cap_rows] - held, 0.0)
        x = _floor_and_fill(milp, v[xs], v[milp.cols["s"]], room, v)
    v[xs] = x
    return derive(milp, v)


#: LP solves the rounding heuristic may spend repairing capacity rows it overshot
_REPAIRS = 4


def _rounded_start(milp: Milp, options: SolveOptions) -> np.ndarray | None:
    """A feasible integer plan from the tightened LP by rounding, or None.

    Two roundings of each LP: short workloads topped up (cheap), and every pair rounded
    up (keeps every >= row); the cheaper feasible one wins.  Rounding can overshoot an
    offer's capacity; each repair lowers those offers' bounds in the LP by the overshoot
    and rounds again.  The LP solves share the time budget's first half.
    """
    extra = np.zeros(len(milp.row_upper))
    cap_scale = np.ones(len(milp.row_upper))
    cap_rows = milp.row_family == "capacity"
    lock_rows = milp.row_family == "lock-in"
    deadline = time.perf_counter() + options.time_limit_s / 2
    for _ in range(_REPAIRS):
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        A, upper = _tightened(milp, extra, cap_scale)
        relaxed = replace(milp, A=A, row_upper=upper)
        lp_options = replace(options, time_limit_s=left)
        lp = _run(_highs(relaxed, lp_options, np.zeros_like(milp.integer), milp.upper), relaxed, False)
        if lp.status != Status.OPTIMAL:
            return None
        best, high = None, None
        for replicas in (_floor_and_fill, _ceil_replicas):
            v = _round(milp, lp.values, replicas)
            low, high_v, bounds_ok = violations(milp, v)
            if not (low.any() or high_v.any()) and bounds_ok:
                if best is None or milp.cost @ v < milp.cost @ best:
                    best = v
            elif replicas is _ceil_replicas and not low.any():
                high = high_v
                activity = milp.A @ v
        if best is not None:
            return best
        if high is None or (high & ~(cap_rows | lock_rows)).any() or not high.any():
            return None  # only capacity overshoot and broken share caps are repaired
        extra[high & cap_rows] += np.ceil(activity[high & cap_rows] - milp.row_upper[high & cap_rows])
        cap_scale[high & lock_rows] *= 0.9
    return None


# Shares of the time limit, counted from the start of the solve, that each step of
# ``_lp_plan`` may run to: the LP (column generation, plan/colgen.py), then the dive,
# then (only when the dive found no plan) HiGHS on the restricted MILP, then the
# large-neighbourhood search (plan/lns.py).
LP_SHARE = 0.4
DIVE_SHARE = 0.6
RESTRICTED_SHARE = 0.75
LNS_SHARE = 0.9
#: seconds one neighbourhood's MILP may take: a twentieth of the limit, within these
LNS_ROUND_S = (0.5, 1.0)


def _lp_plan(milp: Milp, options: SolveOptions, start: float) -> tuple[np.ndarray | None, float, str]:
    """(a plan from the LP relaxation or None, the LP bound, its method) for a large model.

    The LP, solved by column generation (plan/colgen.py) until ``LP_SHARE`` of the limit,
    gives the bound (nan when columns still priced in at that time) and picks, per
    inference workload, the replica columns it uses plus the one with the lowest price per
    request/s at each provider (plan/dive.py ``keep_columns``), and per training job its
    placements plus the 3 cheapest.  The LP dive (round up, re-solve, shave) runs on those
    columns when the LP was quick; then HiGHS solves the MILP restricted to them until
    ``RESTRICTED_SHARE`` of the limit (presolve drops the other columns, so its root is
    fast: 0.5 s on the 300-workload portfolio instead of minutes); the cheaper plan wins.
    Any plan returned satisfies every row of the full model (checked); only the LP bound
    holds for the full model.
    Needs the single-period layout (one provider code per offer, one offer per replica
    column): otherwise (None, nan, "").
    """
    n_x = milp.cols["x"].stop - milp.cols["x"].start
    n_u = milp.cols["u"].stop - milp.cols["u"].start
    if len(milp.x_offer) != n_x or len(milp.u_provider) != n_u or n_x == 0:
        return None, float("nan"), ""
    limit = options.time_limit_s
    lp_deadline = start + LP_SHARE * limit
    relaxed = np.zeros_like(milp.integer)
    active = initial_columns(milp)
    h = _highs(
        milp, replace(options, time_limit_s=LP_SHARE * limit), relaxed, np.where(active, milp.upper, 0.0)
    )
    priced = price_in(h, milp, active, lp_deadline)
    if priced is None:  # the first columns cannot carry the LP (a tight capacity row): all
        left = max(lp_deadline - time.perf_counter(), 0.01)
        h = _highs(milp, replace(options, time_limit_s=left), relaxed, milp.upper)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None, float("nan"), ""
        priced = np.asarray(h.getSolution().col_value), float(h.getInfo().objective_function_value), True
        active[:] = True
    lp_values, bound, converged = priced
    if not converged:  # out of time while columns still priced in: no valid bound
        bound = float("nan")
    keep = keep_columns(milp, lp_values, milp.u_provider)
    # the dive, on the columns the LP priced in only (each round re-solves that LP, cheap
    # there: on 300 x 5,000 the whole LP made a round take ~0.5 s, the sub-model's a tenth)
    now = time.perf_counter()
    deadline = min(start + DIVE_SHARE * limit, now + max(1.5 * (now - start), 0.25 * limit))
    best, method = _sub_dive(milp, options, active, deadline), "dive"
    upper = milp.upper.copy()
    upper[milp.cols["x"].start + np.flatnonzero(~keep)] = 0.0
    upper[milp.cols["y"].start + np.flatnonzero(~keep_placements(milp, lp_values))] = 0.0
    left = start + RESTRICTED_SHARE * limit - time.perf_counter()
    if best is None and left > 0:
        restricted = _highs(milp, replace(options, time_limit_s=left), milp.integer, upper)
        _interrupt_at(restricted, start + RESTRICTED_SHARE * limit)
        sol = _run(restricted, milp, True)
        found = sol.status in (Status.OPTIMAL, Status.FEASIBLE) and _feasible(milp, sol.values)
        if found and (best is None or milp.objective @ sol.values < milp.objective @ best):
            best, method = sol.values, "restricted-milp"
    if best is not None:
        best, method = _improve(milp, best, keep, lp_values, options, start + LNS_SHARE * limit, method)
    return best, bound, method if best is not None else ""


def _improve(
    milp: Milp,
    plan: np.ndarray,
    keep: np.ndarray,
    lp_values: np.ndarray,
    options: SolveOptions,
    deadline: float,
    method: str,
) -> tuple[np.ndarray, str]:
    """``plan`` improved by the large-neighbourhood search (plan/lns.py) until ``deadline``.

    The search runs on the sub-model of the kept replica columns (``keep`` and the plan's
    own) and every other column: each round's HiGHS model is then a few thousand columns,
    not the whole model's hundreds of thousands.
    """
    xs = milp.cols["x"]
    mask = np.ones(milp.n_cols, bool)
    mask[xs] = keep | (plan[xs] > 0.5)
    cols = np.flatnonzero(mask)
    sub = subset(milp, cols)
    round_s = min(max(options.time_limit_s / 20, LNS_ROUND_S[0]), LNS_ROUND_S[1])
    keep_y = keep_placements(milp, lp_values) | (plan[milp.cols["y"]] > 0.5)  # every y is in ``sub``
    better, _rounds = improve(
        sub, plan[cols], np.ones(sub.cols["x"].stop - sub.cols["x"].start, bool), keep_y, lp_values[cols],
        deadline,
        lambda model, upper, seconds, incumbent: _solve_sub(model, upper, seconds, incumbent, options),
        round_seconds=round_s,
    )  # fmt: skip
    full = np.zeros(milp.n_cols)
    full[cols] = better
    full = derive(milp, full)
    if _feasible(milp, full) and milp.objective @ full < milp.objective @ plan:
        return full, "lns"
    return plan, method


def _solve_sub(
    sub: Milp, upper: np.ndarray, seconds: float, incumbent: np.ndarray, options: SolveOptions
) -> tuple[np.ndarray | None, bool]:
    """HiGHS on one neighbourhood's model (``sub.lower``, ``upper``), started at ``incumbent``."""
    h = _highs(sub, replace(options, time_limit_s=max(seconds, 0.01)), sub.integer, upper)
    start = highspy.HighsSolution()
    start.col_value = list(incumbent)
    start.value_valid = True
    h.setSolution(start)
    _interrupt_at(h, time.perf_counter() + seconds)
    h.run()
    if h.getInfo().primal_solution_status != 2:  # kSolutionStatusFeasible
        return None, False
    optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return np.asarray(h.getSolution().col_value), optimal


def _sub_dive(milp: Milp, options: SolveOptions, active: np.ndarray, deadline: float) -> np.ndarray | None:
    """A plan of ``milp`` by diving on the sub-model of the ``active`` columns, then shaving."""
    cols = np.flatnonzero(active)
    sub = subset(milp, cols)
    h = _highs(sub, replace(options, time_limit_s=max(deadline - time.perf_counter(), 0.01)),
               np.zeros_like(sub.integer), sub.upper)  # fmt: skip
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    lp_values = np.asarray(h.getSolution().col_value)
    run_until(h, deadline)
    v = dive(h, sub, lp_values, keep_columns(sub, lp_values, sub.u_provider), deadline)
    if v is None:
        return None
    plan = np.zeros(milp.n_cols)
    plan[cols] = v
    plan[milp.integer] = np.round(plan[milp.integer])
    plan = derive(milp, plan)  # definitions (served, spend) from the rounded columns
    return shave(milp, plan, deadline) if _feasible(milp, plan) else None


def _feasible(milp: Milp, v: np.ndarray) -> bool:
    low, high, bounds_ok = violations(milp, v)
    return bool(bounds_ok and not low.any() and not high.any())


#: HiGHS's root LP inside its MIP solver took 12-20x the same LP solved alone on the
#: scale benchmarks (and cannot be interrupted); with less time left than this many LP
#: solves, the rounded plan is returned rather than overrunning the time limit
ROOT_LP_FACTOR = 20.0


def _lp_seconds(milp: Milp, options: SolveOptions) -> tuple[float, float]:
    """(objective, seconds) of the plain LP relaxation: a lower bound on every plan."""
    lp = _run(_highs(milp, options, np.zeros_like(milp.integer), milp.upper), milp, False)
    return (lp.objective if lp.status == Status.OPTIMAL else float("nan")), lp.seconds


def solve_milp(milp: Milp, options: SolveOptions | None = None) -> Solution:
    """Solve ``milp`` with HiGHS to ``options.mip_rel_gap`` within ``options.time_limit_s``.

    Models over ``options.rounding_start_above`` integer columns first get a plan from the
    LP (``_lp_plan``, else ``_rounded_start``).  When too little time is left for HiGHS's
    root (``ROOT_LP_FACTOR`` times what that took), the plan is returned as ``feasible``
    with its gap to the LP bound and its ``method``, not an overrun.
    """
    options = options or SolveOptions()
    start = time.perf_counter()
    given, lp_bound, method = None, float("nan"), "highs"
    if int(milp.integer.sum()) > options.rounding_start_above:
        lp_start = time.perf_counter()
        given, lp_bound, method = _lp_plan(milp, options, start)
        if given is None and time.perf_counter() - lp_start < options.time_limit_s / 2:
            given, method = _rounded_start(milp, options), "rounding"  # no plan, not for want of time
        rounds = time.perf_counter() - lp_start
        left = options.time_limit_s - (time.perf_counter() - start)
        if given is not None and left < ROOT_LP_FACTOR * rounds:
            return _rounded_only(milp, given, options, start, left, lp_bound, method)
        if given is None and rounds >= options.time_limit_s / 2:
            # the LP alone outlasted half the limit: HiGHS's root LP, which cannot be
            # interrupted, would run far past the limit too
            return Solution(Status.UNKNOWN, np.zeros(milp.n_cols), float("nan"), float("nan"),
                            time.perf_counter() - start, limit="time")  # fmt: skip
    left = max(options.time_limit_s - (time.perf_counter() - start), 0.01)
    h = _highs(milp, replace(options, time_limit_s=left), milp.integer, milp.upper)
    _interrupt_at(h, start + options.time_limit_s)
    # The rounded plan is not handed to HiGHS as a start: with an incumbent, HiGHS's root
    # ran more than twice past its time limit on the scale benchmark (without, it stops
    # on time); the better of the two plans is kept instead.
    sol = _run(h, milp, bool(milp.integer.any()))
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


def _interrupt_at(h: highspy.Highs, deadline: float) -> None:
    """Ask HiGHS to stop at ``deadline`` wherever it offers an interrupt point.

    HiGHS checks its own time limit between phases; its MIP and simplex interrupt
    callbacks let a long cut round or LP stop closer to the limit (the root LP of a MIP
    still runs to its end: HiGHS offers no interrupt inside it).
    """

    def stop(event: Any) -> None:
        if time.perf_counter() > deadline:
            event.data_in.user_interrupt = True

    h.cbMipInterrupt.subscribe(stop)
    h.cbSimplexInterrupt.subscribe(stop)


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
