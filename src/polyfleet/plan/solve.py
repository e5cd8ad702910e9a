"""Solve a built ``Milp`` with HiGHS and read the column values back."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import highspy
import numpy as np

from polyfleet.plan.build import Milp


class Status(StrEnum):
    """How a solve ended: ``feasible`` means a limit stopped it before proving optimality."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"


@dataclass(frozen=True)
class SolveOptions:
    """Solver settings: relative MIP gap, wall-clock limit (s), threads."""

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
    limit: str = ""  # "gap" or "time" when status is FEASIBLE


def solve_milp(milp: Milp, options: SolveOptions = SolveOptions()) -> Solution:
    """Pass the model to HiGHS column-wise, run it, and return a typed ``Solution``."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", float(options.mip_rel_gap))
    h.setOptionValue("time_limit", float(options.time_limit_s))
    h.setOptionValue("threads", int(options.threads))
    h.setOptionValue("random_seed", 0)
    lp = highspy.HighsLp()
    n_rows, n_cols = milp.A.shape
    lp.num_col_ = n_cols
    lp.num_row_ = n_rows
    lp.col_cost_ = milp.objective
    lp.col_lower_ = milp.lower
    lp.col_upper_ = np.where(np.isinf(milp.upper), highspy.kHighsInf, milp.upper)
    lp.row_lower_ = np.where(np.isinf(milp.row_lower), -highspy.kHighsInf, milp.row_lower)
    lp.row_upper_ = np.where(np.isinf(milp.row_upper), highspy.kHighsInf, milp.row_upper)
    csc = milp.A.tocsc()
    csc.sort_indices()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr
    lp.a_matrix_.index_ = csc.indices
    lp.a_matrix_.value_ = csc.data
    lp.integrality_ = [
        highspy.HighsVarType.kInteger if flag else highspy.HighsVarType.kContinuous for flag in milp.integer
    ]
    h.passModel(lp)
    start = time.perf_counter()
    h.run()
    seconds = time.perf_counter() - start
    model_status = h.getModelStatus()
    info = h.getInfo()
    S = highspy.HighsModelStatus
    has_solution = info.primal_solution_status == 2  # kSolutionStatusFeasible
    values = np.asarray(h.getSolution().col_value) if has_solution else np.zeros(n_cols)
    gap = float(info.mip_gap) if milp.integer.any() else 0.0
    if model_status == S.kOptimal:
        return Solution(Status.OPTIMAL, values, float(info.objective_function_value), gap, seconds)
    if has_solution and model_status in (S.kTimeLimit, S.kIterationLimit, S.kSolutionLimit, S.kInterrupt):
        return Solution(
            Status.FEASIBLE, values, float(info.objective_function_value), gap, seconds, limit="time"
        )
    return Solution(Status.INFEASIBLE, values, float("nan"), float("nan"), seconds)
