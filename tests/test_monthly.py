"""Monthly plans (issue 6): growth, late and uncertain arrivals, reserved terms, porting,
one placement per training job, and caps every month — each against a hand-computed plan.

A month is 730 h, so one 1-chip instance at $1/chip-hour costs $730 a month.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

import polyfleet
from conftest import run_cli, write_spec
from polyfleet.errors import SpecError
from polyfleet.spec import build_spec
from test_plan_constraints import MONTH_H, TRAIN_USD_PER_DOLLAR_HOUR, acc, inference, offer, training


def monthly(months: int, offers: list[dict], workloads: list[dict], **extra: Any) -> dict[str, Any]:
    """A monthly spec; moves between months are free unless a test's policy says otherwise
    (the hand-computed figures below predate the move cost; it has its own tests)."""
    return {
        "horizon_months": months,
        "periods": "monthly",
        "catalog": "none",
        "accelerators": [acc("acc-a"), acc("acc-b", "vb") | {"stack": "rocm"}],
        "offers": offers,
        "workloads": workloads,
        "policy": {"move_hours_per_chip": 0},
        **extra,
    }


def solve(doc: dict[str, Any]) -> dict[str, Any]:
    return polyfleet.plan(build_spec(doc)).to_dict()


def replicas(result: dict[str, Any], workload: str, offer_id: str) -> list[int]:
    """Replicas of ``workload`` on ``offer_id`` in each month."""
    out = []
    for month in result["months"]:
        (w,) = [w for w in month["workloads"] if w["name"] == workload]
        out.append(sum(a["replicas"] for a in w["allocations"] if a["offer"] == offer_id))
    return out


ONE_RPS = {"acc-a": (1, 1.0), "acc-b": (1, 1.0)}


def test_growth_sizes_every_month() -> None:
    # D = 10 x 1.1^t: 10, 11, 12.1 -> 10, 11, 13 replicas at $730
    doc = monthly(3, [offer("o1", "p1", "acc-a")], [inference("w", 10, ONE_RPS, growth_per_month=0.1)])
    result = solve(doc)
    assert result["status"] == "optimal" and result["periods"] == "monthly"
    assert replicas(result, "w", "o1") == [10, 11, 13]
    assert result["total_usd"] == pytest.approx((10 + 11 + 13) * MONTH_H)
    assert [m["total_usd"] for m in result["months"]] == pytest.approx(
        [10 * MONTH_H, 11 * MONTH_H, 13 * MONTH_H]
    )


def test_explicit_monthly_demand() -> None:
    doc = monthly(
        3, [offer("o1", "p1", "acc-a")], [inference("w", 4, ONE_RPS, requests_per_s_by_month=[4, 8, 2])]
    )
    assert replicas(solve(doc), "w", "o1") == [4, 8, 2]


def test_capacity_arrives_late_and_the_plan_moves_to_it() -> None:
    # own chips ($0.5) usable from month 2; before that the cloud ($2)
    offers = [
        offer("cloud", "p1", "acc-a", price=2.0),
        offer("own", "p2", "acc-a", price=0.5) | {"available_from_month": 2},
    ]
    result = solve(monthly(4, offers, [inference("w", 5, ONE_RPS)]))
    assert replicas(result, "w", "cloud") == [5, 5, 0, 0]
    assert replicas(result, "w", "own") == [0, 0, 5, 5]
    assert result["total_usd"] == pytest.approx((2 * 5 * 2.0 + 2 * 5 * 0.5) * MONTH_H)
    assert any("month 2: w: +own (5)" in line and "-cloud" in line for line in result["schedule"])
    assert result["first_usable_month"] == {"own": 2}


@pytest.mark.parametrize(("quantile", "first"), [(0.5, 1), (0.9, 3), (1.0, 3)])
def test_uncertain_arrival_is_planned_at_the_policy_quantile(quantile: float, first: int) -> None:
    late = offer("own", "p2", "acc-a", price=0.5) | {"arrival_month_probabilities": {1: 0.5, 3: 0.5}}
    doc = monthly(4, [offer("cloud", "p1", "acc-a", price=2.0), late], [inference("w", 5, ONE_RPS)],
                  policy={"plan_arrival_quantile": quantile})  # fmt: skip
    result = solve(doc)
    assert replicas(result, "w", "own") == [0] * first + [5] * (4 - first)


def test_reserved_term_holds_capacity_and_charges_months_past_the_horizon() -> None:
    # demand 10, 5, 5.  Reserved-1y at $0.1 vs on-demand at $1.5.
    #   reserve 10 in month 0: 12 months x 10 x $0.1 = 12 x $730 (9 of them after the horizon)
    #   reserve 5 + 5 on-demand in month 0: 6 + 7.5 = 13.5 x $730;  on-demand only: 30 x $730
    offers = [
        offer("od", "p1", "acc-a", price=1.5),
        offer("res", "p2", "acc-a", price=0.1) | {"term": "reserved-1y"},
    ]
    result = solve(monthly(3, offers, [inference("w", 10, ONE_RPS, requests_per_s_by_month=[10, 5, 5])]))
    assert result["total_usd"] == pytest.approx(12 * MONTH_H)
    (res,) = [p for p in result["purchases"] if p["offer"] == "res"]
    assert res["instances_by_month"] == [10, 10, 10]  # held while only 5 are used
    assert replicas(result, "w", "res") == [10, 5, 5]
    assert result["commitments"] == [
        {
            "offer": "res",
            "month": 0,
            "instances": 10,
            "term": "reserved-1y",
            "usd_after_horizon": pytest.approx(9 * MONTH_H),
        }
    ]
    assert result["commitment_usd_after_horizon"] == pytest.approx(9 * MONTH_H)


def test_porting_is_paid_once_and_only_when_worth_it() -> None:
    # rocm offer at $1 vs cuda at $2, 5 replicas for 3 months: saving 15 x $730 = $10,950
    offers = [offer("cuda", "p1", "acc-a", price=2.0), offer("rocm", "p2", "acc-b")]
    cheap = solve(monthly(3, offers, [inference("w", 5, ONE_RPS, port_usd_by_stack={"rocm": 5000})]))
    assert replicas(cheap, "w", "rocm") == [5, 5, 5]
    assert cheap["porting"] == [{"workload": "w", "stack": "rocm", "usd": 5000.0}]
    assert cheap["total_usd"] == pytest.approx(15 * MONTH_H + 5000)
    dear = solve(monthly(3, offers, [inference("w", 5, ONE_RPS, port_usd_by_stack={"rocm": 20000})]))
    assert replicas(dear, "w", "cuda") == [5, 5, 5] and dear["porting"] == []
    assert dear["total_usd"] == pytest.approx(30 * MONTH_H)


def test_training_is_placed_once_and_charged_once() -> None:
    # the toy job runs 16.67 h: all of it in month 0, $33.33 at $1
    doc = monthly(2, [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-a", price=2.0)], [training()])
    result = solve(doc)
    assert result["total_usd"] == pytest.approx(TRAIN_USD_PER_DOLLAR_HOUR, abs=0.01)
    placements = [[a["offer"] for w in m["workloads"] for a in w["allocations"]] for m in result["months"]]
    assert placements == [["o1"], ["o1"]]


def test_lock_in_cap_and_survival_hold_every_month() -> None:
    offers = [
        offer("o1", "p1", "acc-a"),
        offer("o2", "p2", "acc-a", price=2.0),
        offer("o3", "p3", "acc-a", price=3.0),
    ]
    doc = monthly(3, offers, [inference("w", 10, ONE_RPS, growth_per_month=0.3)],
                  policy={"max_share": {"provider": 0.5}, "survive_provider_loss": 0.5})  # fmt: skip
    result = solve(doc)
    assert result["status"] == "optimal"
    for month in result["months"]:
        assert max(month["capacity_shares"]["provider"].values()) <= 0.5 + 1e-6
        assert min(month["survival"].values()) >= 0.5 - 1e-6


def test_budget_covers_the_whole_horizon_and_infeasible_names_the_month() -> None:
    doc = monthly(
        2, [offer("o1", "p1", "acc-a", avail=10)], [inference("w", 10, ONE_RPS, growth_per_month=0.5)]
    )
    result = solve(doc)
    assert result["status"] == "infeasible"
    assert result["infeasible"]["message"].startswith("month 1:")
    over = monthly(
        2, [offer("o1", "p1", "acc-a")], [inference("w", 10, ONE_RPS)], policy={"budget_usd": 19 * MONTH_H}
    )
    assert solve(over)["status"] == "infeasible"
    assert solve(over | {"policy": {"budget_usd": 20 * MONTH_H}})["status"] == "optimal"


@pytest.mark.parametrize(
    ("change", "path", "message"),
    [
        ({"periods": "single"}, "workloads[0].growth_per_month", "needs `periods: monthly`"),
        ({"horizon_months": 2.5}, "horizon_months", "whole number of months"),
        ({"workloads": [inference("w", 4, ONE_RPS, requests_per_s_by_month=[1, 2])]},
         "workloads[0].requests_per_s_by_month", "expected 3 values"),
    ],
)  # fmt: skip
def test_bad_monthly_input_is_one_line(tmp_path, change: dict, path: str, message: str) -> None:
    doc = (
        monthly(3, [offer("o1", "p1", "acc-a")], [inference("w", 4, ONE_RPS, growth_per_month=0.1)]) | change
    )
    spec = write_spec(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(SpecError):
        polyfleet.load_spec(spec)
    result = run_cli("plan", str(spec))
    assert result.exit_code == 2
    assert path in result.stderr and message in result.stderr


def test_cli_table_and_explain(tmp_path) -> None:
    offers = [
        offer("cloud", "p1", "acc-a", price=2.0),
        offer("own", "p2", "acc-a", price=0.5) | {"available_from_month": 1},
    ]
    spec = write_spec(
        tmp_path, yaml.safe_dump(monthly(2, offers, [inference("w", 5, ONE_RPS)]), sort_keys=False)
    )
    table = run_cli("plan", str(spec))
    assert table.exit_code == 0, table.stderr
    assert "Schedule" in table.stdout and "month 1: w: +own (5)" in table.stdout
    explained = run_cli("plan", str(spec), "--explain")
    assert explained.exit_code == 2 and "single-period" in explained.stderr


def test_risk_stresses_one_month_of_a_monthly_plan(tmp_path) -> None:
    offers = [
        offer("cloud", "p1", "acc-a", price=2.0),
        offer("own", "p2", "acc-a", price=0.5) | {"available_from_month": 1},
    ]
    spec = write_spec(
        tmp_path, yaml.safe_dump(monthly(2, offers, [inference("w", 5, ONE_RPS)]), sort_keys=False)
    )
    plan_path = tmp_path / "plan.json"
    assert run_cli("plan", str(spec), "--format", "json", "--out", str(plan_path)).exit_code == 0
    no_month = run_cli("risk", str(plan_path), "--scenarios", "100")
    assert no_month.exit_code == 2 and "--month 0..1" in no_month.stderr
    import json

    for month, provider in ((0, "p1"), (1, "p2")):
        result = run_cli(
            "risk", str(plan_path), "--scenarios", "100", "--month", str(month), "--format", "json"
        )
        assert result.exit_code == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["plan_usd"] == pytest.approx(5 * MONTH_H * (2.0 if month == 0 else 0.5))
        assert [p["provider"] for p in report["providers"]] == [provider]


def test_reserved_instances_kept_past_their_term_are_a_new_commitment() -> None:
    # 14 months, 1 rps; reserved-1y $0.1 vs on-demand $1.5.  Renewing at month 12 commits
    # another 12 months (10 past the horizon): 24 x $73 = $1,752, cheaper than 12 reserved +
    # 2 on-demand months ($876 + $2,190).  Holding on without renewing must not be free.
    offers = [
        offer("od", "p1", "acc-a", price=1.5),
        offer("res", "p2", "acc-a", price=0.1) | {"term": "reserved-1y"},
    ]
    result = solve(monthly(14, offers, [inference("w", 1, ONE_RPS)]))
    assert result["total_usd"] == pytest.approx(24 * 0.1 * MONTH_H)
    assert [(c["month"], c["instances"]) for c in result["commitments"]] == [(0, 1), (12, 1)]
    assert result["commitment_usd_after_horizon"] == pytest.approx(10 * 0.1 * MONTH_H)


def test_training_does_not_borrow_reserved_capacity_without_committing() -> None:
    # a reserved-3y instance is committed whole for 36 months; the 16.67-hour job goes on-demand
    offers = [offer("od", "p1", "acc-a"), offer("res", "p2", "acc-a", price=0.1) | {"term": "reserved-3y"}]
    result = solve(monthly(2, offers, [training()]))
    (alloc,) = result["months"][0]["workloads"][0]["allocations"]
    assert alloc["offer"] == "od" and result["commitments"] == []
    assert result["total_usd"] == pytest.approx(TRAIN_USD_PER_DOLLAR_HOUR, abs=0.01)


def test_horizon_purchases_add_up_to_the_total_and_shares_to_one() -> None:
    offers = [
        offer("od", "p1", "acc-a", price=1.5),
        offer("res", "p2", "acc-a", price=0.1) | {"term": "reserved-1y"},
        offer("rocm", "p3", "acc-b", price=0.05),
    ]
    doc = monthly(3, offers, [inference("w", 10, ONE_RPS, requests_per_s_by_month=[10, 5, 5],
                                        port_usd_by_stack={"rocm": 100})])  # fmt: skip
    result = solve(doc)
    assert sum(p["usd"] for p in result["purchases"]) == pytest.approx(result["total_usd"], abs=0.05)
    assert sum(result["shares"]["provider"].values()) == pytest.approx(1.0, abs=1e-5)
    assert any(p["term"] == "one-off" and p["usd"] == 100 for p in result["purchases"]) == bool(
        result["porting"]
    )


def test_each_month_reports_its_own_demand() -> None:
    api_offer = {"id": "api", "provider": "pa", "model": "m-api", "usd_per_mtok_in": 1, "usd_per_mtok_out": 1}
    api = {"name": "a", "kind": "api", "model": "m-api", "mtok_in_per_month": 10, "mtok_out_per_month": 5,
           "growth_per_month": 0.5}  # fmt: skip
    doc = monthly(3, [offer("o1", "p1", "acc-a")], [inference("w", 10, ONE_RPS, growth_per_month=0.1), api],
                  api_offers=[api_offer])  # fmt: skip
    months = solve(doc)["months"]
    w2, a2 = (w["demand"] for w in months[2]["workloads"])
    assert w2 == {"requests_per_s": pytest.approx(12.1), "peak_requests_per_s": pytest.approx(12.1)}
    assert a2 == {"mtok_in_per_month": pytest.approx(22.5), "mtok_out_per_month": pytest.approx(11.25)}


def test_egress_is_paid_once_in_the_first_month() -> None:
    # a 1,111-hour job spans two months; moving its 1,000 GB at $0.1 costs $100, in month 0 only
    job = training() | {"tokens_b": 666.7, "deadline_days": 60, "data_gb": 1000, "data_at": "p9"}
    doc = monthly(2, [offer("o1", "p1", "acc-a")], [job], egress=[{"provider": "p9", "usd_per_gb": 0.1}])
    result = solve(doc)
    m0, m1 = ((w["allocations"][0]) for m in result["months"] for w in m["workloads"])
    run_usd = result["total_usd"] - 100
    share0 = min(m0["run_hours"], MONTH_H) / m0["run_hours"]
    assert m0["usd"] == pytest.approx(run_usd * share0 + 100, abs=0.05)
    assert m1["usd"] == pytest.approx(run_usd * (1 - share0), abs=0.05)
    assert m0["egress_usd"] == 100 and "egress_usd" not in m1


# --- moving capacity between months (issue 13) ---------------------------------------------


def _switch(move_hours: float | None) -> dict[str, Any]:
    """o1 ($1.00/chip-h) arrives in month 1; o2 ($1.01) is there from month 0; D = 1 rps."""
    o1 = offer("o1", "p1", "acc-a") | {"available_from_month": 1}
    o2 = offer("o2", "p1", "acc-a", price=1.01)
    policy = {"max_spot_share": 1.0} if move_hours is None else {"move_hours_per_chip": move_hours}
    return monthly(2, [o1, o2], [inference("w", 1, ONE_RPS)], policy=policy)


def test_moving_capacity_costs_what_the_policy_states() -> None:
    # Free moves: month 0 on o2 ($737.30), month 1 on o1 ($730): $1,467.30.
    free = solve(_switch(0))
    assert free["total_usd"] == pytest.approx(737.3 + 730)
    assert replicas(free, "w", "o1") == [0, 1]
    # The default 24 h per chip: moving to o1 costs 24 x $1 = $24 > the $7.30 it saves, so
    # the plan stays on o2: 2 x $737.30 = $1,474.60 and nothing is moved.
    kept = solve(_switch(None))
    assert kept["total_usd"] == pytest.approx(2 * 737.3)
    assert replicas(kept, "w", "o2") == [1, 1]
    assert kept["move_usd"] == 0
    # 5 h: the move costs $5 < $7.30: it is made and paid (a "moves" purchase row)
    moved = solve(_switch(5))
    assert moved["total_usd"] == pytest.approx(737.3 + 730 + 5)
    assert moved["move_usd"] == pytest.approx(5)
    assert sum(p["usd"] for p in moved["purchases"]) == pytest.approx(moved["total_usd"], abs=0.02)


def test_api_allocation_is_zero_or_at_least_the_minimum_share() -> None:
    # D = 1.01 rps; one replica serves 1.0 for $730 a month.  Per token at $2/Mtok x 200
    # tokens: all of the demand is $1,061.77 a month (dearer than the replica), the missing
    # 0.99% is cheaper than a second replica, but an api allocation is at least 2% of
    # demand: 0.02 in every month.
    doc = monthly(2, [offer("o1", "p1", "acc-a")], [inference("w", 1.01, ONE_RPS)])
    doc["api_offers"] = [
        {"id": "a1", "provider": "pa", "model": "m", "usd_per_mtok_in": 2, "usd_per_mtok_out": 2}
    ]
    result = solve(doc)
    for month in result["months"]:
        (w,) = month["workloads"]
        shares = {a["offer"]: a["share"] for a in w["allocations"]}
        assert shares["a1"] == pytest.approx(0.02)
        assert shares["o1"] == pytest.approx(1 / 1.01, abs=1e-6)
