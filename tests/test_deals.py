"""``polyfleet deal`` (issue 17): hand-computed take-or-pay, brute force over first stages, VSS.

A month is 730 h; offers here have 1-chip instances and replicas of 1 chip serving 1
request/s, so one request/s for a month costs 730 x usd_per_chip_hour.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import run_cli
from polyfleet.deals.analysis import analyse
from polyfleet.deals.benders import Evaluations, build_solvers, first_stage_usd, risk_value, solve_saa
from polyfleet.deals.evaluate import evaluate_scenarios, in_sample, local_mapper
from polyfleet.deals.problem import build_problem
from polyfleet.errors import SpecError
from polyfleet.spec import build_spec

CARD = {"name": "m", "params_b": 1}
ACC = {"id": "acc-a", "vendor": "va", "hbm_gb": 80, "hbm_tbps": 3, "bf16_tflops": 1000, "stack": "cuda"}


def offer(oid: str, provider: str, price: float, avail: int = 1000, **extra: Any) -> dict[str, Any]:
    return {"id": oid, "provider": provider, "accelerator": "acc-a", "chips_per_instance": 1,
            "usd_per_chip_hour": price, "available_instances": avail, **extra}  # fmt: skip


def chat(rps: float, **extra: Any) -> dict[str, Any]:
    return {"name": "chat", "kind": "inference", "model": CARD, "requests_per_s": rps,
            "input_tokens": 100, "output_tokens": 100,
            "throughput": {"acc-a": {"chips_per_replica": 1, "requests_per_s": 1.0}}, **extra}  # fmt: skip


def doc(months: int, offers: list, deals: list, uncertainty: dict, workloads: list | None = None, **extra):
    return {"horizon_months": months, "periods": "monthly", "catalog": "none", "accelerators": [ACC],
            "offers": offers, "workloads": workloads or [chat(1.0)], "deals": deals,
            "uncertainty": uncertainty, **extra}  # fmt: skip


ONE = {"scenarios": [{"name": "only", "probability": 1.0}]}


def test_take_or_pay_commit_100_use_70_pays_100() -> None:
    # 1 rps all year at a price that lists $70 for the 12 months: $70 / 8760 per chip-hour
    price = 70 / (12 * 730)
    spend = {"kind": "spend", "name": "commit", "provider": "p1", "discount": 0.2, "usd_per_year": 100,
             "years": 1}  # fmt: skip
    pb = build_problem(build_spec(doc(12, [offer("o1", "p1", price)], [spend], ONE)))
    sc = in_sample(pb, build_spec(doc(12, [offer("o1", "p1", price)], [spend], ONE)).model.uncertainty,
                   build_spec(doc(12, [offer("o1", "p1", price)], [spend], ONE)).model.risk)  # fmt: skip
    out = evaluate_scenarios(pb, sc, [np.array([1.0, 100.0]), np.zeros(2)])
    # signed: max(100, 0.8 x 70 = 56) = $100; no deal: $70 list.  The discount saves nothing.
    assert round(out.cost[0, 0], 2) == 100.00
    assert round(out.cost[1, 0], 2) == 70.00
    assert round(out.unused_usd[0, 0, 0], 2) == 44.00  # 100 paid - 56 used
    res = solve_saa(pb, Evaluations(build_solvers(pb, sc)), sc.probability, gap=1e-9)
    assert res.first[0] == 0 and round(res.objective, 2) == 70.00


def test_take_or_pay_above_commit_saves_the_discount_and_carry_over() -> None:
    # year 1 lists $70, year 2 lists $150 (demand 1 rps, then 150/70 rps); commit $100 a year at 20% off
    price = 70 / (12 * 730)
    chat2 = chat(1.0, requests_per_s_by_month=[1.0] * 12 + [150 / 70] * 12)
    base = {"kind": "spend", "name": "c", "provider": "p1", "discount": 0.2, "usd_per_year": 100, "years": 2}
    costs = {}
    for carry in (False, True):
        spec = build_spec(doc(24, [offer("o1", "p1", price)], [base | {"carry_over": carry}], ONE, [chat2]))
        pb = build_problem(spec)
        sc = in_sample(pb, spec.model.uncertainty, spec.model.risk)
        costs[carry] = evaluate_scenarios(pb, sc, [np.array([1.0, 100.0])]).cost[0, 0]
    # no carry-over: max(100, 56) + max(100, 120) = 220; with it the unused 44 of year 1 pays
    # for year 2: cumulative 176 of use against 200 committed -> 200
    assert round(costs[False], 2) == 220.00
    assert round(costs[True], 2) == 200.00


def _brute_force_doc(sampled: bool, cvar_weight: float = 0.0) -> dict[str, Any]:
    offers = [
        offer("cheap", "neo", 1.0, avail=8, arrival_month_probabilities={0: 0.5, 4: 0.5}),
        offer("list", "big", 1.6),
        offer("rival", "rival", 2.0),
    ]
    deals = [
        {"kind": "spend", "name": "big-commit", "provider": "big", "discount": 0.3,
         "usd_per_year": [40000.0, 60000.0, 90000.0], "years": 1},
        {"kind": "reservation", "name": "block", "offer": "rival", "instances": [2, 4, 6],
         "usd_per_instance_month": 900.0, "months": 6, "resale_share": 0.5, "resale_recovery": 0.5},
        {"kind": "reservation", "name": "neo-3q", "offer": "cheap", "instances": [3, 6],
         "usd_per_instance_month": 650.0, "months": 9, "start_month": 3,
         "exit": {"after_month": 6, "penalty_share": 0.5}},
    ]  # fmt: skip
    if sampled:
        demand = {"drift_per_year": 0.1, "volatility_per_year": 0.4}
        unc = {"sampled": {"count": 6, "seed": 3, "demand": demand},
               "prices": {"default": 0.2, "sd": 0.1}, "gap": 1e-7, "out_of_sample": 16}  # fmt: skip
    else:
        unc = {"scenarios": [
            {"name": "base", "probability": 0.4},
            {"name": "slow", "probability": 0.2, "demand_growth_per_year": -0.5},
            {"name": "fast", "probability": 0.2, "demand_growth_per_year": 1.0},
            {"name": "late", "probability": 0.1, "arrival_month": {"cheap": 4},
             "capacity_loss": {"big": 0.5}},
            {"name": "cheaper", "probability": 0.1, "price_decline_per_year": 0.4},
        ], "gap": 1e-7}  # fmt: skip
    unc["cvar_weight"] = cvar_weight
    unc["cvar_alpha"] = 0.8
    tokens = {"name": "tokens", "kind": "api", "model": "tok", "mtok_in_per_month": 100.0,
              "mtok_out_per_month": 20.0, "growth_per_month": 0.03}  # fmt: skip
    api_offers = [  # the big deal's 30% makes big-tok (2.1/10.5) beat maker-tok (2.5/12)
        {
            "id": "big-tok",
            "provider": "big",
            "model": "tok",
            "usd_per_mtok_in": 3.0,
            "usd_per_mtok_out": 15.0,
        },
        {
            "id": "maker-tok",
            "provider": "maker",
            "model": "tok",
            "usd_per_mtok_in": 2.5,
            "usd_per_mtok_out": 12.0,
        },
    ]
    return doc(
        12, offers, deals, unc, [chat(10.0, growth_per_month=0.05), tokens],
        policy={"survive_provider_loss": 0.3, "max_share": {"provider": 0.7}}, api_offers=api_offers,
    )  # fmt: skip


@pytest.mark.parametrize(("sampled", "weight"), [(False, 0.0), (True, 0.0), (False, 0.5)])
def test_recommended_first_stage_equals_brute_force(sampled: bool, weight: float) -> None:
    spec = build_spec(_brute_force_doc(sampled, weight))
    pb = build_problem(spec)
    unc = spec.model.uncertainty
    sc = in_sample(pb, unc, spec.model.risk)
    ev = Evaluations(build_solvers(pb, sc))
    res = solve_saa(pb, ev, sc.probability, alpha=unc.cvar_alpha, weight=weight, gap=1e-7)
    # every first stage: each deal off or at one of its grid sizes, each scenario's LP solved
    choices = [[0.0, *t.grid] for t in pb.deals]
    scored = []
    for sizes in itertools.product(*choices):
        first = np.array([v for s in sizes for v in ((1.0 if s else 0.0), s)])
        q, _ = ev(first)
        scored.append(
            (risk_value(first_stage_usd(pb, first), q, sc.probability, unc.cvar_alpha, weight), first)
        )
    scored.sort(key=lambda x: x[0])
    best_value, best_first = scored[0]
    assert res.objective == pytest.approx(best_value, rel=1e-7)
    if scored[1][0] > best_value * (1 + 1e-6):  # a unique optimum: the same deals and sizes
        np.testing.assert_allclose(res.first, best_first, atol=1e-6)
    assert scored[-1][0] > best_value * 1.01  # the choice matters on this instance


def test_vss_not_negative_out_of_sample() -> None:
    spec = build_spec(_brute_force_doc(True))
    report = analyse(spec, local_mapper, out_of_sample_count=40, evpi=True)
    vss = report["vss"]
    assert vss["usd"] >= -3 * vss["se_usd"] - 1e-6
    assert report["evpi"]["usd"] >= -1e-6  # perfect information never hurts
    rec, none = report["alternatives"][0], report["alternatives"][1]
    assert none["minus_recommended_usd"] >= -3 * none["se_usd"] - 1e-6
    assert {r["family"] for r in report["regret"]} >= {"demand: slowest third", "demand: fastest third"}
    assert rec["p50_usd"] <= rec["p95_usd"] and rec["expected_usd"] <= rec["cvar_usd"] + 1e-6


def test_cli_deal_json_sweep_and_out(tmp_path) -> None:
    d = _brute_force_doc(False)
    path = tmp_path / "deal.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    out = tmp_path / "deal.json"
    r = run_cli(
        "deal", path, "--format", "json", "--out", out, "--sweep", "discount=0.1:0.5:0.2", "--no-evpi"
    )
    assert r.exit_code == 0, r.stderr
    report = json.loads(out.read_text())
    assert [p["value"] for p in report["sweep"]["points"]] == [0.1, 0.3, 0.5]
    # a deeper discount never makes the best plan dearer
    objs = [p["objective_usd"] for p in report["sweep"]["points"]]
    assert objs[0] >= objs[1] - 1e-6 >= objs[2] - 2e-6
    table = run_cli("deal", path, "--no-evpi", "--sweep", "growth=-0.4:0.8:0.6")
    assert table.exit_code == 0 and "Recommended:" in table.stdout and "VSS" in table.stdout
    assert "Break-even sweep: growth" in table.stdout and "flips:" in table.stdout


def test_bad_deal_input_is_one_line_with_file_and_line(tmp_path) -> None:
    d = _brute_force_doc(False)
    d["deals"][1]["offer"] = "no-such-offer"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    r = run_cli("deal", path)
    assert r.exit_code == 2
    assert (
        r.stderr.count("\n") == 1 and "bad.yaml:" in r.stderr and "unknown offer 'no-such-offer'" in r.stderr
    )
    d = _brute_force_doc(False)
    d["deals"][0]["ramp"] = [0.5, 1.0]  # one deal year
    path.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    r = run_cli("deal", path)
    assert r.exit_code == 2 and "deals[0]" in r.stderr and "ramp needs one share per deal year" in r.stderr
    d = _brute_force_doc(False)
    d["uncertainty"]["scenarios"][0]["probability"] = 0.9
    path.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    r = run_cli("deal", path)
    assert r.exit_code == 2 and "add up to 1" in r.stderr
    r = run_cli("deal", path, "--sweep", "discount=0.5:0.1:0.1")
    assert r.exit_code == 2 and "--sweep" in r.stderr


def test_infeasible_without_deals_exits_1_naming_the_workload(tmp_path) -> None:
    d = doc(6, [offer("o1", "p1", 1.0, avail=2)], [{"kind": "spend", "name": "c", "provider": "p1",
            "discount": 0.1, "usd_per_year": 10.0, "years": 0}], ONE)  # fmt: skip
    d["deals"][0]["years"] = 1
    d["horizon_months"] = 12
    d["workloads"] = [chat(5.0)]  # 5 replicas needed, 2 instances available
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False), encoding="utf-8")
    r = run_cli("deal", path)
    assert r.exit_code == 1 and "'chat'" in r.stderr


def test_plan_ignores_deals_and_uncertainty() -> None:
    import polyfleet

    d = _brute_force_doc(False)
    result = polyfleet.plan(build_spec(d)).to_dict()
    assert result["status"] in ("optimal", "feasible")
    with pytest.raises(SpecError, match="exactly one"):
        build_spec(d | {"uncertainty": {"scenarios": None}})


def _cost_of(d: dict[str, Any], firsts: list[np.ndarray]) -> np.ndarray:
    spec = build_spec(d)
    pb = build_problem(spec)
    sc = in_sample(pb, spec.model.uncertainty, spec.model.risk)
    return evaluate_scenarios(pb, sc, firsts).cost[:, 0]


def test_reservation_resale_and_exit_hand_computed() -> None:
    # 1 rps on o1 at $1/chip-hour: $730 a month, $8,760 a year without a deal
    block = {"kind": "reservation", "name": "b", "offer": "o1", "instances": 2,
             "usd_per_instance_month": 500.0, "months": 12}  # fmt: skip
    signed = np.array([1.0, 2.0])
    # 2 x 500 x 12 = 12,000 paid; the idle instance is resold (share 0.5 of 2) at half price: -3,000
    resale = block | {"resale_share": 0.5, "resale_recovery": 0.5}
    cost = _cost_of(doc(12, [offer("o1", "p1", 1.0)], [resale], ONE), [signed, np.zeros(2)])
    assert round(cost[0], 2) == 9000.00 and round(cost[1], 2) == 8760.00
    # exit after month 6 at half the price of what is cancelled: the idle instance goes,
    # refunding (1 - 0.5) x 500 x 6 = 1,500; the used one stays (on-demand would cost 4,380)
    exit_ = block | {"exit": {"after_month": 6, "penalty_share": 0.5}}
    cost = _cost_of(doc(12, [offer("o1", "p1", 1.0)], [exit_], ONE), [signed])
    assert round(cost[0], 2) == 10500.00
    # neither: the idle instance is paid whole
    assert round(_cost_of(doc(12, [offer("o1", "p1", 1.0)], [block], ONE), [signed])[0], 2) == 12000.00


def test_conversion_to_a_newer_chip_hand_computed() -> None:
    # 3 rps; o1 (acc-a) and o2 (acc-b) at $2/chip-hour ($1,460 a replica-month); a block of 2
    # o1 instances at $500 converts from month 6 into 1.5 x 2 = 3 o2 instances
    acc_b = ACC | {"id": "acc-b"}
    both = {"acc-a": {"chips_per_replica": 1, "requests_per_s": 1.0},
            "acc-b": {"chips_per_replica": 1, "requests_per_s": 1.0}}  # fmt: skip
    offers = [offer("o1", "p1", 2.0), offer("o2", "p1", 2.0) | {"accelerator": "acc-b"}]
    block = {"kind": "reservation", "name": "b", "offer": "o1", "instances": 2,
             "usd_per_instance_month": 500.0, "months": 12}  # fmt: skip
    signed = np.array([1.0, 2.0])
    for convert, expected in ((None, 12000 + 12 * 1460), ({"to_offer": "o2", "ratio": 1.5, "from_month": 6},
                                                          12000 + 6 * 1460)):  # fmt: skip
        deal = block | ({"convert": convert} if convert else {})
        d = doc(12, offers, [deal], ONE, [chat(3.0) | {"throughput": both}]) | {"accelerators": [ACC, acc_b]}
        assert round(_cost_of(d, [signed])[0], 2) == expected


def test_spend_exit_cancels_later_years_for_a_penalty() -> None:
    # commit $100 a year for 2 years at 20% off; year 1 lists $70, year 2 almost nothing.
    # Without an exit: 100 + 100 = 200.  Exiting after month 12 at half the cancelled $100: 150.
    price = 70 / (12 * 730)
    workload = chat(1.0, requests_per_s_by_month=[1.0] * 12 + [1e-6] * 12)
    spend = {"kind": "spend", "name": "c", "provider": "p1", "discount": 0.2, "usd_per_year": 100, "years": 2}
    costs = []
    for deal in (spend, spend | {"exit": {"after_month": 12, "penalty_share": 0.5}}):
        d = doc(24, [offer("o1", "p1", price)], [deal], ONE, [workload])
        costs.append(_cost_of(d, [np.array([1.0, 100.0])]))
    assert round(costs[0][0], 2) == 200.00
    assert round(costs[1][0], 2) == 150.00


def test_five_year_example_builds() -> None:
    from pathlib import Path

    from polyfleet.spec import load_spec

    spec = load_spec(Path(__file__).parent.parent / "examples" / "five-year-deal.yaml")
    pb = build_problem(spec)
    assert [t.name for t in pb.deals] == ["gcp-5y", "azure-stopgap", "nebius-3y"]
    assert pb.axes.uncertain == ["own-maia-westus3"] and len(pb.periods) == 24 + 12
    assert pb.deals[0].ramp.tolist() == [0.5, 0.75, 1, 1, 1] and pb.deals[2].exit_month == 12


def test_risk_section_sets_the_mean_cvar_objective() -> None:
    """``risk.cvar_alpha``/``risk.cvar_weight`` (the issue's spelling) override ``uncertainty``'s."""
    from polyfleet.deals.analysis import deal_cvar

    plain = _brute_force_doc(False, 0.0)
    assert deal_cvar(build_spec(plain)) == (0.8, 0.0)
    via_risk = _brute_force_doc(False, 0.0)
    via_risk["risk"] = {"cvar_alpha": 0.9, "cvar_weight": 0.5}
    assert deal_cvar(build_spec(via_risk)) == (0.9, 0.5)
    only_weight = _brute_force_doc(False, 0.0)
    only_weight["risk"] = {"cvar_weight": 0.25}
    assert deal_cvar(build_spec(only_weight)) == (0.8, 0.25)
