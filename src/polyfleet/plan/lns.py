"""Large-neighbourhood search: improve a whole-replica plan a few workloads at a time.

The dive (plan/dive.py) ends with a plan that satisfies every row but pays for its
greedy rounding: 11.8% above the LP bound on the 100 x 1,000 benchmark.  HiGHS cannot
improve it on the whole model within seconds (its root alone takes longer), but it
solves a model where all but a few workloads are fixed at their current replicas and
placements in a fraction of a second: only those workloads' replica columns (the LP's
support, the best per provider and the ones the plan uses: ``keep_x``), their training
placements (the LP's, the cheapest few and the plan's: ``keep_y``) and the instance,
api-share and definition columns stay free.  Each round frees one neighbourhood, hands
HiGHS the current plan as its incumbent, and keeps the answer when it is cheaper.

The neighbourhood starts at ``NEIGHBOURHOOD`` workloads, doubles after a round HiGHS
solved to optimality in under half its time and halves after one it did not finish
(within 2 and ``MAX_NEIGHBOURHOOD``): the size HiGHS still closes quickly differs tenfold
between fleets.  Rounds alternate between a window sliding down the workloads ranked by
their excess over the LP (what their replicas or placement cost in the plan minus in the
LP relaxation) and a draw weighted by that excess (seeded, so a run is repeatable for a
given number of rounds).  The search stops at the deadline, or when no round of the last
two sweeps of windows (with the draws between them) improved the plan: the caller may
then give the rest of its time to HiGHS.

Every plan returned satisfies every row of the full model (checked here); the search
carries no optimality claim.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from polyfleet.plan.build import Milp
from polyfleet.plan.dive import derive, feasible

#: workloads freed in the first round
NEIGHBOURHOOD = 8
#: most workloads one round may free (the neighbourhood grows while rounds are quick)
MAX_NEIGHBOURHOOD = 256
#: a round with less time than this left is not started, seconds
MIN_ROUND_S = 0.05

#: (sub-model with its lower bounds, upper bounds, seconds, incumbent) ->
#: (values or None, whether HiGHS proved them optimal for the sub-model)
SubSolver = Callable[[Milp, np.ndarray, float, np.ndarray], "tuple[np.ndarray | None, bool]"]


def _replica_usd(milp: Milp) -> np.ndarray:
    """Instance price of each replica column's chips (its share of the instances it fills)."""
    us = milp.cols["u"]
    per_chip = milp.cost[us] / np.maximum(milp.u_cpi, 1)
    return milp.x_chips * per_chip[milp.x_offer]


def _neighbourhood(excess: np.ndarray, round_: int, rng: np.random.Generator, k: int) -> np.ndarray:
    """Workloads to free in round ``round_`` (even: next window by excess; odd: weighted draw)."""
    n_w = len(excess)
    if k >= n_w:
        return np.arange(n_w)
    if round_ % 2 == 0:
        order = np.argsort(-excess, kind="stable")
        start = (round_ // 2 * k) % n_w
        return order[np.arange(start, start + k) % n_w]
    weight = np.maximum(excess, 0.0) + 1e-9
    return rng.choice(n_w, size=k, replace=False, p=weight / weight.sum())


def improve(
    milp: Milp,
    plan: np.ndarray,
    keep_x: np.ndarray,
    keep_y: np.ndarray,
    reference: np.ndarray,
    deadline: float,
    solve_sub: SubSolver,
    *,
    round_seconds: float,
    k: int = NEIGHBOURHOOD,
    seed: int = 0,
) -> tuple[np.ndarray, int]:
    """(the cheapest plan found, rounds run) starting from ``plan`` (feasible for ``milp``).

    ``keep_x`` and ``keep_y`` mask the replica and placement columns a freed workload or
    job may use; ``reference`` (the LP relaxation's values) ranks them by excess.
    ``solve_sub`` runs HiGHS on a sub-model for at most the seconds it is given.
    """
    xs, ys = milp.cols["x"], milp.cols["y"]
    n_w = max(int(milp.x_workload.max(initial=-1)), int(milp.y_job.max(initial=-1))) + 1
    if n_w == 0:
        return plan, 0
    usd = _replica_usd(milp)
    y_usd = milp.cost[ys]

    def by_workload(values: np.ndarray) -> np.ndarray:
        return np.bincount(milp.x_workload, weights=usd * values[xs], minlength=n_w) + np.bincount(
            milp.y_job, weights=y_usd * values[ys], minlength=n_w
        )

    best, best_obj = plan, float(milp.objective @ plan)
    rng = np.random.default_rng(seed)
    sweep = max(1, -(-n_w // k))  # windows in one sweep of every workload
    rounds = since_better = 0
    while deadline - time.perf_counter() >= MIN_ROUND_S and since_better < 2 * sweep:
        excess = by_workload(best) - by_workload(reference)
        chosen = _neighbourhood(excess, rounds, rng, k)
        rounds += 1
        lower, upper = milp.lower.copy(), milp.upper.copy()
        for block, owner, keep in ((xs, milp.x_workload, keep_x), (ys, milp.y_job, keep_y)):
            free = np.isin(owner, chosen)
            fixed = block.start + np.flatnonzero(~free)
            lower[fixed] = upper[fixed] = best[fixed]
            upper[block.start + np.flatnonzero(free & ~keep)] = 0.0
        seconds = min(round_seconds, deadline - time.perf_counter())
        began = time.perf_counter()
        found, optimal = solve_sub(replace(milp, lower=lower), upper, seconds, best)
        if optimal and time.perf_counter() - began < seconds / 2:
            k = min(2 * k, MAX_NEIGHBOURHOOD, n_w)
            sweep = max(1, -(-n_w // k))
        elif not optimal:
            k = max(k // 2, 2)
            sweep = max(1, -(-n_w // k))
        since_better += 1
        if found is None:
            continue
        found = found.copy()
        found[milp.integer] = np.round(found[milp.integer])
        found = derive(milp, found)
        objective = float(milp.objective @ found)
        if objective < best_obj * (1 - 1e-9) and feasible(milp, found):
            best, best_obj, since_better = found, objective, 0
    return best, rounds
