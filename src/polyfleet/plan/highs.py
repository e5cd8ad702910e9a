"""HiGHS glue: the solver settings, a ``Solution``, and a ``Highs`` object from a ``Milp``.

Everything that talks to ``highspy`` directly lives here, so the solve strategy
(plan/solve.py), the rounding (plan/rounding.py) and the large-neighbourhood search share
one way to build, run and interrupt a model.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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
    #: models "greedy", "restricted-milp", "dive", "lns" or "rounding" (docs/planning-model.md)
    method: str = "highs"


def new_highs() -> highspy.Highs:
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


def build_highs(milp: Milp, options: SolveOptions, integer: np.ndarray, upper: np.ndarray) -> highspy.Highs:
    h = new_highs()
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


def run_highs(h: highspy.Highs, milp: Milp, is_mip: bool) -> Solution:
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


def interrupt_at(h: highspy.Highs, deadline: float) -> None:
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
