"""Column generation for the LP relaxation of large models (plan/colgen.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from polyfleet.plan import build_candidates, build_milp
from polyfleet.plan.colgen import initial_columns, price_in
from polyfleet.plan.dive import keep_columns, keep_placements, violations
from polyfleet.plan.highs import build_highs
from polyfleet.plan.solve import SolveOptions, _lp_plan, _lp_seconds
from test_solve import _synthetic


def _start(milp):
    active = initial_columns(milp)
    h = build_highs(milp, SolveOptions(), np.zeros_like(milp.integer), np.where(active, milp.upper, 0.0))
    return active, h


def test_initial_columns_are_the_cheapest_per_provider_and_placement():
    spec = _synthetic(20, 150, 3)
    milp = build_milp(build_candidates(spec), spec.policy)
    active = initial_columns(milp)
    zero = np.zeros(milp.n_cols)
    assert np.array_equal(active[milp.cols["x"]], keep_columns(milp, zero, milp.u_provider))
    assert np.array_equal(active[milp.cols["y"]], keep_placements(milp, zero))
    assert active[milp.cols["u"]].all() and active[milp.cols["T"]].all()
    assert active[milp.cols["x"]].sum() < 0.5 * (milp.cols["x"].stop - milp.cols["x"].start)


@pytest.mark.parametrize("seed", [0, 1])
def test_pricing_in_reaches_the_full_lp_optimum(seed):
    spec = _synthetic(30, 200, seed)
    milp = build_milp(build_candidates(spec), spec.policy)
    full, _ = _lp_seconds(milp, SolveOptions())
    active, h = _start(milp)
    first = active.sum()
    values, objective, converged = price_in(h, milp, active, deadline=time.perf_counter() + 60)
    assert converged
    assert objective == pytest.approx(full, rel=1e-7)
    assert active.sum() > first  # columns were priced in
    low, high, bounds_ok = violations(milp, values)
    assert not low.any() and not high.any() and bounds_ok  # the full model's rows hold


def test_out_of_time_returns_a_point_of_the_full_lp_but_no_bound():
    spec = _synthetic(30, 200, 0)
    milp = build_milp(build_candidates(spec), spec.policy)
    full, _ = _lp_seconds(milp, SolveOptions())
    active, h = _start(milp)
    values, objective, converged = price_in(h, milp, active, deadline=time.perf_counter() - 1)
    assert not converged
    assert objective >= full - 1e-6 * abs(full)  # a restricted LP: never below the full one
    low, high, bounds_ok = violations(milp, values)
    assert not low.any() and not high.any() and bounds_ok


def test_first_columns_that_cannot_carry_the_lp_fall_back_to_the_full_lp():
    """The cheapest offer per request/s at p1 holds 1 instance; demand needs 8 replicas.
    The first LP (only that column at p1) is infeasible; the plan still comes."""
    from test_plan_constraints import acc, inference, make, offer

    offers = [offer("cheap", "p1", "acc-a", price=1.0, avail=1), offer("big", "p1", "acc-a", price=2.0)]
    spec = make([acc("acc-a")], offers, [inference("w", 8, {"acc-a": (1, 1.0)})])
    milp = build_milp(build_candidates(spec), spec.policy)
    active, h = _start(milp)
    assert price_in(h, milp, active, deadline=time.perf_counter() + 10) is None
    plan, bound, method, _ = _lp_plan(milp, SolveOptions(time_limit_s=5), time.perf_counter())
    assert plan is not None and method in ("greedy", "dive", "restricted-milp", "lns")
    assert np.isfinite(bound)
    # 1 instance of the $1 offer and 7 of the $2 one, for a 730-hour month
    assert milp.cost @ plan == pytest.approx(730 * (1 * 1.0 + 7 * 2.0), rel=1e-6)
