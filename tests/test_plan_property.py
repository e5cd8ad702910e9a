"""Property tests: every constraint recomputed from a plan's JSON output, and a brute-force oracle.

Survival is also checked three ways on every random plan: the plan table, ``polyfleet
risk``'s one-provider-down sweep and ``polyfleet frontier``'s ``min_survival`` must all
equal a recomputation from the plan's own allocations and the spec (issue 13).

Random small fleets are planned; a feasible plan's ``to_dict()`` (purchases, allocations,
shares, survival) plus the spec alone must satisfy demand, packing, capacity, api rate,
lock-in caps, survival and budget, and its money must add up.  Tiny single-workload
instances are checked against an exhaustive search over replicas per offer.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from polyfleet.errors import SpecError
from polyfleet.perf import training_perf
from polyfleet.plan import FAMILIES, plan
from polyfleet.risk import RiskAssumptions, analyse, fleet_from_plan
from polyfleet.risk.frontier import plan_risk
from polyfleet.spec import ApiWorkload, InferenceWorkload, Spec, TrainingWorkload, build_spec

MONTH_H = 730.0
CARD = {"name": "m", "params_b": 1, "layers": 2, "kv_heads": 1, "head_dim": 8}
TOL = 1e-6

prices = st.integers(2, 16).map(lambda q: q / 4)  # $0.50 .. $4.00 in quarters


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    """A random fleet spec dict; offer 0..n each get their own accelerator acc-<offer id>."""
    n_prov = draw(st.integers(2, 4))
    providers = [f"p{i}" for i in range(n_prov)]
    n_off = draw(st.integers(2, 5))
    accelerators, offers = [], []
    for j in range(n_off):
        cpi = draw(st.sampled_from([1, 2, 4, 8]))
        accelerators.append(
            {
                "id": f"acc-o{j}",
                "vendor": draw(st.sampled_from(["va", "vb", "vc"])),
                "hbm_gb": 80,
                "hbm_tbps": 3,
                "bf16_tflops": 1000,
                "stack": "cuda",
            }
        )
        offers.append(
            {
                "id": f"o{j}",
                "provider": draw(st.sampled_from(providers)),
                "accelerator": f"acc-o{j}",
                "chips_per_instance": cpi,
                "usd_per_chip_hour": draw(prices),
                "available_instances": draw(st.integers(1, 10)),
                "term": draw(st.sampled_from(["on-demand", "on-demand", "spot"])),
            }
        )
    api_offers = []
    for i in range(draw(st.integers(0, 2))):
        limit = draw(st.one_of(st.none(), st.integers(1, 20).map(lambda k: k * 6000)))
        api = {
            "id": f"a{i}",
            "provider": draw(st.sampled_from([*providers, "papi"])),
            "model": "m",
            "usd_per_mtok_in": draw(prices),
            "usd_per_mtok_out": draw(prices),
        }
        if limit is not None:
            api["max_tokens_per_minute"] = limit
        if draw(st.booleans()):
            api["vendor"] = draw(st.sampled_from(["va", "vb"]))
        api_offers.append(api)
    workloads: list[dict[str, Any]] = []
    for w in range(draw(st.integers(1, 3))):
        throughput = {}
        for j, o in enumerate(offers):
            cpi = o["chips_per_instance"]
            t = draw(st.integers(1, cpi))
            if w > 0 and j > 0 and draw(st.integers(0, 5)) == 0:
                t = cpi + 1  # does not fit: offer not eligible for this workload
            throughput[f"acc-o{j}"] = {
                "chips_per_replica": t,
                "requests_per_s": draw(st.integers(1, 12).map(lambda k: k / 2)),
            }
        workloads.append(
            {
                "name": f"w{w}",
                "kind": "inference",
                "model": CARD,
                "requests_per_s": draw(st.integers(1, 12)),
                "peak_to_mean": draw(st.sampled_from([1.0, 1.5])),
                "input_tokens": draw(st.sampled_from([100, 500])),
                "output_tokens": draw(st.sampled_from([100, 200])),
                "throughput": throughput,
                # w0 may buy per token: an api offer nobody may use is bad input
                "allow_api": w == 0 or draw(st.booleans()),
            }
        )
    if draw(st.booleans()):
        workloads.append(
            {
                "name": "train",
                "kind": "training",
                "model": {"params_b": 1},
                "tokens_b": draw(st.integers(1, 20)),
                "deadline_days": draw(st.sampled_from([1, 2, 5])),
                "mfu": 0.5,
            }
        )
    if api_offers and draw(st.booleans()):
        workloads.append(
            {
                "name": "api",
                "kind": "api",
                "model": "m",
                "mtok_in_per_month": draw(st.integers(1, 50)),
                "mtok_out_per_month": draw(st.integers(0, 50)),
            }
        )
    policy: dict[str, Any] = {
        "max_share": {
            "provider": draw(st.one_of(st.none(), st.floats(0.3, 1.0))),
            "vendor": draw(st.one_of(st.none(), st.floats(0.3, 1.0))),
        },
        "max_spend_share": {
            "provider": draw(st.one_of(st.none(), st.none(), st.floats(0.3, 1.0))),
            "vendor": draw(st.one_of(st.none(), st.none(), st.floats(0.3, 1.0))),
        },
        "survive_provider_loss": draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0))),
        "api_fallback": draw(st.sampled_from(["quota", "unlimited"])),
        "spot_counts_for_survival": draw(st.booleans()),
    }
    if draw(st.booleans()):
        policy["budget_usd"] = draw(st.integers(1_000, 150_000))
    return {
        "catalog": "none",
        "accelerators": accelerators,
        "offers": offers,
        "api_offers": api_offers,
        "workloads": workloads,
        "policy": policy,
    }


def _api_tpm(spec: Spec, w: InferenceWorkload | ApiWorkload) -> float:
    """Tokens/min at full share, from the planning model (constraint 3)."""
    if isinstance(w, InferenceWorkload):
        return w.peak_requests_per_s * (w.input_tokens + w.output_tokens) * 60
    return (w.mtok_in_per_month + w.mtok_out_per_month) * 1e6 / (MONTH_H * 60)


def _api_usd(spec: Spec, w: InferenceWorkload | ApiWorkload, a: Any) -> float:
    """Usd for the whole demand of ``w`` bought from api offer ``a``."""
    if isinstance(w, InferenceWorkload):
        per_request = (w.input_tokens * a.usd_per_mtok_in + w.output_tokens * a.usd_per_mtok_out) / 1e6
        return per_request * w.requests_per_s * MONTH_H * 3600 * spec.horizon_months
    return (w.mtok_in_per_month * a.usd_per_mtok_in + w.mtok_out_per_month * a.usd_per_mtok_out) * (
        spec.horizon_months
    )


def check_plan(spec: Spec, out: dict[str, Any]) -> None:
    """Recompute constraints 1-6 and the money from ``out`` (a ``Plan.to_dict()``) and ``spec``."""
    cat = spec.catalog
    offers, apis = cat.offers, cat.api_offers
    policy = spec.policy
    by_name = {w["name"]: w for w in out["workloads"]}
    assert set(by_name) == {w.name for w in spec.workloads}
    chips_on: dict[str, int] = {}
    train_instances: dict[str, int] = {}
    train_usd: dict[str, float] = {}
    api_tpm_used: dict[str, float] = {}
    api_usd: dict[str, float] = {}
    # rounding allowed on what is recomputed from shares printed to 6 decimals
    api_tol: dict[str, float] = {}
    api_tpm_tol: dict[str, float] = {}

    for w in spec.workloads:
        allocations = by_name[w.name]["allocations"]
        gpu = [a for a in allocations if a["accelerator"] is not None]
        api = [a for a in allocations if a["accelerator"] is None]
        for a in api:
            assert a["offer"] in apis and apis[a["offer"]].model == (
                w.model if isinstance(w.model, str) else w.model.name
            )
            assert 0 < a["share"] <= 1 + TOL
            tpm = _api_tpm(spec, w)
            api_tpm_used[a["offer"]] = api_tpm_used.get(a["offer"], 0.0) + a["share"] * tpm
            api_tpm_tol[a["offer"]] = api_tpm_tol.get(a["offer"], 0.0) + 1e-6 * tpm
            full = _api_usd(spec, w, apis[a["offer"]])
            usd = a["share"] * full
            # the share is printed to 6 decimals: allow its rounding on the whole demand's cost
            assert a["usd"] == pytest.approx(usd, abs=0.01 + 1e-6 * full)
            api_usd[a["offer"]] = api_usd.get(a["offer"], 0.0) + usd
            api_tol[a["offer"]] = api_tol.get(a["offer"], 0.01) + 1e-6 * full
        if isinstance(w, InferenceWorkload):
            D = w.peak_requests_per_s
            served = 0.0
            for a in gpu:
                m = w.throughput[offers[a["offer"]].accelerator]
                assert a["chips"] == a["replicas"] * m.chips_per_replica
                assert m.chips_per_replica <= offers[a["offer"]].chips_per_instance
                assert a["requests_per_s"] == pytest.approx(a["replicas"] * m.requests_per_s, abs=1e-4)
                served += a["replicas"] * m.requests_per_s
                chips_on[a["offer"]] = chips_on.get(a["offer"], 0) + a["chips"]
            api_share = sum(a["share"] for a in api)
            assert not api or w.allow_api
            assert api_share <= 1 + TOL
            assert served + D * api_share >= D * (1 - TOL * (1 + len(api))), f"demand of {w.name}"
        elif isinstance(w, TrainingWorkload):
            (a,) = allocations  # placed exactly once
            o = offers[a["offer"]]
            perf = training_perf(
                spec.card(w),
                cat.accelerators[o.accelerator],
                tokens_b=w.tokens_b,
                deadline_days=w.deadline_days,
                chips_per_instance=o.chips_per_instance,
                mfu=w.mfu,
            )
            assert a["chips"] == perf.chips
            assert a["instances"] == perf.chips // o.chips_per_instance
            cost = perf.chips * o.usd_per_chip_hour * perf.run_hours
            assert a["usd"] == pytest.approx(cost, abs=0.01)
            train_instances[o.id] = train_instances.get(o.id, 0) + a["instances"]
            train_usd[o.id] = train_usd.get(o.id, 0.0) + cost
        else:
            assert not gpu
            assert sum(a["share"] for a in api) == pytest.approx(1.0, abs=TOL), f"api {w.name}"

    purchases = {p["offer"]: p for p in out["purchases"]}
    assert len(purchases) == len(out["purchases"])
    total = 0.0
    for oid in set(chips_on) | set(train_instances):
        assert oid in purchases
    for pid, p in purchases.items():
        if pid in apis:  # per-token purchase
            assert p["usd"] == pytest.approx(api_usd.get(pid, 0.0), abs=api_tol.get(pid, 0.01))
            assert p["provider"] == apis[pid].provider
            total += api_usd.get(pid, 0.0)
            continue
        o = offers[pid]
        cpi = o.chips_per_instance
        assert p["provider"] == o.provider
        assert p["chips"] == p["instances"] * cpi
        assert p["instances"] <= o.available_instances, f"capacity of {pid}"
        inf_instances = p["instances"] - train_instances.get(pid, 0)
        used = chips_on.get(pid, 0)
        assert used <= inf_instances * cpi, f"packing of {pid}"
        assert inf_instances * cpi - used <= cpi - 1, f"idle instance on {pid}"
        usd = inf_instances * cpi * o.usd_per_chip_hour * MONTH_H * spec.horizon_months
        usd += train_usd.get(pid, 0.0)
        assert p["usd"] == pytest.approx(usd, abs=0.02)
        total += usd
    for aid, used_tpm in api_tpm_used.items():
        limit = apis[aid].max_tokens_per_minute
        if limit is not None:
            assert used_tpm <= limit + api_tpm_tol[aid], f"api rate of {aid}"

    tol = 0.01 * (len(purchases) + 1) + sum(api_tol.values())
    assert out["total_usd"] == pytest.approx(total, abs=tol)
    assert out["total_usd"] == pytest.approx(sum(p["usd"] for p in out["purchases"]), abs=0.02)
    if policy.budget_usd is not None:
        assert out["total_usd"] <= policy.budget_usd + 0.01

    # lock-in: shares recomputed from purchases, within the caps
    for group in ("provider", "vendor"):
        mine: dict[str, float] = {}
        for p in out["purchases"]:
            if p[group]:
                mine[p[group]] = mine.get(p[group], 0.0) + p["usd"]
        if total > 0:
            assert out["shares"][group] == pytest.approx(
                {k: v / out["total_usd"] for k, v in mine.items()}, abs=1e-4
            )
        cap = getattr(policy.max_spend_share, group)
        if cap is not None and total > 0:
            for v, usd in mine.items():
                assert usd <= cap * total + tol, f"{group} spend cap on {v}"
        # max_share: each value's share of every service's peak capacity (api: demand share)
        cap = getattr(policy.max_share, group)
        if cap is None or cap >= 1:  # 100% of the peak is no cap: whole replicas may hold more
            continue
        for w in spec.workloads:
            if isinstance(w, TrainingWorkload):
                continue
            D = w.peak_requests_per_s if isinstance(w, InferenceWorkload) else 1.0
            held: dict[str, float] = {}
            for a in by_name[w.name]["allocations"]:
                if a[group]:
                    amount = a["requests_per_s"] if a["accelerator"] is not None else a["share"] * D
                    held[a[group]] = held.get(a[group], 0.0) + amount
            for v, amount in held.items():
                assert amount <= cap * D * (1 + 1e-5) + 1e-5, f"{group} capacity cap on {v} in {w.name}"

    # survival (docs: Survival), recomputed from the allocations and the spec alone
    worst_by = survival_by_hand(spec, out)
    assert set(out["survival"]) == {p["provider"] for p in out["purchases"]}
    assert out["survival"] == pytest.approx(worst_by, abs=1e-4)
    for prov, worst in worst_by.items():
        assert worst >= policy.survive_provider_loss - 1e-4, f"survival without {prov}"


def survival_by_hand(spec: Spec, out: dict[str, Any]) -> dict[str, float]:
    """Per provider bought from: the worst inference workload's served fraction without it.

    Replicas elsewhere (spot only when the policy counts it), plus each api offer of the
    model elsewhere for the larger of what the plan buys from it and its quota
    (max_tokens_per_minute in the workload's requests/s); an offer with no quota counts
    without limit only under ``api_fallback: unlimited``.
    """
    policy = spec.policy
    by_name = {w["name"]: w for w in out["workloads"]}
    worst_by: dict[str, float] = {}
    for prov in {p["provider"] for p in out["purchases"]}:
        worst = 1.0
        for w in spec.workloads:
            if not isinstance(w, InferenceWorkload):
                continue
            D = w.peak_requests_per_s
            allocations = by_name[w.name]["allocations"]
            rest = sum(
                a["requests_per_s"]
                for a in allocations
                if a["accelerator"] is not None
                and a["provider"] != prov
                and (a["term"] != "spot" or policy.spot_counts_for_survival)
            )
            bought = {a["offer"]: a["share"] * D for a in allocations if a["accelerator"] is None}
            if w.allow_api:
                for a in spec.catalog.api_offers.values():
                    if a.model != "m" or a.provider == prov:
                        continue
                    if a.max_tokens_per_minute is not None:
                        quota = a.max_tokens_per_minute / ((w.input_tokens + w.output_tokens) * 60)
                    else:
                        quota = math.inf if policy.api_fallback == "unlimited" else 0.0
                    rest += max(bought.get(a.id, 0.0), quota)
            worst = min(worst, min(1.0, rest / D))
        worst_by[prov] = worst
    return worst_by


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_random_fleet_plans_satisfy_every_constraint(data: dict[str, Any]) -> None:
    try:
        spec = build_spec(data)
        result = plan(spec)
    except SpecError:
        reject()  # an offer or workload nothing can use: not a plannable spec
    out = result.to_dict()
    event(f"status {out['status']}" + (f" ({out['infeasible']['family']})" if "infeasible" in out else ""))
    if out["status"] == "infeasible":
        # a constraint family, or no offer can hold a workload's replica ("memory")
        assert out["infeasible"]["family"] in (*FAMILIES, "memory")
        assert out["infeasible"]["subject"]  # names the workload, group or provider
        assert out["purchases"] == []
        return
    assert out["status"] in ("optimal", "feasible")
    check_plan(spec, out)
    # the three readers of "served after losing p" agree with the recomputation by hand:
    # the plan table (out["survival"]), polyfleet risk's one-provider-down sweep, frontier
    by_hand = survival_by_hand(spec, out)
    fleet = fleet_from_plan(out)
    report = analyse(fleet, RiskAssumptions(), scenarios=4, seed=0)
    swept = {row["provider"]: row["down_served_fraction"] for row in report["providers"]}
    assert swept == pytest.approx(by_hand, abs=1e-4)
    point = plan_risk(out, RiskAssumptions(), scenarios=4, seed=0)
    assert point["min_survival"] == pytest.approx(min(by_hand.values(), default=1.0), abs=1e-4)


# --- brute-force oracle -------------------------------------------------------------------


@st.composite
def tiny(draw: st.DrawFn) -> dict[str, Any]:
    """One inference workload, 2-3 offers, no api, no policy."""
    n_off = draw(st.integers(2, 3))
    accelerators, offers, throughput = [], [], {}
    for j in range(n_off):
        cpi = draw(st.sampled_from([1, 2, 4, 8]))
        accelerators.append(
            {
                "id": f"acc-o{j}",
                "vendor": "va",
                "hbm_gb": 80,
                "hbm_tbps": 3,
                "bf16_tflops": 1000,
                "stack": "cuda",
            }
        )
        offers.append(
            {
                "id": f"o{j}",
                "provider": f"p{j}",
                "accelerator": f"acc-o{j}",
                "chips_per_instance": cpi,
                "usd_per_chip_hour": draw(prices),
                "available_instances": draw(st.integers(1, 4)),
            }
        )
        throughput[f"acc-o{j}"] = {
            "chips_per_replica": draw(st.integers(1, cpi)),
            "requests_per_s": draw(st.integers(1, 10).map(lambda k: k / 2)),
        }
    workload = {
        "name": "w",
        "kind": "inference",
        "model": CARD,
        "requests_per_s": draw(st.integers(1, 30)),
        "peak_to_mean": draw(st.sampled_from([1.0, 1.5])),
        "input_tokens": 100,
        "output_tokens": 100,
        "throughput": throughput,
    }
    return {
        "catalog": "none",
        "accelerators": accelerators,
        "offers": offers,
        "workloads": [workload],
    }


def brute_force(data: dict[str, Any]) -> float | None:
    """Cheapest replicas-per-offer vector meeting peak demand, by enumeration (None: none)."""
    w = data["workloads"][0]
    D = w["requests_per_s"] * w["peak_to_mean"]
    ranges, terms = [], []
    for o in data["offers"]:
        m = w["throughput"][o["accelerator"]]
        cpi, t = o["chips_per_instance"], m["chips_per_replica"]
        ranges.append(range(o["available_instances"] * cpi // t + 1))
        terms.append((t, cpi, o["usd_per_chip_hour"] * cpi * MONTH_H, m["requests_per_s"]))
    best = None
    for xs in itertools.product(*ranges):
        if sum(x * r for x, (_, _, _, r) in zip(xs, terms, strict=True)) < D - 1e-9:
            continue
        cost = sum(-(-x * t // cpi) * usd for x, (t, cpi, usd, _) in zip(xs, terms, strict=True))
        best = cost if best is None else min(best, cost)
    return best


@settings(max_examples=40, deadline=None)
@given(tiny())
def test_milp_matches_brute_force_on_tiny_fleets(data: dict[str, Any]) -> None:
    expected = brute_force(data)
    out = plan(build_spec(data)).to_dict()
    if expected is None:
        assert out["status"] == "infeasible"
        assert out["infeasible"]["family"] == "demand"
        assert out["infeasible"]["subject"] == "w"
        return
    assert out["status"] == "optimal"
    assert out["total_usd"] == pytest.approx(expected, abs=0.01)
