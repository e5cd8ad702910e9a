"""The greedy plan (plan/greedy.py): hand-computed choices, and the plan a large solve
returns when the time limit stops everything else (before it, such a solve ended with no
plan: the 300-workload SkyPilot portfolio at the default 10 s)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from polyfleet.plan import build_candidates, build_milp, solve_candidates
from polyfleet.plan.dive import feasible
from polyfleet.plan.greedy import greedy_plan
from polyfleet.plan.solve import SolveOptions, Status, solve_milp
from polyfleet.spec import build_spec


def test_a_replica_goes_to_free_chips_before_a_new_instance():
    """'a' can only run on the 2-chip offer 'big' (its stack; $1/chip-h: $1,460 a month);
    'b' could rent a 1-chip 'small' instance ($1.2/chip-h: $876), but the free chip 'a'
    leaves in 'big' costs nothing more: the plan is one 'big' instance, $1,460."""
    from test_plan_constraints import acc, inference, make, offer

    small = {**acc("acc-small"), "stack": "rocm"}
    spec = make(
        [acc("acc-big"), small],
        [offer("big", "p1", "acc-big", cpi=2, price=1.0), offer("small", "p2", "acc-small", price=1.2)],
        [
            inference("a", 10, {"acc-big": (1, 10.0)}, stacks=["cuda"]),
            inference("b", 5, {"acc-big": (1, 10.0), "acc-small": (1, 10.0)}),
        ],
    )
    milp = build_milp(build_candidates(spec), spec.policy)
    v = greedy_plan(milp)
    assert v is not None and feasible(milp, v)
    us = milp.cols["u"]
    assert list(v[us]) == [1.0, 0.0]  # offers in id order: big, small
    assert milp.cost @ v == pytest.approx(2 * 1.0 * 730)


def test_a_replica_larger_than_what_is_missing_is_credited_with_what_is_missing():
    """'w' needs 12 req/s: 'p' sells 1-chip replicas of 10 req/s at $1/chip-h ($730), 'q'
    1-chip replicas of 2 req/s at $0.25 ($182.50).  Per req/s 'p' is cheaper ($73 vs
    $91.25), so the first replica is 'p''s; for the 2 req/s left, 'p''s next replica costs
    $730 / 2 but 'q''s $182.50 / 2: total $912.50 (two of 'p' would be $1,460)."""
    from test_plan_constraints import acc, inference, make, offer

    spec = make(
        [acc("acc-p"), acc("acc-q")],
        [offer("p", "p1", "acc-p", price=1.0), offer("q", "p2", "acc-q", price=0.25)],
        [inference("w", 12, {"acc-p": (1, 10.0), "acc-q": (1, 2.0)})],
    )
    milp = build_milp(build_candidates(spec), spec.policy)
    v = greedy_plan(milp)
    assert v is not None and feasible(milp, v)
    assert list(v[milp.cols["u"]]) == [1.0, 1.0]
    assert milp.cost @ v == pytest.approx(730 + 182.5)


def test_spend_share_caps_hold_by_the_sufficient_rule():
    """Provider spend capped at 60%, 'w' needs 4 replicas, 'a' $730 and 'b' $803 each.
    1st: nothing keeps 60% of a $0 total, so the cheapest, 'a'; 2nd: 'a' again would be
    100%, 'b' is 803/1,533 = 52%: 'b'; 3rd: 'a' 1,460/2,263 = 65%, 'b' 1,606/2,336 = 69%,
    neither keeps the rule: the cheapest, 'a'; 4th: 'a' 2,190/2,993 = 73%, 'b'
    1,606/3,066 = 52%: 'b'.  2 + 2 replicas, $3,066, the optimum (3 + 1 is 73%)."""
    from test_plan_constraints import acc, inference, make, offer

    spec = make(
        [acc("acc-a"), acc("acc-b")],
        [offer("a", "p1", "acc-a", price=1.0), offer("b", "p2", "acc-b", price=1.1)],
        [inference("w", 40, {"acc-a": (1, 10.0), "acc-b": (1, 10.0)})],
        policy={"max_spend_share": {"provider": 0.6}},
    )
    milp = build_milp(build_candidates(spec), spec.policy)
    v = greedy_plan(milp)
    assert v is not None and feasible(milp, v)
    assert list(v[milp.cols["u"]]) == [2.0, 2.0]
    assert milp.cost @ v == pytest.approx(2 * 730 + 2 * 803)
    exact = solve_milp(milp, SolveOptions())
    assert exact.status == Status.OPTIMAL and exact.objective == pytest.approx(3066, rel=1e-6)


def _synthetic(n_w: int, n_o: int, seed: int):
    from conftest import load_bench

    module = load_bench("plan_scale")
    return build_spec(module.generate(n_w, n_o, np.random.default_rng([seed, n_w, n_o])))


def test_a_large_solve_stopped_at_once_still_returns_the_greedy_plan():
    """A mid-size synthetic fleet (spend caps, survival, training, api; ~6,000 integer
    columns, so the LP plan path runs) given 0.01 s: neither the LP nor the search has time,
    and the answer is the greedy plan, `feasible`, with no bound; every row holds and the
    plan's total equals a recomputation from its allocations."""
    from test_plan_property import check_plan

    spec = _synthetic(40, 200, 0)
    cand = build_candidates(spec)
    milp = build_milp(cand, spec.policy)
    assert int(milp.integer.sum()) > SolveOptions().rounding_start_above
    began = time.perf_counter()
    sol = solve_milp(milp, SolveOptions(time_limit_s=0.01))
    assert time.perf_counter() - began < 5.0
    assert sol.status == Status.FEASIBLE and sol.method == "greedy"
    assert feasible(milp, sol.values)
    assert np.isnan(sol.gap)  # no LP, no bound: said, not guessed
    result = solve_candidates(cand, spec, SolveOptions(time_limit_s=0.01))
    out = result.to_dict()
    assert out["status"] == "feasible" and out["method"] == "greedy" and out["gap"] is None
    check_plan(spec, out)  # every allocation's cost and the total, recomputed by hand
    assert out["total_usd"] == pytest.approx(float(milp.cost @ sol.values), abs=0.01)


def test_with_time_the_search_improves_on_the_greedy_plan():
    """The same fleet with 3 s: the LP bound is known and the plan is no dearer than the
    greedy one (the search starts from it), and within its reported gap of that bound."""
    spec = _synthetic(40, 200, 0)
    milp = build_milp(build_candidates(spec), spec.policy)
    greedy = greedy_plan(milp)
    assert greedy is not None
    sol = solve_milp(milp, SolveOptions(time_limit_s=3.0))
    assert sol.status in (Status.OPTIMAL, Status.FEASIBLE) and feasible(milp, sol.values)
    assert sol.objective <= milp.objective @ greedy * (1 + 1e-9)
