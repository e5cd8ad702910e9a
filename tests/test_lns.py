"""plan/lns.py: the large-neighbourhood search that improves a whole-replica plan."""

from __future__ import annotations

import time

import numpy as np
import pytest

from polyfleet.plan import build_candidates, build_milp
from polyfleet.plan.dive import derive, keep_columns, keep_placements
from polyfleet.plan.highs import build_highs
from polyfleet.plan.lns import _neighbourhood, improve
from polyfleet.plan.solve import SolveOptions, Status, _solve_sub, solve_milp
from test_plan_constraints import acc, inference, make, offer
from test_solve import _feasible, _synthetic


def _sub(options: SolveOptions):
    return lambda model, upper, seconds, incumbent: _solve_sub(model, upper, seconds, incumbent, options)


def _lp(milp):
    h = build_highs(milp, SolveOptions(), np.zeros_like(milp.integer), milp.upper)
    h.run()
    return np.asarray(h.getSolution().col_value)


def test_a_freed_workload_moves_to_the_cheaper_offer_by_hand():
    # Two workloads of 1 rps, each replica 1 chip serving 1 rps; offers of 1-chip instances
    # at $1 and $3 per chip-hour (730 h).  Start: both on the $3 offer ($4,380).  With one
    # workload freed per round, the first round moves one ($730 + $2,190 = $2,920), the next
    # the other ($1,460, the optimum).
    spec = make(
        [acc("acc-a")],
        [offer("cheap", "p1", "acc-a", price=1.0), offer("dear", "p1", "acc-a", price=3.0)],
        [inference("w1", 1.0, {"acc-a": (1, 1.0)}), inference("w2", 1.0, {"acc-a": (1, 1.0)})],
    )
    cand = build_candidates(spec)
    milp = build_milp(cand, spec.policy)
    xs, us = milp.cols["x"], milp.cols["u"]
    dear = [o.id for o in cand.offers].index("dear")
    start = np.zeros(milp.n_cols)
    start[xs.start + np.flatnonzero(milp.x_offer == dear)] = 1.0
    start[us.start + dear] = 2.0
    start = derive(milp, start)
    assert _feasible(milp, start) and milp.cost @ start == pytest.approx(2 * 3 * 730)
    keep_x = np.ones(xs.stop - xs.start, bool)
    keep_y = np.ones(0, bool)
    one, rounds = improve(
        milp, start, keep_x, keep_y, _lp(milp), time.perf_counter() + 30, _sub(SolveOptions()),
        round_seconds=5.0, k=1,
    )  # fmt: skip
    assert _feasible(milp, one)
    assert milp.cost @ one == pytest.approx(2 * 730)
    assert rounds >= 2  # one workload per round: it took (at least) two


def test_neighbourhoods_slide_by_excess_then_draw_by_it():
    rng = np.random.default_rng(0)
    excess = np.array([5.0, 0.0, 9.0, 1.0, 7.0])
    assert list(_neighbourhood(excess, 0, rng, 2)) == [2, 4]  # the two largest first
    assert list(_neighbourhood(excess, 2, rng, 2)) == [0, 3]  # then the next window
    drawn = [set(_neighbourhood(excess, 1, np.random.default_rng(s), 2)) for s in range(50)]
    assert all(1 not in d for d in drawn)  # no excess, (almost) never drawn
    assert list(_neighbourhood(excess, 1, rng, 9)) == [0, 1, 2, 3, 4]  # k >= all: everyone


#: 8-workload, 40-offer fleets whose exact optimum HiGHS proves in about a second (the
#: 12x60 fleets took 8-34 s for the same check)
@pytest.mark.parametrize("seed", [2, 10])
def test_search_never_worsens_the_plan_and_keeps_every_row(seed):
    spec = _synthetic(8, 40, seed)
    milp = build_milp(build_candidates(spec), spec.policy)
    lp = _lp(milp)
    start = solve_milp(milp, SolveOptions(rounding_start_above=0, time_limit_s=0.5))
    assert start.status in (Status.FEASIBLE, Status.OPTIMAL)
    keep_x = keep_columns(milp, lp, milp.u_provider) | (start.values[milp.cols["x"]] > 0.5)
    keep_y = keep_placements(milp, lp) | (start.values[milp.cols["y"]] > 0.5)
    better, rounds = improve(
        milp, start.values, keep_x, keep_y, lp, time.perf_counter() + 3, _sub(SolveOptions()),
        round_seconds=0.5, seed=seed,
    )  # fmt: skip
    assert rounds >= 1 and _feasible(milp, better)
    assert milp.objective @ better <= milp.objective @ start.values + 1e-6
    exact = solve_milp(milp, SolveOptions(rounding_start_above=10**9, time_limit_s=60))
    assert milp.objective @ better >= exact.objective * (1 - 1e-6)
