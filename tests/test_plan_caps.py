"""Dilution-proof lock-in caps (``policy.max_share``: share of each service's peak capacity).

docs/planning-model.md, constraint 4.  The share-of-spend cap (``max_spend_share``) is
tested in test_plan_constraints.py; here the capacity caps and what separates them.
"""

from __future__ import annotations

import pytest

from test_plan_constraints import (
    API_WORKLOAD,
    MONTH_H,
    acc,
    allocs,
    api_offer,
    inference,
    make,
    offer,
    solve,
    training,
    two_offers,
)


def test_provider_capacity_cap_splits_peak_capacity_not_spend() -> None:
    # D = 6; o1 $1/rps at p1, o2 $2/rps at p2.  Cap 0.5 of peak capacity: each provider
    # serves at most 3 rps -> x1 = 3, x2 = 3: 3 x 730 + 3 x 1460 = $6570.  (A spend cap of
    # 0.5 gives $5840 with p1 serving 4 of 6 rps: 67% of the service at one provider.)
    result = solve(two_offers(rps=6, max_share={"provider": 0.5}), with_explain=True)
    assert result["total_usd"] == pytest.approx(9 * MONTH_H)
    a = allocs(result, "w")
    assert (a["o1"]["replicas"], a["o2"]["replicas"]) == (3, 3)
    assert result["capacity_shares"]["provider"] == pytest.approx({"p1": 0.5, "p2": 0.5})
    # uncapped 6 x 730 = $4380
    assert result["explain"]["lock_in_premium_usd"] == pytest.approx(9 * MONTH_H - 6 * MONTH_H)


def test_spend_cap_is_met_by_dilution_and_the_capacity_cap_is_not() -> None:
    # D = 10.  o1 at p1: one replica serves all 10 rps for $730.  o2 at p2: 1 rps for $730.
    # max_spend_share 0.5: one replica at each ($1460): the o2 replica only dilutes p1's
    # share of spend (capacity 11 for a peak of 10): dilution $1460 - $730 = $730.
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-b")],
        [inference("w", 10, {"acc-a": (1, 10.0), "acc-b": (1, 1.0)})],
        policy={"max_spend_share": {"provider": 0.5}},
    )
    spend = solve(spec, with_explain=True)
    assert spend["total_usd"] == pytest.approx(2 * MONTH_H)
    assert spend["explain"]["dilution_usd"] == pytest.approx(MONTH_H)
    assert spend["capacity_shares"]["provider"]["p1"] == pytest.approx(1.0)  # not diversified
    # max_share 0.6 with o1's replica at 20 rps: p1 may serve 6 rps, less than one replica,
    # and p2 at most 6 of 10: infeasible (found before any solve: only p2 can hold 60%).
    capped = solve(
        make(
            [acc("acc-a"), acc("acc-b", "vb")],
            [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-b")],
            [inference("w", 10, {"acc-a": (1, 20.0), "acc-b": (1, 1.0)})],
            policy={"max_share": {"provider": 0.6}},
        )
    )
    assert capped["status"] == "infeasible"
    assert capped["infeasible"]["family"] == "lock-in"
    assert capped["infeasible"]["subject"] == "w"
    assert (
        "only 1 provider(s) can hold a share that small, at most 60% of its peak"
        in (capped["infeasible"]["message"])
    )


def test_vendor_capacity_cap_counts_replicas_by_chip_vendor() -> None:
    # One provider, two vendors: va $1/rps, vb $2/rps; D = 6; vendor cap 0.5 -> 3 + 3: $6570
    spec = make(
        [acc("acc-a", "va"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p1", "acc-b", price=2.0)],
        [inference("w", 6, {"acc-a": (1, 1.0), "acc-b": (1, 1.0)})],
        policy={"max_share": {"vendor": 0.5}},
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(9 * MONTH_H)
    assert result["capacity_shares"]["vendor"] == pytest.approx({"va": 0.5, "vb": 0.5})
    assert result["capacity_shares"]["provider"] == pytest.approx({"p1": 1.0})


def test_api_workload_is_capped_by_its_demand_share() -> None:
    # 10 Mtok in + 5 out a month: a1 at pa $1/$1 = $15, a2 at pb $2/$2 = $30.
    # Provider cap 0.6: 0.6 from a1 + 0.4 from a2 = 9 + 12 = $21.
    spec = make(
        [],
        [],
        [API_WORKLOAD],
        api_offers=[api_offer("a1", "pa"), api_offer("a2", "pb", pin=2, pout=2)],
        policy={"max_share": {"provider": 0.6}},
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(21.0, abs=1e-4)
    a = allocs(result, "w")
    assert a["a1"]["share"] == pytest.approx(0.6)
    assert a["a2"]["share"] == pytest.approx(0.4)


def test_training_jobs_are_not_counted_by_max_share() -> None:
    # A job runs on one offer: max_share 0.5 does not split or forbid it.
    spec = make([acc("acc-a")], [offer("o1", "p1", "acc-a", avail=100)], [training()],
                policy={"max_share": {"provider": 0.5}})  # fmt: skip
    result = solve(spec)
    assert result["status"] == "optimal"
    assert set(allocs(result, "t")) == {"o1"}
    assert result["capacity_shares"]["provider"] == {}


def test_a_cap_no_whole_replica_fits_is_infeasible_without_a_solve() -> None:
    # D = 10, cap 0.5: p1's replica (4 rps) fits under 5 rps, p2's (6 rps) does not, so at
    # most 1 x 50% of the peak can be placed: infeasible, naming the workload.
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-b")],
        [inference("w", 10, {"acc-a": (1, 4.0), "acc-b": (1, 6.0)})],
        policy={"max_share": {"provider": 0.5}},
    )
    result = solve(spec)
    assert result["status"] == "infeasible"
    assert (result["infeasible"]["family"], result["infeasible"]["subject"]) == ("lock-in", "w")
    assert (
        "only 1 provider(s) can hold a share that small, at most 50% of its peak"
        in (result["infeasible"]["message"])
    )


def test_fallback_quota_counts_for_survival_where_the_normal_limit_is_not_the_emergency_one() -> None:
    # As test_limited_api_offer_contributes_its_cap_in_requests_per_s, but the offer has no
    # normal limit and an emergency quota of 18,000 tokens/min = 1.5 rps (200 tokens x 60):
    # without p1: 2 x2 + 1.5 >= 2.5 -> x2 = 1; without p2: x1 + 1.5 >= 2.5; demand x1 + 2 x2
    # >= 5 -> x1 = 3: (3 + 2.5) x 730 = $4015; survival (2 + 1.5)/5 = 0.7 and (3 + 1.5)/5 = 0.9.
    a1 = api_offer("a1", "pa", pin=100, pout=100) | {"fallback_tokens_per_minute": 18_000}
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-b", price=2.5)],
        [inference("w", 5, {"acc-a": (1, 1.0), "acc-b": (1, 2.0)})],
        api_offers=[a1],
        policy={"survive_provider_loss": 0.5},
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(5.5 * MONTH_H)
    assert result["survival"] == pytest.approx({"p1": 0.7, "p2": 0.9})
    (fb,) = result["workloads"][0]["api_fallbacks"]
    assert (fb["offer"], fb["requests_per_s"], fb["tokens_per_minute"]) == ("a1", 1.5, 18_000)
    relied = {r["offer"]: r for r in result["workloads"][0]["survival"]["p1"]["relies_on"]}
    assert relied["a1"]["kind"] == "api-fallback"
    assert relied["a1"]["requests_per_s"] == pytest.approx(1.5)


def test_table_names_the_fallback_and_the_dilution(tmp_path) -> None:
    import yaml

    from conftest import run_cli, write_spec

    # D = 5: o1 at p1 $730 per 1 rps, o2 at p2 $1,825 per 2 rps, unlimited api fallback a1 at
    # $0.02 a request.  Spend cap 0.9 at p1: 5 x o1 ($3,650) is all p1, so 3 x o1 + 1 x o2 =
    # $4,015 (p1 54.5%): $365 over $3,650 only to dilute.  Losing p1 leaves 2 of 5 rps: a1
    # carries 3 rps x 2,628,000 s x $0.02 = $157,680 a month of outage.
    doc = {
        "catalog": "none",
        "accelerators": [acc("acc-a"), acc("acc-b", "vb")],
        "offers": [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-b", price=2.5)],
        "api_offers": [api_offer("a1", "pa", pin=100, pout=100)],
        "workloads": [inference("w", 5, {"acc-a": (1, 1.0), "acc-b": (1, 2.0)})],
        "policy": {
            "survive_provider_loss": 0.5,
            "api_fallback": "unlimited",
            "max_spend_share": {"provider": 0.9},
        },
    }
    result = run_cli("plan", write_spec(tmp_path, yaml.safe_dump(doc)), "--explain", "--format", "json")
    data = __import__("json").loads(result.stdout)
    assert data["total_usd"] == pytest.approx(5.5 * MONTH_H)
    assert data["explain"]["dilution_usd"] == pytest.approx(0.5 * MONTH_H)
    table = run_cli("plan", write_spec(tmp_path, yaml.safe_dump(doc)), "--explain").stdout
    assert "api fallback carrying the loss" in table and "w: a1 $157.7k" in table
    assert "spend only diluting max_spend_share" in table
