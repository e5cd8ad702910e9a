"""Column generation for the LP relaxation of large models (plan/colgen.py)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from polyfleet.plan import build_candidates, build_milp
from polyfleet.plan.colgen import initial_columns, price_in
from polyfleet.plan.dive import first_per_group, keep_columns, keep_placements, violations
from polyfleet.plan.highs import build_highs
from polyfleet.plan.solve import SolveOptions, _lp_plan, _lp_seconds
from test_solve import _synthetic


def _start(milp):
    active = initial_columns(milp)
    h = build_highs(milp, SolveOptions(), np.zeros_like(milp.integer), np.where(active, milp.upper, 0.0))
    return active, h


def test_initial_columns_are_the_cheapest_per_provider_vendor_and_workload_and_placement():
    spec = _synthetic(20, 150, 3)
    milp = build_milp(build_candidates(spec), spec.policy)
    active = initial_columns(milp)
    zero = np.zeros(milp.n_cols)
    xs, ys, us = milp.cols["x"], milp.cols["y"], milp.cols["u"]
    usd_per_rps = milp.x_chips * (milp.cost[us] / milp.u_cpi)[milp.x_offer] / milp.x_rps
    five = first_per_group(milp.x_workload, usd_per_rps, 5)
    assert np.array_equal(active[xs], keep_columns(milp, zero, milp.u_provider) | five)
    cheapest_y = first_per_group(milp.y_job, milp.objective[ys], 5)
    assert np.array_equal(active[ys], keep_placements(milp, zero) | cheapest_y)
    for w in np.unique(milp.x_workload):  # by hand: the 5 lowest $/(req/s) of each workload
        k = np.flatnonzero(milp.x_workload == w)
        assert active[xs][k[np.argsort(usd_per_rps[k], kind="stable")[:5]]].all()
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
    """The 5 cheapest offers per request/s (the first LP's columns with the best at p1)
    hold 1 instance each; demand needs 8 replicas.  The first LP is infeasible; the plan
    still comes."""
    from test_plan_constraints import acc, inference, make, offer

    prices = [1.0, 1.01, 1.02, 1.03, 1.04]
    offers = [offer(f"cheap{i}", "p1", "acc-a", price=p, avail=1) for i, p in enumerate(prices)]
    offers.append(offer("big", "p1", "acc-a", price=2.0))
    spec = make([acc("acc-a")], offers, [inference("w", 8, {"acc-a": (1, 1.0)})])
    milp = build_milp(build_candidates(spec), spec.policy)
    active, h = _start(milp)
    assert price_in(h, milp, active, deadline=time.perf_counter() + 10) is None
    plan, bound, method, _ = _lp_plan(milp, SolveOptions(time_limit_s=5), time.perf_counter())
    assert plan is not None and method in ("greedy", "dive", "restricted-milp", "lns")
    assert np.isfinite(bound)
    # 1 instance of each cheap offer ($5.10/h in all) and 3 of the $2 one, a 730-hour month
    assert milp.cost @ plan == pytest.approx(730 * (sum(prices) + 3 * 2.0), rel=1e-6)
