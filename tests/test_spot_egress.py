"""Spot share caps, spot capacity in survival, and egress for training data (issue 4).

Hand-computed on inline specs (see test_plan_constraints for the units: a month is 730 h).
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

import polyfleet
from conftest import run_cli, write_spec
from polyfleet.errors import SpecError
from polyfleet.plan.build import build_milp
from polyfleet.plan.candidates import build_candidates
from polyfleet.spec import build_spec
from test_plan_constraints import (
    MONTH_H,
    TRAIN_USD_PER_DOLLAR_HOUR,
    acc,
    allocs,
    inference,
    make,
    offer,
    solve,
    training,
)


def spot_offer(offer_id: str, provider: str, accelerator: str, **kw: Any) -> dict[str, Any]:
    return {**offer(offer_id, provider, accelerator, **kw), "term": "spot"}


def spot_and_on_demand(policy: dict | None = None, **workload: Any) -> dict[str, Any]:
    """Spot at p1 for $1, on-demand at p2 for $3; 1 rps per 1-chip replica; D = 10."""
    return {
        "accelerators": [acc("acc-a")],
        "offers": [spot_offer("s1", "p1", "acc-a"), offer("d2", "p2", "acc-a", price=3.0)],
        "workloads": [inference("w", 10, {"acc-a": (1, 1.0)}, **workload)],
        "policy": policy,
    }


def _make(doc: dict[str, Any]):
    return make(doc["accelerators"], doc["offers"], doc["workloads"], policy=doc["policy"])


def test_without_a_spot_cap_everything_goes_to_the_cheaper_spot_offer() -> None:
    result = solve(_make(spot_and_on_demand()))
    a = allocs(result, "w")
    assert list(a) == ["s1"]
    assert a["s1"]["replicas"] == 10 and a["s1"]["term"] == "spot"
    assert result["total_usd"] == pytest.approx(10 * MONTH_H)


def test_policy_spot_cap_moves_the_rest_on_demand() -> None:
    # max 30% of D=10 on spot: on-demand serves >= 7 -> 7 x $3 + 3 x $1 = $24 x 730
    result = solve(_make(spot_and_on_demand({"max_spot_share": 0.3})))
    a = allocs(result, "w")
    assert a["d2"]["replicas"] == 7
    assert a["s1"]["replicas"] == 3
    assert result["total_usd"] == pytest.approx(24 * MONTH_H)
    assert result["policy"]["max_spot_share"] == 0.3


def test_workload_spot_cap_overrides_the_policy() -> None:
    # the workload allows no spot at all: 10 x $3
    result = solve(_make(spot_and_on_demand({"max_spot_share": 0.3}, max_spot_share=0.0)))
    assert list(allocs(result, "w")) == ["d2"]
    assert result["total_usd"] == pytest.approx(30 * MONTH_H)


def test_spot_does_not_count_for_survival_unless_allowed() -> None:
    # survive 50% without any provider.  Spot not counted: on-demand alone must serve
    # 5 rps whichever provider fails -> losing p2 leaves only spot, which does not count,
    # so p2 cannot be lost... the plan needs on-demand at two providers: add d3 at p3.
    doc = spot_and_on_demand({"survive_provider_loss": 0.5})
    doc["offers"].append(offer("d3", "p3", "acc-a", price=4.0))
    result = solve(_make(doc))
    a = allocs(result, "w")
    # without p2: d3 >= 5; without p3: d2 >= 5; demand: 10 -> 5 x $3 + 5 x $4 = $35; no spot
    assert a["d2"]["replicas"] == 5 and a["d3"]["replicas"] == 5
    assert "s1" not in a
    assert result["total_usd"] == pytest.approx(35 * MONTH_H)
    assert result["survival"]["p2"] == pytest.approx(0.5)

    doc["policy"]["spot_counts_for_survival"] = True
    counted = solve(_make(doc))
    b = allocs(counted, "w")
    # spot counts: without p1 on-demand >= 5 (d2 at $3); without p2 spot >= 5 ($1):
    # 5 x $1 + 5 x $3 = $20
    assert b["s1"]["replicas"] == 5 and b["d2"]["replicas"] == 5
    assert counted["total_usd"] == pytest.approx(20 * MONTH_H)


def test_spot_cap_infeasible_names_the_workload() -> None:
    doc = spot_and_on_demand({"max_spot_share": 0.0})
    doc["offers"] = [spot_offer("s1", "p1", "acc-a")]
    result = solve(_make(doc))
    assert result["status"] == "infeasible"
    assert result["infeasible"]["family"] == "spot"
    assert result["infeasible"]["subject"] == "w"
    assert "0% of its peak from spot" in result["infeasible"]["message"]


def test_training_with_a_spot_cap_is_not_placed_on_spot() -> None:
    offers = [spot_offer("s1", "p1", "acc-a"), offer("d2", "p2", "acc-a", price=2.0)]
    free = solve(make([acc("acc-a")], offers, [training()]))
    assert list(allocs(free, "t")) == ["s1"]
    capped = solve(make([acc("acc-a")], offers, [training()], policy={"max_spot_share": 0.5}))
    assert list(allocs(capped, "t")) == ["d2"]
    assert capped["total_usd"] == pytest.approx(2 * TRAIN_USD_PER_DOLLAR_HOUR, abs=0.01)


def _egress_spec(data_gb: float, rate: float) -> dict[str, Any]:
    return {
        "catalog": "none",
        "accelerators": [acc("acc-a")],
        "offers": [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-a", price=1.5)],
        "egress": [{"provider": "p2", "usd_per_gb": rate}],
        "workloads": [{**training(), "data_gb": data_gb, "data_at": "p2"}],
    }


def test_egress_is_paid_when_the_job_runs_away_from_its_data() -> None:
    # run: $33.33 at p1, $50 at p2.  Moving 100 GB out of p2 at $0.09: $9 -> p1 wins ($42.33)
    result = solve(build_spec(_egress_spec(100, 0.09)))
    a = allocs(result, "t")
    assert list(a) == ["o1"]
    assert a["o1"]["egress_usd"] == pytest.approx(9.0)
    assert result["total_usd"] == pytest.approx(TRAIN_USD_PER_DOLLAR_HOUR + 9.0, abs=0.01)


def test_heavy_data_keeps_the_job_where_the_data_is() -> None:
    # 1000 GB x $0.09 = $90 > $50 - $33.33: run at p2, no egress
    result = solve(build_spec(_egress_spec(1000, 0.09)))
    a = allocs(result, "t")
    assert list(a) == ["o2"]
    assert "egress_usd" not in a["o2"]
    assert result["total_usd"] == pytest.approx(1.5 * TRAIN_USD_PER_DOLLAR_HOUR, abs=0.01)


def test_egress_counts_toward_the_provider_the_data_leaves() -> None:
    """Run at p1 ($33.33), 100 GB out of p2 ($9): p1 holds 78.7% of spend, p2 21.3%.

    Counting the $9 at p1 (where the job runs) would give p1 100%, so a 0.8 provider cap
    would shut both placements; paid to p2 it does not.
    """
    doc = _egress_spec(100, 0.09)
    doc["policy"] = {"max_spend_share": {"provider": 0.8}}
    result = solve(build_spec(doc))
    assert result["status"] == "optimal"
    assert list(allocs(result, "t")) == ["o1"]
    run = TRAIN_USD_PER_DOLLAR_HOUR
    total = run + 9.0
    assert result["total_usd"] == pytest.approx(total, abs=0.01)
    assert result["shares"]["provider"]["p1"] == pytest.approx(run / total, abs=1e-4)
    assert result["shares"]["provider"]["p2"] == pytest.approx(9.0 / total, abs=1e-4)
    rows = {p["offer"]: p for p in result["purchases"]}
    assert rows["egress:p2"]["usd"] == pytest.approx(9.0) and rows["egress:p2"]["provider"] == "p2"
    assert rows["o1"]["usd"] == pytest.approx(run, abs=0.01)
    assert sum(p["usd"] for p in result["purchases"]) == pytest.approx(result["total_usd"], abs=0.02)
    # a cap below p1's run share still binds: 0.75 < 78.7% and p2 alone is 100%
    doc["policy"] = {"max_spend_share": {"provider": 0.75}}
    assert solve(build_spec(doc))["status"] == "infeasible"


def test_a_provider_paid_only_for_egress_is_not_in_the_survival_report() -> None:
    doc = _egress_spec(100, 0.09)
    doc["egress"] = [{"provider": "store", "usd_per_gb": 0.09}]
    doc["workloads"] = [
        {**training(), "data_gb": 100, "data_at": "store"},
        inference("w", 2, {"acc-a": (1, 1.0)}),
    ]
    result = solve(build_spec(doc))
    assert result["status"] == "optimal"
    assert any(p["offer"] == "egress:store" for p in result["purchases"])
    assert "store" in result["shares"]["provider"]  # paid, so in the spend shares
    assert "store" not in result["survival"]  # but it hosts nothing
    assert set(result["survival"]) <= {"p1", "p2"}


def test_bundled_egress_prices_are_sourced() -> None:
    from polyfleet.catalog.io import load_bundled

    egress = load_bundled().egress
    assert {"aws", "gcp", "azure", "oci", "lambda", "runpod"} <= set(egress)
    for e in egress.values():
        assert e.source.startswith("http") and e.as_of, e.provider
    assert egress["aws"].usd_per_gb == pytest.approx(0.09)
    assert egress["nebius"].usd_per_gb is None  # no published price: left empty


def test_egress_candidates_cost_is_run_plus_move() -> None:
    spec = build_spec(_egress_spec(100, 0.09))
    cand = build_candidates(spec)
    by_provider = dict(zip(cand.offer_provider[cand.tr_o], cand.tr_egress_usd, strict=True))
    assert by_provider == {"p1": pytest.approx(9.0), "p2": 0.0}
    milp = build_milp(cand, spec.policy)
    assert milp.cost[milp.cols["y"]].min() == pytest.approx(TRAIN_USD_PER_DOLLAR_HOUR + 9.0, abs=0.01)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"data_at": "p9"}, "unknown provider 'p9'"),
        ({"data_at": "p1"}, "no egress price for provider 'p1'"),
        ({"data_at": None}, "give data_gb and data_at together"),
        ({"data_gb": -5}, "greater than 0"),
    ],
)
def test_bad_egress_input_names_the_field(tmp_path, change: dict[str, Any], message: str) -> None:
    doc = _egress_spec(100, 0.09)
    w = {**doc["workloads"][0], **change}
    doc["workloads"] = [{k: v for k, v in w.items() if v is not None}]
    path = write_spec(tmp_path, yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(SpecError) as err:
        polyfleet.load_spec(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    result = run_cli("plan", str(path))
    assert result.exit_code == 2
    assert "workloads[0]" in result.stderr and message in result.stderr


def test_an_inline_spot_offer_unusable_for_other_reasons_is_still_an_error() -> None:
    # the spot cap shuts s1 for the job: fine.  s2 is on a stack no workload runs: an error.
    offers = [spot_offer("s1", "p1", "acc-a"), offer("d2", "p2", "acc-a", price=2.0),
              spot_offer("s2", "p3", "acc-r")]  # fmt: skip
    rocm = acc("acc-r") | {"stack": "rocm"}
    job = training() | {"stacks": ["cuda"]}
    with pytest.raises(SpecError, match="no workload can use offer 's2'"):
        solve(make([acc("acc-a"), rocm], offers, [job], policy={"max_spot_share": 0.5}))
    ok = solve(make([acc("acc-a")], offers[:2], [job], policy={"max_spot_share": 0.5}))
    assert list(allocs(ok, "t")) == ["d2"]
