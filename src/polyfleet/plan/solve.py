"""Solve a built ``Milp`` with HiGHS and read the column values back."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import highspy
import numpy as np

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


@dataclass
class Solution:
    """Column values and what the solver said about them."""

    status: Status
    values: np.ndarray
    objective: float
    gap: float
    seconds: float
    limit: str = ""  # "time" when status is FEASIBLE or UNKNOWN because of the time limit


def _highs(milp: Milp, options: SolveOptions, integer: np.ndarray, upper: np.ndarray) -> highspy.Highs:
    h = highspy.Highs()
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


def solve_milp(milp: Milp, options: SolveOptions | None = None) -> Solution:
    """Solve ``milp`` with HiGHS to ``options.mip_rel_gap`` within ``options.time_limit_s``."""
    options = options or SolveOptions()
    return _run(_highs(milp, options, milp.integer, milp.upper), milp, bool(milp.integer.any()))
