"""Monte Carlo risk: hand-computed re-dispatch on a tiny plan, oracles, seeds, invariants."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from polyfleet.risk import (
    Outcome,
    PlanDataError,
    RiskAssumptions,
    Scenarios,
    analyse,
    draw_scenarios,
    evaluate,
    fleet_from_plan,
    monte_carlo,
    provider_down,
)
from polyfleet.risk.engine import chunks
from polyfleet.risk.reference import evaluate_loop
from polyfleet.risk.scenarios import breakpoints

#: no randomness at all: every scenario is the plan as bought
CALM = RiskAssumptions(
    outage_probability_per_month=0,
    capacity_shock_probability_per_month=0,
    chip_delay_probability=0,
    spot_price_volatility_per_sqrt_month=0,
    on_demand_price_volatility_per_sqrt_month=0,
)


def tiny_plan() -> dict[str, Any]:
    """Inference 'chat' (peak 100 req/s) on 60 req/s at A (spot, $600) + 60 at B (reserved, $600);
    training 'train' at A (500 h of a 720 h deadline, on-demand, $1000); api 'office' 100 Mtok at C ($300)."""
    return {
        "status": "optimal",
        "horizon_months": 1,
        "total_usd": 2500.0,
        "workloads": [
            {
                "name": "chat",
                "kind": "inference",
                "demand": {"requests_per_s": 50, "peak_requests_per_s": 100},
                "usd": 1200.0,
                "allocations": [
                    {"provider": "A", "accelerator": "x1", "term": "spot", "requests_per_s": 60, "usd": 600},
                    {
                        "provider": "B",
                        "accelerator": "x2",
                        "term": "reserved-1y",
                        "requests_per_s": 60,
                        "usd": 600,
                    },
                ],
            },
            {
                "name": "train",
                "kind": "training",
                "demand": {"tokens_b": 10, "deadline_days": 30},
                "usd": 1000.0,
                "allocations": [
                    {"provider": "A", "accelerator": "x1", "term": "on-demand", "run_hours": 500, "usd": 1000}
                ],
            },
            {
                "name": "office",
                "kind": "api",
                "demand": {"mtok_in_per_month": 80, "mtok_out_per_month": 20},
                "usd": 300.0,
                "allocations": [{"provider": "C", "accelerator": None, "share": 1.0, "usd": 300}],
            },
        ],
    }


def scenarios(fleet: Any, assumptions: RiskAssumptions, **arrays: np.ndarray) -> Scenarios:
    """One or more hand-made scenarios; arrays not given are 'nothing happens'."""
    n = len(next(iter(arrays.values()))) if arrays else 1
    p, a, g = len(fleet.providers), len(fleet.accelerators), len(fleet.price_groups)
    return Scenarios(
        outage=np.asarray(arrays.get("outage", np.zeros((n, p))), dtype=float),
        shock=np.asarray(arrays.get("shock", np.zeros((n, p))), dtype=float),
        delay=np.asarray(arrays.get("delay", np.zeros((n, a))), dtype=float),
        price=np.asarray(arrays.get("price", np.ones((n, g))), dtype=float),
        breakpoints=breakpoints(assumptions, fleet.horizon_months),
    )


def test_fleet_indexes_the_plan() -> None:
    fleet = fleet_from_plan(tiny_plan())
    assert fleet.providers == ("A", "B", "C")
    assert fleet.price_groups == (("A", "on-demand"), ("A", "spot"))
    assert fleet.demand.tolist() == [100, 10, 100]  # peak req/s, billion tokens, Mtok over the horizon
    assert fleet.flow_capacity_by_workload.tolist() == [120, 0, 100]
    assert fleet.group_usd.tolist() == [1000, 600]
    assert fleet.total_usd == 2500


def test_one_provider_down_sweep_matches_hand_computation() -> None:
    fleet = fleet_from_plan(tiny_plan())
    out = evaluate(fleet, provider_down(fleet, RiskAssumptions()), RiskAssumptions())
    # A down: chat keeps 60 of 100 -> 40 bought at 2 x ($1200 / 120 req/s) = $800;
    # train loses the whole horizon, slack 220/500 = 0.44 -> 0.56 late, 0.5 bought ($1000), 0.06 unserved.
    # B down: chat short 40 -> $800.  C down: office short 100%, half bought (2 x $300 x 0.5), half unserved.
    assert out.cost_usd.tolist() == pytest.approx([2500 + 800 + 1000, 2500 + 800, 2500 + 300])
    np.testing.assert_allclose(out.unserved, [[0, 0.06, 0], [0, 0, 0], [0, 0, 0.5]], atol=1e-12)
    assert out.emergency_usd.tolist() == pytest.approx([1800, 800, 300])


@pytest.mark.parametrize(
    ("cap", "chat_unserved", "train_cost"),
    [(None, 0.0, 2 * 1000 * 0.56), (0.0, 0.4, 0.0), (0.25, 0.15, 2 * 1000 * 0.25)],
)
def test_emergency_cap_moves_shortfall_between_cost_and_unserved(
    cap: float | None, chat_unserved: float, train_cost: float
) -> None:
    a = RiskAssumptions(emergency_capacity_fraction=cap)
    fleet = fleet_from_plan(tiny_plan())
    out = evaluate(fleet, provider_down(fleet, a), a)
    chat_bought = 40 - 100 * chat_unserved
    assert out.unserved[0, 0] == pytest.approx(chat_unserved)
    assert out.cost_usd[0] == pytest.approx(2500 + 2 * 10 * chat_bought + train_cost)


def test_short_outage_is_weighted_by_its_share_of_the_horizon() -> None:
    a = RiskAssumptions(outage_duration_days=730 * 0.25 / 24)  # a quarter of the month
    fleet = fleet_from_plan(tiny_plan())
    assert breakpoints(a, 1).tolist() == pytest.approx([0.25, 1.0])
    out = evaluate(fleet, scenarios(fleet, a, outage=[[0.25, 0, 0]]), a)
    # chat short 40 req/s for a quarter of the month -> $800 / 4; train loses 0.25 < slack 0.44 -> nothing
    assert out.cost_usd.tolist() == pytest.approx([2500 + 200])
    assert out.unserved.tolist() == [[0, 0, 0]]


def test_chip_delay_and_shock_combine() -> None:
    a = RiskAssumptions(emergency_capacity_fraction=0)
    fleet = fleet_from_plan(tiny_plan())
    # x2 (B) missing all month; A loses half its capacity: chat has 30 of 100 -> 70% unserved;
    # train loses half its time, 0.5 - 0.44 = 0.06 late
    out = evaluate(fleet, scenarios(fleet, a, shock=[[0.5, 0, 0]], delay=[[0, 1.0]]), a)
    np.testing.assert_allclose(out.unserved, [[0.7, 0.06, 0]], atol=1e-12)
    assert out.cost_usd.tolist() == pytest.approx([2500])


def test_price_moves_scale_only_spot_and_on_demand_spend() -> None:
    fleet = fleet_from_plan(tiny_plan())
    out = evaluate(fleet, scenarios(fleet, CALM, price=[[1.1, 2.0]]), CALM)  # (A on-demand, A spot)
    assert out.cost_usd.tolist() == pytest.approx([600 + 300 + 1000 * 1.1 + 600 * 2.0])


def test_vectorised_matches_per_scenario_loop_on_random_scenarios() -> None:
    a = RiskAssumptions(
        outage_probability_per_month=0.3,
        capacity_shock_probability_per_month=0.4,
        chip_delay_probability=0.3,
        chip_delay_max_months=3,
        outage_duration_days=5,
    )
    plan = tiny_plan()
    plan["horizon_months"] = 2.5
    fleet = fleet_from_plan(plan)
    sc = draw_scenarios(np.random.default_rng(7), fleet, a, 300)
    fast, slow = evaluate(fleet, sc, a), evaluate_loop(fleet, sc, a)
    assert (sc.outage > 0).any() and (sc.delay > 0).any() and (sc.shock > 0).any()
    np.testing.assert_allclose(fast.cost_usd, slow.cost_usd, rtol=1e-12)
    np.testing.assert_allclose(fast.unserved, slow.unserved, atol=1e-12)


def test_calm_assumptions_give_the_plan_exactly() -> None:
    fleet = fleet_from_plan(tiny_plan())
    out = monte_carlo(fleet, CALM, 5000, seed=1)
    assert np.all(out.cost_usd == pytest.approx(2500))
    assert not out.unserved.any()


def test_seed_reproduces_and_runs_extend_by_chunks() -> None:
    fleet = fleet_from_plan(tiny_plan())
    a = RiskAssumptions(outage_probability_per_month=0.2)
    first, again = monte_carlo(fleet, a, 6000, seed=3), monte_carlo(fleet, a, 6000, seed=3)
    np.testing.assert_array_equal(first.cost_usd, again.cost_usd)
    other = monte_carlo(fleet, a, 6000, seed=4)
    assert not np.array_equal(first.cost_usd, other.cost_usd)
    longer = monte_carlo(fleet, a, 9000, seed=3)  # chunk i always draws from the same stream
    np.testing.assert_array_equal(longer.cost_usd[:4096], first.cost_usd[:4096])
    assert [c for _, c in chunks(9000)] == [4096, 4096, 808]


def test_invariants_on_random_draws() -> None:
    fleet = fleet_from_plan(tiny_plan())
    a = RiskAssumptions(outage_probability_per_month=0.3, capacity_shock_probability_per_month=0.5)
    out = monte_carlo(fleet, a, 8000, seed=0)
    assert (out.unserved >= 0).all() and (out.unserved <= 1).all()
    assert (out.emergency_usd >= 0).all()
    assert out.outage.shape == (8000, 3)
    # outage rate per provider close to its probability (binomial sd ~0.005)
    assert out.outage.mean(axis=0) == pytest.approx([0.3] * 3, abs=0.02)


def test_cost_and_unserved_monotone_in_shock_size() -> None:
    a = RiskAssumptions(emergency_capacity_fraction=0.2)
    fleet = fleet_from_plan(tiny_plan())
    sizes = np.linspace(0, 1, 21)
    shock = np.stack([sizes, sizes, sizes], axis=1)
    out = evaluate(fleet, scenarios(fleet, a, shock=shock), a)
    assert (np.diff(out.cost_usd) >= -1e-9).all() and out.cost_usd[-1] > out.cost_usd[0]
    assert (np.diff(out.unserved.sum(axis=1)) >= -1e-12).all() and out.unserved[-1].sum() > 0


def test_price_draws_have_mean_one_and_spot_moves_more() -> None:
    plan = tiny_plan()
    fleet = fleet_from_plan(plan)
    sc = draw_scenarios(np.random.default_rng(0), fleet, RiskAssumptions(), 200_000)
    on_demand, spot = sc.price[:, 0], sc.price[:, 1]
    assert on_demand.mean() == pytest.approx(1, abs=0.002) and spot.mean() == pytest.approx(1, abs=0.005)
    assert np.log(spot).std() == pytest.approx(0.25, rel=0.02)
    assert np.log(on_demand).std() == pytest.approx(0.03, rel=0.02)


def test_chip_delay_override_per_accelerator() -> None:
    fleet = fleet_from_plan(tiny_plan())
    a = RiskAssumptions(chip_delay_probability=0, chip_delay_probability_by_accelerator={"x2": 0.5})
    sc = draw_scenarios(np.random.default_rng(0), fleet, a, 20_000)
    assert not sc.delay[:, 0].any()
    assert (sc.delay[:, 1] > 0).mean() == pytest.approx(0.5, abs=0.02)


def test_analyse_reports_quantiles_and_worst_provider() -> None:
    fleet = fleet_from_plan(tiny_plan())
    report = analyse(fleet, RiskAssumptions(outage_probability_per_month=0.3), 4000, seed=0)
    assert report["p95_usd"] >= report["expected_usd"] >= report["plan_usd"] - 1e-6
    # ranked by mean unserved fraction over workloads: C loses half of office (0.5 / 3) while A
    # costs most ($1800) but leaves only 6% of training unserved (0.06 / 3)
    assert report["worst_provider"] == "C"
    assert [row["provider"] for row in report["providers"]] == ["C", "A", "B"]
    by = {row["provider"]: row for row in report["providers"]}
    assert by["A"]["down_extra_usd"] == pytest.approx(1800)
    assert by["C"]["down_unserved_fraction"] == {"inference": 0, "api": 0.5, "training": 0}
    assert report["unserved"]["inference"]["demand_requests_per_s"] == 100
    assert 0 <= report["unserved"]["api"]["expected_fraction"] <= report["unserved"]["api"]["p99_fraction"]


def test_outcome_concat_keeps_order() -> None:
    one = Outcome(np.array([1.0]), np.array([0.0]), np.zeros((1, 2)), np.zeros((1, 1), bool))
    two = Outcome(np.array([2.0, 3.0]), np.array([0.0, 1.0]), np.ones((2, 2)), np.ones((2, 1), bool))
    joined = Outcome.concat([one, two])
    assert joined.cost_usd.tolist() == [1, 2, 3] and joined.unserved.shape == (3, 2)


@pytest.mark.parametrize(
    ("edit", "path", "words"),
    [
        (lambda p: p.update(status="infeasible"), ("status",), "status optimal or feasible"),
        (lambda p: p["workloads"][0].pop("demand"), ("workloads", 0, "demand"), "required field"),
        (
            lambda p: p["workloads"][0]["allocations"][1].update(usd="x"),
            ("workloads", 0, "allocations", 1, "usd"),
            "a number",
        ),
        (
            lambda p: p["workloads"][1]["allocations"].append({}),
            ("workloads", 1, "allocations"),
            "one allocation",
        ),
        (
            lambda p: p["workloads"][2].update(kind="batch"),
            ("workloads", 2, "kind"),
            "inference, training or api",
        ),
        (
            lambda p: p["workloads"][0]["allocations"][0].update(requests_per_s=-1),
            ("workloads", 0, "allocations", 0, "requests_per_s"),
            ">= 0",
        ),
    ],
)
def test_bad_plan_names_the_field(edit: Any, path: tuple, words: str) -> None:
    plan = copy.deepcopy(tiny_plan())
    edit(plan)
    with pytest.raises(PlanDataError) as info:
        fleet_from_plan(plan)
    assert info.value.path == path and words in info.value.message
