"""Solve a built ``Milp`` with HiGHS and read the column values back.

Large models first get a starting plan by rounding: the LP relaxation is solved with
capacity, caps and budget tightened a little (to leave room for rounding up), replicas
are rounded up, instances set to hold them, each training job put where the LP put most
of it.  When that plan satisfies every original row it is handed to HiGHS, so a time
limit still returns a plan.  It never changes what HiGHS may prove: it is only a start.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, replace
from enum import StrEnum

import highspy
import numpy as np
import scipy.sparse as sp

from polyfleet.plan.build import Milp


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
    warm_start_above: integer columns above which the LP-guided warm start runs.
    warm_start_per_workload: most cost-efficient offers kept per workload in it.
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
    rounded_start: bool = False  # a rounded LP plan was handed to HiGHS as a start


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


def _tightened(milp: Milp, extra: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Row matrix and upper bounds with capacity, caps and budget tightened (see _TIGHTEN).

    ``extra`` is subtracted from the capacity rows' bounds: instances a previous rounding
    overshot at that offer, so the next LP leaves room for them.
    """
    A = milp.A.tocsr(copy=True)
    upper = milp.row_upper.copy()
    cap_rows = milp.row_family == "capacity"
    upper[cap_rows] = np.maximum(np.floor(upper[cap_rows] * _TIGHTEN["capacity"]) - extra[cap_rows], 0.0)
    budget_rows = milp.row_family == "budget"
    upper[budget_rows] *= _TIGHTEN["budget"]
    t_col = milp.cols["T"].start
    for row in np.flatnonzero(milp.row_family == "lock-in"):  # few rows: one per provider/vendor
        lo, hi = A.indptr[row], A.indptr[row + 1]
        at_t = lo + np.flatnonzero(A.indices[lo:hi] == t_col)
        A.data[at_t] *= _TIGHTEN["lock-in"]
    return A, upper


def _round(milp: Milp, lp_values: np.ndarray) -> np.ndarray:
    """Replicas rounded up, then the fewest instances that hold them, one place per job."""
    v = lp_values.copy()
    xs, us, ys = milp.cols["x"], milp.cols["u"], milp.cols["y"]
    x = np.ceil(v[xs] - 1e-7)
    chips = np.zeros(us.stop - us.start)
    np.add.at(chips, milp.x_offer, x * milp.x_chips)
    v[xs] = x
    v[us] = np.ceil(chips / milp.u_cpi - 1e-9)
    y = np.zeros(ys.stop - ys.start)
    for job in np.unique(milp.y_job):  # one job at a time: few training jobs
        k = np.flatnonzero(milp.y_job == job)
        y[k[np.argmax(v[ys][k])]] = 1.0
    v[ys] = y
    # continuous columns that are definitions: z (served) and T (total spend)
    served_rows = np.flatnonzero(milp.row_family == "served")
    zs = milp.cols["z"]
    z_part = milp.A[served_rows][:, zs.start : zs.stop]
    rest = milp.A[served_rows] @ v - z_part @ v[zs]
    v[zs] = np.maximum(-rest, 0.0)
    v[milp.cols["T"]] = milp.cost @ v
    return v


#: LP solves the rounding heuristic may spend repairing capacity rows it overshot
_REPAIRS = 4


def _rounded_start(milp: Milp, options: SolveOptions) -> np.ndarray | None:
    """A feasible integer plan from the tightened LP by rounding, or None.

    Rounding replicas up can overshoot an offer's capacity; each repair lowers those
    offers' bounds in the LP by the overshoot and rounds again.
    """
    extra = np.zeros(len(milp.row_upper))
    cap_rows = milp.row_family == "capacity"
    for _ in range(_REPAIRS):
        A, upper = _tightened(milp, extra)
        relaxed = replace(milp, A=A, row_upper=upper)
        lp = _run(_highs(relaxed, options, np.zeros_like(milp.integer), milp.upper), relaxed, False)
        if lp.status != Status.OPTIMAL:
            return None
        v = _round(milp, lp.values)
        activity = milp.A @ v
        tol = 1e-6 * np.maximum(1.0, np.abs(activity))
        low = activity < milp.row_lower - tol
        high = activity > milp.row_upper + tol
        bounds_ok = np.all(v >= milp.lower - 1e-9) and np.all(v <= milp.upper + 1e-9)
        if not (low.any() or high.any()) and bounds_ok:
            return v
        if low.any() or (high & ~cap_rows).any() or not high.any():
            return None  # only capacity overshoot is repaired
        extra[high] += np.ceil(activity[high] - milp.row_upper[high])
    return None


def solve_milp(milp: Milp, options: SolveOptions | None = None) -> Solution:
    """Solve ``milp`` with HiGHS to ``options.mip_rel_gap`` within ``options.time_limit_s``."""
    options = options or SolveOptions()
    start = time.perf_counter()
    given = None
    if int(milp.integer.sum()) > options.rounding_start_above:
        given = _rounded_start(milp, options)
    left = max(options.time_limit_s - (time.perf_counter() - start), 0.01)
    h = _highs(milp, replace(options, time_limit_s=left), milp.integer, milp.upper)
    if given is not None:
        solution = highspy.HighsSolution()
        solution.col_value = list(given)
        h.setSolution(solution)
    sol = _run(h, milp, bool(milp.integer.any()))
    sol.seconds = time.perf_counter() - start
    sol.rounded_start = given is not None
    return sol
