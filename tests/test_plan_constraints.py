"""Each constraint family of the planning MILP, binding, against hand-computed plans.

Every spec is built inline (``catalog: none``) with measured ``throughput`` overrides, so
each number below can be redone by hand.  Units: a month is 730 h, so one 1-chip
instance at $1/chip-hour costs $730; a month has 730 x 3600 = 2,628,000 s.

Training expectations follow ``polyfleet.perf.training`` for the toy accelerator
(1000 TFLOP/s bf16, 80 GB HBM) at MFU 0.5 and a 1B-param model on 10B tokens:
F = 6 x 1e9 x 10e9 = 6e19 FLOP; sustained = 1000e12 x 0.5 = 5e14 FLOP/s per chip;
deadline 1 day -> ceil(6e19 / (5e14 x 86400)) = ceil(1.389) = 2 chips; memory
1e9 x 16 / (80e9 x 0.9) = 0.22 -> 1 chip; so 2 chips, run hours
6e19 / (2 x 5e14 x 3600) = 16.667 h, cost 2 x price x 16.667 = 33.33 x price.
"""

from __future__ import annotations

from typing import Any

import pytest

from polyfleet.plan import plan
from polyfleet.spec import Spec, build_spec

MONTH_H = 730.0
MONTH_S = 730.0 * 3600
TRAIN_USD_PER_DOLLAR_HOUR = 2 * (6e19 / (2 * 5e14 * 3600))  # chips x run hours = 33.33


# --- spec builders ------------------------------------------------------------------------


def acc(acc_id: str, vendor: str = "va") -> dict[str, Any]:
    return {
        "id": acc_id,
        "vendor": vendor,
        "hbm_gb": 80,
        "hbm_tbps": 3,
        "bf16_tflops": 1000,
        "stack": "cuda",
    }


def offer(
    offer_id: str,
    provider: str,
    accelerator: str,
    *,
    cpi: int = 1,
    price: float = 1.0,
    avail: int = 100,
) -> dict[str, Any]:
    return {
        "id": offer_id,
        "provider": provider,
        "accelerator": accelerator,
        "chips_per_instance": cpi,
        "usd_per_chip_hour": price,
        "available_instances": avail,
    }


def api_offer(
    api_id: str,
    provider: str,
    *,
    pin: float = 1.0,
    pout: float = 1.0,
    tpm: float | None = None,
    resells: str | None = None,
    model: str = "m",
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": api_id,
        "provider": provider,
        "model": model,
        "usd_per_mtok_in": pin,
        "usd_per_mtok_out": pout,
    }
    if tpm is not None:
        out["max_tokens_per_minute"] = tpm
    if resells is not None:
        out["resells"] = resells
    return out


API_WORKLOAD = {
    "name": "w",
    "kind": "api",
    "model": "m",
    "mtok_in_per_month": 10,
    "mtok_out_per_month": 5,
}
CARD = {"name": "m", "params_b": 1, "layers": 2, "kv_heads": 1, "head_dim": 8}


def inference(
    name: str, rps: float, throughput: dict[str, tuple[int, float]], **extra: Any
) -> dict[str, Any]:
    """Inference workload with 100 input + 100 output tokens per request."""
    return {
        "name": name,
        "kind": "inference",
        "model": CARD,
        "requests_per_s": rps,
        "input_tokens": 100,
        "output_tokens": 100,
        "throughput": {k: {"chips_per_replica": t, "requests_per_s": r} for k, (t, r) in throughput.items()},
        **extra,
    }


def training(name: str = "t") -> dict[str, Any]:
    return {
        "name": name,
        "kind": "training",
        "model": {"params_b": 1},
        "tokens_b": 10,
        "deadline_days": 1,
        "mfu": 0.5,
    }


def make(
    accelerators: list[dict],
    offers: list[dict],
    workloads: list[dict],
    *,
    api_offers: list[dict] | None = None,
    policy: dict | None = None,
) -> Spec:
    data: dict[str, Any] = {
        "catalog": "none",
        "accelerators": accelerators,
        "offers": offers,
        "api_offers": api_offers or [],
        "workloads": workloads,
    }
    if policy:
        data["policy"] = policy
    return build_spec(data)


def solve(spec: Spec, *, with_explain: bool = False) -> dict[str, Any]:
    return plan(spec, with_explain=with_explain).to_dict()


def allocs(result: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    """Allocations of workload ``name`` by offer id."""
    (w,) = [w for w in result["workloads"] if w["name"] == name]
    return {a["offer"]: a for a in w["allocations"]}


def purchases(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["offer"]: p for p in result["purchases"]}


def two_offers(price2: float = 2.0, r2: float = 1.0, **policy: Any) -> Spec:
    """o1 at p1 ($1, 1 rps/replica) and o2 at p2 ($price2, r2 rps/replica), 1-chip replicas."""
    return make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-b", price=price2)],
        [inference("w", policy.pop("rps", 6), {"acc-a": (1, 1.0), "acc-b": (1, r2)})],
        policy=policy or None,
    )


# --- 1 demand -----------------------------------------------------------------------------


def test_demand_replicas_are_ceil_of_demand_over_replica_rate() -> None:
    # D = 10, r = 3 -> ceil(10/3) = 4 replicas x 1 chip x $1 x 730 h = $2920
    spec = make([acc("acc-a")], [offer("o1", "p1", "acc-a")], [inference("w", 10, {"acc-a": (1, 3.0)})])
    result = solve(spec)
    assert result["status"] == "optimal"
    assert result["total_usd"] == pytest.approx(4 * MONTH_H)
    a = allocs(result, "w")["o1"]
    assert a["replicas"] == 4
    assert a["requests_per_s"] == pytest.approx(12.0)
    assert a["share"] == pytest.approx(1.2)


def test_demand_uses_peak_to_mean() -> None:
    # D = 10 x 1.5 = 15 -> ceil(15/3) = 5 replicas -> 5 x 730 = $3650
    spec = make(
        [acc("acc-a")],
        [offer("o1", "p1", "acc-a")],
        [inference("w", 10, {"acc-a": (1, 3.0)}, peak_to_mean=1.5)],
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(5 * MONTH_H)
    assert allocs(result, "w")["o1"]["replicas"] == 5


def test_training_job_runs_on_exactly_one_offer() -> None:
    # 2 chips x 16.667 h: $33.33 on o1 ($1), $66.67 on o2 ($2): placed once, on o1
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-b", price=2.0)],
        [training()],
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(TRAIN_USD_PER_DOLLAR_HOUR, abs=0.01)
    assert pytest.approx(100 / 3) == TRAIN_USD_PER_DOLLAR_HOUR
    a = allocs(result, "t")
    assert list(a) == ["o1"]
    assert a["o1"]["chips"] == 2
    assert a["o1"]["run_hours"] == pytest.approx(16.67, abs=0.01)
    assert purchases(result)["o1"]["instances"] == 2


def test_api_workload_shares_sum_to_one_and_api_rate_splits_them() -> None:
    # 10 Mtok in + 5 Mtok out a month: a1 = 10x1 + 5x2 = $20, a2 = 10x2 + 5x1 = $25.
    # tokens/min at full share = 15e6 / (730 x 60) = 342.47; a1 limited to 40% of it:
    # 0.4 x 20 + 0.6 x 25 = $23
    full_tpm = 15e6 / (MONTH_H * 60)
    spec = make(
        [],
        [],
        [API_WORKLOAD],
        api_offers=[
            api_offer("a1", "pa", pin=1, pout=2, tpm=0.4 * full_tpm),
            api_offer("a2", "pb", pin=2, pout=1),
        ],
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(23.0, abs=0.01)
    a = allocs(result, "w")
    assert a["a1"]["share"] == pytest.approx(0.4, abs=1e-6)
    assert a["a2"]["share"] == pytest.approx(0.6, abs=1e-6)
    assert sum(x["share"] for x in a.values()) == pytest.approx(1.0, abs=1e-6)


def test_api_workload_without_limit_buys_cheapest_whole() -> None:
    spec = make(
        [],
        [],
        [API_WORKLOAD],
        api_offers=[api_offer("a1", "pa", pin=1, pout=2), api_offer("a2", "pb", pin=2, pout=1)],
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(20.0)
    assert {k: v["share"] for k, v in allocs(result, "w").items()} == {"a1": 1.0}


# --- 2 packing ----------------------------------------------------------------------------


def test_packing_two_chip_replicas_on_four_chip_instances() -> None:
    # D = 3, r = 1, t = 2: 3 replicas = 6 chips -> 2 instances of 4 chips = 8 x 730 = $5840
    # (a 4th replica fills the second instance at no cost, so 3 or 4 replicas are both optimal)
    spec = make(
        [acc("acc-a")],
        [offer("o1", "p1", "acc-a", cpi=4)],
        [inference("w", 3, {"acc-a": (2, 1.0)})],
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(8 * MONTH_H)
    a = allocs(result, "w")["o1"]
    assert a["replicas"] in (3, 4)
    assert a["chips"] == 2 * a["replicas"]
    p = purchases(result)["o1"]
    assert (p["instances"], p["chips"]) == (2, 8)


def test_packing_waste_makes_a_dearer_chip_cheaper() -> None:
    # t = 3 chips.  o1: 4-chip instances at $1 -> one replica per instance (1 chip wasted);
    # 3 replicas = 3 instances = 12 chip-h/h = $8760.  o2: 1-chip instances at $1.2 ->
    # 9 chips x 1.2 x 730 = $7884.  Mixes: 1 on o1 + 2 on o2 = 2920 + 5256 = 8176;
    # 2 + 1 = 5840 + 2628 = 8468.  Without packing granularity o1 ($1 < $1.2) would win.
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a", cpi=4), offer("o2", "p2", "acc-b", cpi=1, price=1.2)],
        [inference("w", 3, {"acc-a": (3, 1.0), "acc-b": (3, 1.0)}, allow_multi_instance=True)],
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(9 * 1.2 * MONTH_H)
    assert set(allocs(result, "w")) == {"o2"}
    assert purchases(result)["o2"]["instances"] == 9


def test_no_idle_instance_even_when_a_cap_wants_spend_elsewhere() -> None:
    # o1 at p1: one replica serves all D = 10 ($730).  o2 at p2: 1 rps per replica, $1.
    # Provider cap 0.5 needs p2 spend = p1 spend: 1 replica at each -> $1460, and every
    # instance bought carries a replica (no idle padding).
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-b")],
        [inference("w", 10, {"acc-a": (1, 10.0), "acc-b": (1, 1.0)})],
        policy={"max_spend_share": {"provider": 0.5}},
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(2 * MONTH_H)
    a = allocs(result, "w")
    assert a["o1"]["replicas"] == 1
    assert a["o2"]["replicas"] == 1
    for p in result["purchases"]:
        assert p["chips"] == a[p["offer"]]["chips"]


# --- 3 capacity ---------------------------------------------------------------------------


def test_capacity_spills_to_next_cheapest_offer() -> None:
    # D = 5: o1 ($1) has 2 instances, the other 3 replicas go to o2 ($2):
    # 2 x 730 + 3 x 2 x 730 = $5840 (instead of 5 x 730 = $3650 unbounded)
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a", avail=2), offer("o2", "p2", "acc-b", price=2.0)],
        [inference("w", 5, {"acc-a": (1, 1.0), "acc-b": (1, 1.0)})],
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(8 * MONTH_H)
    a = allocs(result, "w")
    assert (a["o1"]["replicas"], a["o2"]["replicas"]) == (2, 3)
    assert purchases(result)["o1"]["instances"] == 2


def test_training_capacity_blocks_inference_on_the_same_offer() -> None:
    # o1 ($1, 3 instances), o2 ($2).  Training needs 2 chips: $33.33 on o1, $66.67 on o2.
    # Inference D = 2 at 1 rps per replica.
    #   training on o1 + inference 1 on o1 + 1 on o2: 33.33 + 730 + 1460 = 2223.33
    #   training on o2 + inference 2 on o1:          66.67 + 1460        = 1526.67  <- best
    # (if training held no capacity: 33.33 + 1460 = 1493.33 on o1 alone)
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a", avail=3), offer("o2", "p2", "acc-b", price=2.0)],
        [inference("w", 2, {"acc-a": (1, 1.0), "acc-b": (1, 1.0)}), training()],
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(2 * MONTH_H + 2 * TRAIN_USD_PER_DOLLAR_HOUR, abs=0.01)
    assert list(allocs(result, "t")) == ["o2"]
    assert allocs(result, "w")["o1"]["replicas"] == 2
    assert purchases(result)["o1"]["instances"] == 2
    assert purchases(result)["o2"]["instances"] == 2  # the training job's 2 x 1-chip instances


def test_api_rate_limits_share_of_cheap_api_offer() -> None:
    # D = 10 rps, 200 tokens/request.  a1: $1/Mtok -> $2e-4 per request ->
    # 2e-4 x 10 x 2,628,000 = $5256 for all of it (GPUs: 10 x 730 = $7300).
    # At full share a1 would see 10 x 200 x 60 = 120,000 tokens/min; limit 60,000 ->
    # share <= 0.5: 0.5 x 5256 + 5 replicas x 730 = 2628 + 3650 = $6278
    spec = make(
        [acc("acc-a")],
        [offer("o1", "p1", "acc-a")],
        [inference("w", 10, {"acc-a": (1, 1.0)})],
        api_offers=[api_offer("a1", "pa", tpm=60_000)],
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(2628 + 3650, abs=0.01)
    a = allocs(result, "w")
    assert a["a1"]["share"] == pytest.approx(0.5, abs=1e-6)
    assert a["a1"]["usd"] == pytest.approx(2628, abs=0.01)
    assert a["o1"]["replicas"] == 5


def test_api_rate_limit_is_shared_by_workloads_of_one_api_offer() -> None:
    # Two workloads of 5 rps each, same limited offer (60,000 tokens/min = 5 rps in all):
    # together they may buy 5 rps of api; the other 5 rps need replicas.
    # api: 2e-4 x 5 rps x 2,628,000 = $2628 (whatever the split); 5 replicas = $3650.
    spec = make(
        [acc("acc-a")],
        [offer("o1", "p1", "acc-a")],
        [inference("w1", 5, {"acc-a": (1, 1.0)}), inference("w2", 5, {"acc-a": (1, 1.0)})],
        api_offers=[api_offer("a1", "pa", tpm=60_000)],
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(2628 + 3650, abs=0.01)
    api_rps = sum(allocs(result, n).get("a1", {"share": 0.0})["share"] * 5 for n in ("w1", "w2"))
    assert api_rps == pytest.approx(5.0, abs=1e-5)


# --- 4 lock-in caps (share of spend: max_spend_share; capacity caps: test_plan_caps.py) ---


def test_provider_cap_forces_split_between_two_providers() -> None:
    # D = 6; o1 $1/rps at p1, o2 $2/rps at p2.  Cap 0.5: x1 <= 0.5(x1 + 2 x2) and
    # 2 x2 <= 0.5(x1 + 2 x2) -> x1 = 2 x2; x1 + x2 >= 6 -> x2 = 2, x1 = 4:
    # (4 + 4) x 730 = $5840 (uncapped: 6 x 730 = $4380)
    result = solve(two_offers(rps=6, max_spend_share={"provider": 0.5}))
    assert result["total_usd"] == pytest.approx(8 * MONTH_H)
    a = allocs(result, "w")
    assert (a["o1"]["replicas"], a["o2"]["replicas"]) == (4, 2)
    assert result["shares"]["provider"] == pytest.approx({"p1": 0.5, "p2": 0.5})


def test_vendor_cap_forces_split_between_two_vendors() -> None:
    # Same numbers as the provider case, one provider, two chip vendors.
    spec = make(
        [acc("acc-a", "va"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p1", "acc-b", price=2.0)],
        [inference("w", 6, {"acc-a": (1, 1.0), "acc-b": (1, 1.0)})],
        policy={"max_spend_share": {"vendor": 0.5}},
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(8 * MONTH_H)
    assert result["shares"]["vendor"] == pytest.approx({"va": 0.5, "vb": 0.5})
    assert result["shares"]["provider"] == pytest.approx({"p1": 1.0})


def test_api_spend_counts_toward_its_provider() -> None:
    # D = 10; api a1 at pa $5256 for all demand, replicas $730 per rps at p1.
    # Cap 0.5 for both p1 and pa: s x 5256 = 730 x  (spends equal), x + 10 s >= 10.
    #   x = 4 -> s = 0.5556, 4 + 5.56 < 10: infeasible;  x = 5 -> s = 0.6944: ok
    # total = 2 x 3650 = $7300 (uncapped, or if api spend were not counted: $5256)
    spec = make(
        [acc("acc-a")],
        [offer("o1", "p1", "acc-a")],
        [inference("w", 10, {"acc-a": (1, 1.0)})],
        api_offers=[api_offer("a1", "pa")],
        policy={"max_spend_share": {"provider": 0.5}},
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(7300, abs=0.02)
    a = allocs(result, "w")
    assert a["o1"]["replicas"] == 5
    assert a["a1"]["share"] == pytest.approx(3650 / 5256, abs=1e-5)
    assert result["shares"]["provider"] == pytest.approx({"p1": 0.5, "pa": 0.5}, abs=1e-5)


# --- 5 survival ---------------------------------------------------------------------------


def test_survival_forces_replicas_at_a_second_provider() -> None:
    # D = 5; o1 at p1: $1, 1 rps/replica ($730/rps).  o2 at p2: $2.5, 2 rps ($912.5/rps).
    # No policy: 5 x o1 = $3650.  f = 0.5: without p1, 2 x2 >= 2.5 -> x2 = 2;
    # without p2, x1 >= 2.5 -> x1 = 3; cost (3 + 2 x 2.5) x 730 = $5840.
    # Survival: without p1 4/5 = 0.8 remain, without p2 3/5 = 0.6.
    result = solve(two_offers(price2=2.5, r2=2.0, rps=5, survive_provider_loss=0.5), with_explain=True)
    assert result["total_usd"] == pytest.approx(8 * MONTH_H)
    a = allocs(result, "w")
    assert (a["o1"]["replicas"], a["o2"]["replicas"]) == (3, 2)
    assert result["survival"] == pytest.approx({"p1": 0.8, "p2": 0.6})
    assert result["explain"]["survival_premium_usd"] == pytest.approx(8 * MONTH_H - 5 * MONTH_H)
    assert result["explain"]["lock_in_premium_usd"] == 0.0


def _survival_with_api(tpm: float | None, **policy: object) -> Spec:
    # o1/o2 as above plus a very dear api offer at pa ($100/Mtok: 0.02 x 5 x 2,628,000 =
    # $262,800 for all demand) that is never bought but may count for survival.
    return make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-b", price=2.5)],
        [inference("w", 5, {"acc-a": (1, 1.0), "acc-b": (1, 2.0)})],
        api_offers=[api_offer("a1", "pa", pin=100, pout=100, tpm=tpm)],
        policy={"survive_provider_loss": 0.5, **policy},
    )


def test_api_offer_without_quota_counts_nothing_for_survival() -> None:
    # issue 13: an api offer with no stated quota that the plan does not buy is no survival
    # capacity.  Same numbers as the two-provider case above: x1 = 3, x2 = 2 = $5840.
    result = solve(_survival_with_api(None))
    assert result["total_usd"] == pytest.approx(8 * MONTH_H)
    assert result["survival"] == pytest.approx({"p1": 0.8, "p2": 0.6})
    w = next(w for w in result["workloads"] if w["name"] == "w")
    assert w["api_fallbacks"] == []
    assert [r["kind"] for r in w["survival"]["p1"]["relies_on"]] == ["replicas"]


def test_api_fallback_unlimited_names_the_offer_and_its_monthly_cost() -> None:
    # With api_fallback: unlimited, losing p1 leaves the unlimited a1: the plan is the
    # unconstrained 5 x o1 = $3650, and a1 carries all 5 rps of the loss:
    # 5 rps x 2,628,000 s x (200 tokens x $100/Mtok = $0.02) = $262,800 per month of outage.
    result = solve(_survival_with_api(None, api_fallback="unlimited"), with_explain=True)
    assert result["total_usd"] == pytest.approx(5 * MONTH_H)
    assert set(allocs(result, "w")) == {"o1"}
    assert result["survival"] == {"p1": 1.0}
    assert result["explain"]["survival_premium_usd"] == 0.0
    w = next(w for w in result["workloads"] if w["name"] == "w")
    (fb,) = w["survival"]["p1"]["relies_on"]
    assert (fb["offer"], fb["kind"], fb["unlimited"]) == ("a1", "api-fallback", True)
    assert fb["requests_per_s"] == pytest.approx(5.0)
    assert fb["tokens_per_minute"] == pytest.approx(5 * 200 * 60)
    assert fb["usd_per_month_of_outage"] == pytest.approx(262_800)


def test_limited_api_offer_contributes_its_cap_in_requests_per_s() -> None:
    # Limit 18,000 tokens/min / (200 tokens x 60) = 1.5 rps counted wherever pa survives.
    # Without p1: 2 x2 + 1.5 >= 2.5 -> x2 = 1; without p2: x1 + 1.5 >= 2.5 -> x1 >= 1;
    # demand x1 + 2 x2 >= 5 -> x1 = 3: (3 + 2.5) x 730 = $4015.
    # Survival: without p1 (2 + 1.5)/5 = 0.7; without p2 (3 + 1.5)/5 = 0.9.
    result = solve(_survival_with_api(18_000))
    assert result["total_usd"] == pytest.approx(5.5 * MONTH_H)
    a = allocs(result, "w")
    assert (a["o1"]["replicas"], a["o2"]["replicas"]) == (3, 1)
    assert "a1" not in a
    assert result["survival"] == pytest.approx({"p1": 0.7, "p2": 0.9})


def test_survival_counts_limited_api_elsewhere_when_lost_provider_has_the_unlimited_one() -> None:
    # D = 5.  a1 at pa: unlimited, $1/Mtok -> 2e-4 x 5 x 2,628,000 = $2628 for all demand.
    # a2 at pb: $100/Mtok, limited to 72,000 tokens/min = 72,000 / 12,000 = 6 rps.
    # o1 at p1: 5 replicas = $3650.  f = 1.  Cheapest: all from a1 ($2628); without pa,
    # a2's 6 rps >= 5 remain; without pb or p1 the unlimited a1 remains: survival holds.
    spec = make(
        [acc("acc-a")],
        [offer("o1", "p1", "acc-a")],
        [inference("w", 5, {"acc-a": (1, 1.0)})],
        api_offers=[api_offer("a1", "pa"), api_offer("a2", "pb", pin=100, pout=100, tpm=72_000)],
        policy={"survive_provider_loss": 1.0},
    )
    result = solve(spec)
    assert result["total_usd"] == pytest.approx(2628, abs=0.01)
    assert result["survival"] == {"pa": 1.0}


# --- 6 budget -----------------------------------------------------------------------------


def test_budget_above_cheapest_plan_keeps_it() -> None:
    spec = make(
        [acc("acc-a")],
        [offer("o1", "p1", "acc-a")],
        [inference("w", 4, {"acc-a": (1, 1.0)})],
        policy={"budget_usd": 2920.5},
    )
    result = solve(spec, with_explain=True)
    assert result["status"] == "optimal"
    assert result["total_usd"] == pytest.approx(2920)
    assert result["explain"]["budget_slack_usd"] == pytest.approx(0.5)


def test_budget_below_cheapest_plan_is_infeasible() -> None:
    # cheapest plan: 4 x 730 = $2920 > $2919
    spec = make(
        [acc("acc-a")],
        [offer("o1", "p1", "acc-a")],
        [inference("w", 4, {"acc-a": (1, 1.0)})],
        policy={"budget_usd": 2919},
    )
    result = solve(spec)
    assert result["status"] == "infeasible"
    assert result["infeasible"]["family"] == "budget"
    assert result["infeasible"]["subject"] == "budget"
    assert "2,920" in result["infeasible"]["message"]
    assert result["purchases"] == []


# --- infeasibility diagnosis --------------------------------------------------------------


def test_diagnosis_demand_names_the_workload() -> None:
    # D = 5 but o1 has 2 instances of 1 rps: 40% of the demand can be bought
    spec = make(
        [acc("acc-a")],
        [offer("o1", "p1", "acc-a", avail=2)],
        [inference("other", 1, {"acc-a": (1, 1.0)}), inference("big", 5, {"acc-a": (1, 1.0)})],
    )
    result = solve(spec)
    assert result["status"] == "infeasible"
    assert result["infeasible"]["family"] == "demand"
    assert result["infeasible"]["subject"] == "big"


def test_diagnosis_survival_names_workload_and_provider() -> None:
    # f = 1, D = 5: losing p1 leaves o2 with 1 instance = 1 rps < 5
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a"), offer("o2", "p2", "acc-b", avail=1)],
        [inference("w", 5, {"acc-a": (1, 1.0), "acc-b": (1, 1.0)})],
        policy={"survive_provider_loss": 1.0},
    )
    result = solve(spec)
    assert result["status"] == "infeasible"
    assert result["infeasible"]["family"] == "survival"
    assert result["infeasible"]["subject"] == "w/p1"


def test_diagnosis_lock_in_with_a_single_provider() -> None:
    spec = make(
        [acc("acc-a")],
        [offer("o1", "p1", "acc-a")],
        [inference("w", 4, {"acc-a": (1, 1.0)})],
        policy={"max_spend_share": {"provider": 0.5}},
    )
    result = solve(spec)
    assert result["status"] == "infeasible"
    assert result["infeasible"]["family"] == "spend-share"
    assert result["infeasible"]["subject"] == "provider=p1"


# --- explain ------------------------------------------------------------------------------


def test_explain_dilution_of_a_spend_share_cap() -> None:
    # capped $5840 (see the provider-cap case) minus uncapped 6 x 730 = $4380: all of it
    # spend that exists only to dilute the share of spend (no capacity cap is set)
    result = solve(two_offers(rps=6, max_spend_share={"provider": 0.5}), with_explain=True)
    assert result["explain"]["dilution_usd"] == pytest.approx(1460)
    assert result["explain"]["lock_in_premium_usd"] == 0.0
    assert result["explain"]["survival_premium_usd"] == 0.0
    assert result["explain"]["budget_slack_usd"] is None


def test_explain_reseller_markup_when_direct_host_is_rate_limited() -> None:
    # api workload 10 Mtok in + 5 out.  Direct (maker) $1/$1 = $15 for all, limited to 40%
    # of the tokens/min; reseller $2/$2 = $30.  Plan: 0.4 x 15 + 0.6 x 30 = $24.
    # Markup: (2 - 1) $/Mtok x 0.6 x 15 Mtok = $9.
    full_tpm = 15e6 / (MONTH_H * 60)
    spec = make(
        [],
        [],
        [API_WORKLOAD],
        api_offers=[
            api_offer("direct", "maker", tpm=0.4 * full_tpm),
            api_offer("resold", "host", pin=2, pout=2, resells="maker"),
        ],
    )
    result = solve(spec, with_explain=True)
    assert result["total_usd"] == pytest.approx(24.0, abs=0.01)
    ex = result["explain"]
    assert ex["reseller_markup_usd"] == pytest.approx(9.0, abs=0.01)
    (m,) = ex["reseller_markups"]
    assert (m["offer"], m["direct_offer"], m["resells"]) == ("resold", "direct", "maker")
    assert m["usd"] == pytest.approx(18.0, abs=0.01)
    assert m["direct_usd"] == pytest.approx(9.0, abs=0.01)


def test_explain_no_reseller_markup_when_direct_is_unlimited() -> None:
    spec = make(
        [],
        [],
        [API_WORKLOAD],
        api_offers=[
            api_offer("direct", "maker"),
            api_offer("resold", "host", pin=2, pout=2, resells="maker"),
        ],
    )
    result = solve(spec, with_explain=True)
    assert result["total_usd"] == pytest.approx(15.0)
    assert result["explain"]["reseller_markup_usd"] == 0
    assert result["explain"]["reseller_markups"] == []


# --- determinism, shares, survival output -------------------------------------------------


def _tied() -> Spec:
    # identical offers; the spec lists the higher id first
    return make(
        [acc("acc-a")],
        [offer("o2", "p2", "acc-a"), offer("o1", "p1", "acc-a")],
        [inference("w", 3, {"acc-a": (1, 1.0)})],
    )


def test_tie_goes_to_the_lower_offer_id() -> None:
    result = solve(_tied())
    assert result["total_usd"] == pytest.approx(3 * MONTH_H)
    assert set(allocs(result, "w")) == {"o1"}


def test_two_runs_give_identical_plans() -> None:
    spec = two_offers(price2=2.5, r2=2.0, rps=5, survive_provider_loss=0.5)
    first, second = solve(spec, with_explain=True), solve(spec, with_explain=True)
    first.pop("solve_seconds")
    second.pop("solve_seconds")
    assert first == second
    tied_a, tied_b = solve(_tied()), solve(_tied())
    tied_a.pop("solve_seconds")
    tied_b.pop("solve_seconds")
    assert tied_a == tied_b


def test_purchases_sum_to_total_and_shares_sum_to_one() -> None:
    # mixed plan: GPUs, api tokens and a training job
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a", avail=3), offer("o2", "p2", "acc-b", price=2.0)],
        [inference("w", 10, {"acc-a": (1, 1.0), "acc-b": (1, 1.0)}), training()],
        api_offers=[api_offer("a1", "pa", tpm=60_000)],
    )
    result = solve(spec)
    # o1's 3 instances: training ($33.33 on 2 chips) vs. replicas; api takes 5 rps for $2628;
    # 5 replicas remain: training on o2 ($66.67) and 3 replicas on o1 + 2 on o2 =
    # 66.67 + 2190 + 2920 = 5176.67; or training on o1 + 1 on o1 + 4 on o2 =
    # 33.33 + 730 + 5840 = 6603.33.  -> 2628 + 5176.67 = $7804.67
    assert result["total_usd"] == pytest.approx(2628 + 2 * TRAIN_USD_PER_DOLLAR_HOUR + 7 * MONTH_H, abs=0.01)
    assert sum(p["usd"] for p in result["purchases"]) == pytest.approx(result["total_usd"], abs=0.02)
    assert sum(w["usd"] for w in result["workloads"]) == pytest.approx(result["total_usd"], abs=0.02)
    assert sum(result["shares"]["provider"].values()) == pytest.approx(1.0, abs=1e-5)
    # the api offer names no vendor: vendor shares cover only the chips
    chips_usd = sum(p["usd"] for p in result["purchases"] if p["accelerator"] is not None)
    assert sum(result["shares"]["vendor"].values()) == pytest.approx(
        chips_usd / result["total_usd"], abs=1e-5
    )
    assert result["shares"]["provider"]["pa"] == pytest.approx(2628 / result["total_usd"], abs=1e-5)
