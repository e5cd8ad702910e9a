"""Terms that bind the buyer (plan/terms.py): capacity blocks and reserved commitments, hand-computed.

The training job of ``test_plan_constraints`` runs 2 chips for 16.667 h (33.33 chip-hours);
a capacity block covering it is 1 day: 2 chips x 24 h = 48 chip-hours paid whole.
A month is 730 h.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

import polyfleet
from conftest import run_cli, write_spec
from polyfleet.gateway.routes import routes_from_plan
from polyfleet.plan.terms import block_days
from polyfleet.report.tables import commitments_note
from polyfleet.risk.fleet import fleet_from_plan
from polyfleet.spec import build_spec
from test_plan_constraints import MONTH_H, TRAIN_USD_PER_DOLLAR_HOUR, acc, inference, offer, training

ONE_RPS = {"acc-a": (1, 1.0)}


def spec(offers: list[dict], workloads: list[dict], **extra: Any) -> dict[str, Any]:
    return {
        "catalog": "none",
        "accelerators": [acc("acc-a")],
        "offers": offers,
        "workloads": workloads,
        **extra,
    }


def solve(doc: dict[str, Any]) -> dict[str, Any]:
    result = polyfleet.plan(build_spec(doc)).to_dict()
    assert result["status"] == "optimal"
    return result


def block(offer_id: str, provider: str, price: float) -> dict[str, Any]:
    return offer(offer_id, provider, "acc-a", price=price) | {"term": "capacity-block"}


def test_block_days_are_whole_days() -> None:
    # a 15-day run books a 14-day and a 1-day block (blocks past 14 days come in 7-day steps)
    hours = (1, 16.667, 24, 24.5, 14 * 24, 15 * 24, 200 * 24)
    assert [block_days(h) for h in hours] == [1, 1, 1, 2, 14, 15, 200]


@pytest.mark.parametrize(
    ("price", "chosen", "usd"), [(0.6, "cb", 0.6 * 2 * 24), (0.75, "od", TRAIN_USD_PER_DOLLAR_HOUR)]
)
def test_training_on_a_capacity_block_pays_whole_days(price: float, chosen: str, usd: float) -> None:
    # block at $0.60: 2 chips x 24 h x $0.60 = $28.80 < on-demand 33.33 x $1; at $0.75 the
    # block's $36.00 loses to on-demand although its hourly rate is lower
    result = solve(spec([offer("od", "p1", "acc-a"), block("cb", "p2", price)], [training()]))
    (alloc,) = result["workloads"][0]["allocations"]
    assert alloc["offer"] == chosen
    assert result["total_usd"] == pytest.approx(usd, abs=0.01)
    if chosen == "cb":
        assert alloc["block_days"] == 1 and alloc["run_hours"] == pytest.approx(16.67, abs=0.01)
        (c,) = result["commitments"]
        assert c["term"] == "capacity-block" and c["block_days"] == 1 and c["end_month"] == 1
        assert c["obligation_usd"] == pytest.approx(28.8) and c["beyond_plan_usd"] == 0
    else:
        assert result["commitments"] == []


def test_a_capacity_block_is_guaranteed_capacity_for_survival_and_routes() -> None:
    # D = 2 rps, 1 rps per replica, keep 50% after losing any provider; spot never counts.
    # Losing p1 leaves only the block (p2) that counts, losing p2 only on-demand (p1):
    # one replica each, 730 x ($1 + $0.5) = $1,095; spot at $0.2 cannot replace either.
    offers = [
        offer("od", "p1", "acc-a"),
        block("cb", "p2", 0.5),
        offer("sp", "p3", "acc-a", price=0.2) | {"term": "spot"},
    ]
    result = solve(spec(offers, [inference("w", 2, ONE_RPS)], policy={"survive_provider_loss": 0.5}))
    assert result["total_usd"] == pytest.approx(1.5 * MONTH_H)
    assert result["survival"]["p1"] == pytest.approx(0.5) and result["survival"]["p2"] == pytest.approx(0.5)
    (c,) = result["commitments"]
    assert (c["offer"], c["instances"], c["end_month"]) == ("cb", 1, 1)
    assert c["usd_per_month"] == pytest.approx(0.5 * MONTH_H) and c["obligation_usd"] == pytest.approx(365.0)
    # the gateway fills it first, like any capacity bought for the horizon
    mapping = {"backends": {o: {"url": f"http://{o}/v1", "usd_per_mtok_in": 1, "usd_per_mtok_out": 1}
                            for o in ("od", "cb")}}  # fmt: skip
    roles = {b["name"]: b["role"] for m in routes_from_plan(result, mapping)["models"] for b in m["backends"]}
    assert roles == {"od": "committed", "cb": "committed"}
    # its price was paid up front: no moving price group in risk scenarios (on-demand has one)
    fleet = fleet_from_plan(result)
    assert fleet.price_groups == (("p1", "on-demand"),)


def test_single_period_plan_says_what_a_reserved_term_obliges() -> None:
    # 2 rps on reserved-3y at $1.22: 2 instances, $1,781.20 a month in the 1-month plan, and a
    # 3-year commitment of 36 x $1,781.20 = $64,123.20, $62,342.00 of it beyond the plan
    offers = [
        offer("od", "p1", "acc-a", price=2.7),
        offer("r3", "p2", "acc-a", price=1.22) | {"term": "reserved-3y"},
    ]
    result = solve(spec(offers, [inference("w", 2, ONE_RPS)]))
    assert result["total_usd"] == pytest.approx(1781.2)
    (c,) = result["commitments"]
    assert (c["term"], c["instances"], c["chips"]) == ("reserved-3y", 2, 2)
    assert (c["term_months"], c["end_month"]) == (36, 36)
    assert c["usd_per_month"] == pytest.approx(1781.2) and c["obligation_usd"] == pytest.approx(64123.2)
    assert c["beyond_plan_usd"] == pytest.approx(62342.0) and c["workloads"] == ["w"]
    note = commitments_note(result).plain
    assert "a 3-year commitment of 2 instances (2 chips), $1.8k/month, $64.1k in all, ending month 36" in note
    assert "$62.3k of it beyond this plan's 1-month total" in note


def test_a_horizon_longer_than_the_term_signs_it_again() -> None:
    # 40 months on reserved-1y at $0.1: ceil(40 / 12) = 4 terms, 48 months x $73 = $3,504
    offers = [offer("r1", "p1", "acc-a", price=0.1) | {"term": "reserved-1y"}]
    result = solve(spec(offers, [inference("w", 1, ONE_RPS)], horizon_months=40))
    (c,) = result["commitments"]
    assert c["end_month"] == 48 and c["obligation_usd"] == pytest.approx(48 * 73.0)
    assert c["beyond_plan_usd"] == pytest.approx(8 * 73.0)


def monthly(months: int, offers: list[dict], workloads: list[dict]) -> dict[str, Any]:
    return spec(
        offers, workloads, horizon_months=months, periods="monthly", policy={"move_hours_per_chip": 0}
    )


def test_monthly_training_books_a_block_not_a_reserved_term() -> None:
    # reserved-3y at $0.10 is closed to training in monthly plans; the block at $0.60 for
    # one day (2 x 24 x 0.6 = $28.80) beats on-demand ($33.33), and is booked in month 0 only
    offers = [
        offer("od", "p1", "acc-a"),
        offer("r3", "p2", "acc-a", price=0.1) | {"term": "reserved-3y"},
        block("cb", "p3", 0.6),
    ]
    result = solve(monthly(2, offers, [training()]))
    assert result["total_usd"] == pytest.approx(28.8, abs=0.01)
    assert [(c["offer"], c["month"], c["instances"], c["term"]) for c in result["commitments"]] == [
        ("cb", 0, 2, "capacity-block")
    ]
    assert result["commitment_usd_after_horizon"] == 0


def test_monthly_blocks_lock_nothing_beyond_their_month() -> None:
    # demand 2 then 1 rps: the block books 2 then 1 instance ($0.5: (2 + 1) x $365 = $1,095);
    # a reserved term would hold the second instance for its whole term
    result = solve(monthly(2, [block("cb", "p1", 0.5)],
                           [inference("w", 2, ONE_RPS, requests_per_s_by_month=[2, 1])]))  # fmt: skip
    assert result["total_usd"] == pytest.approx(3 * 0.5 * MONTH_H)
    assert [(c["month"], c["instances"]) for c in result["commitments"]] == [(0, 2), (1, 1)]
    assert all("commitments" not in m for m in result["months"])


def test_cli_prints_the_commitment_under_the_table(tmp_path) -> None:
    # the reserved-3y case above through `polyfleet plan`: table footer and JSON agree
    offers = [
        offer("od", "p1", "acc-a", price=2.7),
        offer("r3", "p2", "acc-a", price=1.22) | {"term": "reserved-3y"},
    ]
    path = write_spec(tmp_path, yaml.safe_dump(spec(offers, [inference("w", 2, ONE_RPS)]), sort_keys=False))
    table = run_cli("plan", str(path), "--wide")
    assert table.exit_code == 0, table.stderr
    flat = " ".join(table.stdout.split())
    said = "r3: a 3-year commitment of 2 instances (2 chips), $1.8k/month, $64.1k in all, ending month 36"
    assert said in flat
    data = json.loads(run_cli("plan", str(path), "--format", "json").stdout)
    assert [c["obligation_usd"] for c in data["commitments"]] == [pytest.approx(64123.2)]
