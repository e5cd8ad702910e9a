"""The LP relaxation of a large model by column generation (pricing replica columns in).

Most of a large model's replica columns are never worth using: on the 300 x 5,000
benchmark (594,922 columns) the LP's optimum uses a few thousand.  Column generation
solves the LP over a small set of columns, prices every other column with the LP's row
duals (reduced cost ``c - A^T y``), adds those that would lower the objective, and solves
again from the previous basis, until no column prices in.  The last LP is then the full
LP's optimum (the same bound, a valid one), found in 10 s instead of 49 s on 300 x 5,000,
0.2 s instead of 0.45 s on 100 x 1,000 and 0.9 s instead of 2.3 s on the 300-workload
portfolio (single-threaded HiGHS, 2 cores).

Start: per inference workload the replica column with the lowest price per request/s at
each provider and each vendor (``keep_columns`` with no LP yet) and its 5 lowest overall,
per training job its 5 cheapest placements and the cheapest per provider and vendor, and
every instance, api and definition column.  Each round adds, per
workload, the ``PER_WORKLOAD`` replica columns with the most negative reduced cost, and
every other improving column.
"""

from __future__ import annotations

import time

import highspy
import numpy as np

from polyfleet.plan.build import Milp
from polyfleet.plan.dive import first_per_group, keep_columns, keep_placements

#: replica columns added per workload and round (60 until session 5: 30 took 2.6-2.9 s on
#: the SkyPilot portfolio against 3.7-4.6 s, alternating runs on the loaded 2 cores)
PER_WORKLOAD = 30
#: replica columns per workload (lowest price per request/s) and placements per job
#: (cheapest) in the first LP, besides the best per provider and per vendor
INITIAL_PER_OWNER = 5
#: relative reduced cost below which a column counts as improving
PRICE_TOL = 1e-9


def run_until(h: highspy.Highs, deadline: float) -> None:
    """Set ``h``'s time limit to end at ``deadline`` (HiGHS counts its limit over all runs)."""
    h.setOptionValue("time_limit", h.getRunTime() + max(deadline - time.perf_counter(), 0.01))


def initial_columns(milp: Milp) -> np.ndarray:
    """Columns of the first LP (see the module docstring), as a mask over all columns."""
    active = np.ones(milp.n_cols, bool)
    zero = np.zeros(milp.n_cols)
    us, ys = milp.cols["u"], milp.cols["y"]
    per_chip = milp.cost[us] / np.maximum(milp.u_cpi, 1)
    usd_per_rps = milp.x_chips * per_chip[milp.x_offer] / np.maximum(milp.x_rps, 1e-12)
    active[milp.cols["x"]] = keep_columns(milp, zero, milp.u_provider) | first_per_group(
        milp.x_workload, usd_per_rps, INITIAL_PER_OWNER
    )
    cheapest_y = first_per_group(milp.y_job, milp.objective[ys], INITIAL_PER_OWNER)
    active[ys] = keep_placements(milp, zero) | cheapest_y
    return active


def _best_per_workload(milp: Milp, cols: np.ndarray, reduced: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` replica columns of each workload with the most negative reduced cost."""
    workload = milp.x_workload[cols - milp.cols["x"].start]
    return cols[first_per_group(workload, reduced[cols], k)]


def price_in(
    h: highspy.Highs, milp: Milp, active: np.ndarray, deadline: float
) -> tuple[np.ndarray, float, bool] | None:
    """Solve the LP in ``h`` (the full relaxation with inactive columns' bounds at 0).

    Returns (column values, objective, converged); ``converged`` means no column prices
    in, so the objective is the full LP's optimum.  When time runs out first, the last
    optimal LP's point with ``converged`` False; None when the first LP is not optimal
    (e.g. the first columns cannot meet a capacity row: the caller solves the full LP).
    ``active`` is updated in place.
    """
    A = milp.A.tocsc()
    cost = milp.objective
    xs = milp.cols["x"]
    last: tuple[np.ndarray, float, bool] | None = None
    while True:
        run_until(h, deadline)
        h.run()
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            # out of time (or numerical trouble) after a first optimum: the last LP's point
            # is still feasible for the full LP, only its bound is not the full LP's
            return last
        solution = h.getSolution()
        values = np.asarray(solution.col_value)
        objective = float(h.getInfo().objective_function_value)
        reduced = cost - A.T @ np.asarray(solution.row_dual)
        improving = ~active & (reduced < -PRICE_TOL * np.maximum(1.0, np.abs(cost)))
        if not improving.any():
            return values, objective, True
        last = (values, objective, False)
        if time.perf_counter() > deadline:
            return last
        cols = np.flatnonzero(improving)
        is_x = (cols >= xs.start) & (cols < xs.stop)
        add = np.concatenate([_best_per_workload(milp, cols[is_x], reduced, PER_WORKLOAD), cols[~is_x]])
        active[add] = True
        h.changeColsBounds(len(add), add.astype(np.int32), milp.lower[add], milp.upper[add])
