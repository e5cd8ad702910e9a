"""Request-length histograms (``lengths``) and per-accelerator confidence in the plan.

Specs are inline (``catalog: none``).  Expected replica figures come from the perf
function itself, per bucket, so the tests check how the planner *combines* buckets:
chips = the most any bucket needs, requests/s = 1 / sum_i(weight_i / rps_i).
"""

from __future__ import annotations

import copy
import io
from typing import Any

import pytest
from rich.console import Console

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.errors import SpecError
from polyfleet.perf.configs import best_inference_perf
from polyfleet.plan import plan
from polyfleet.plan.candidates import build_candidates
from polyfleet.report.tables import plan_tables
from polyfleet.spec import build_spec

MONTH_S = 730.0 * 3600
CARD = {
    "name": "m70",
    "params_b": 70.6,
    "layers": 80,
    "hidden": 8192,
    "heads": 64,
    "kv_heads": 8,
    "head_dim": 128,
}
SMALL_CARD = {**CARD, "name": "m8", "params_b": 8.0, "layers": 32, "hidden": 4096, "heads": 32}
MIX = [
    {"input_tokens": 500, "output_tokens": 100, "weight": 0.7},
    {"input_tokens": 8000, "output_tokens": 800, "weight": 0.3},
]


def acc(acc_id: str, *, confidence: str = "medium", stack: str = "cuda") -> dict[str, Any]:
    return {
        "id": acc_id,
        "vendor": "va",
        "hbm_gb": 80,
        "hbm_tbps": 3,
        "bf16_tflops": 1000,
        "scaleup_gbps": 900,
        "stack": stack,
        "confidence": confidence,
    }


def offer(offer_id: str, accelerator: str, *, cpi: int = 8, provider: str = "p1") -> dict[str, Any]:
    return {
        "id": offer_id,
        "provider": provider,
        "accelerator": accelerator,
        "chips_per_instance": cpi,
        "usd_per_chip_hour": 1.0,
        "available_instances": 100,
    }


def inference(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "svc", "kind": "inference", "model": "m70", "requests_per_s": 10}
    base.update(fields)
    return base


def spec_data(workloads: list[dict[str, Any]], **sections: Any) -> dict[str, Any]:
    return {
        "catalog": "none",
        "models": [CARD, SMALL_CARD],
        "accelerators": sections.pop("accelerators", [acc("a1")]),
        "offers": sections.pop("offers", [offer("o1", "a1")]),
        "workloads": workloads,
        **sections,
    }


def bucket_perf(bucket: dict[str, Any], **kwargs: Any):
    # what the planner asks the perf model for: the configuration within one 8-chip
    # instance that serves the bucket's peak on the fewest chips, SLO targets at the
    # workload's percentile (0.99) under Poisson load
    targets = "tpot_ms" in kwargs or "ttft_ms" in kwargs
    return best_inference_perf(
        ModelCard(**CARD),
        Accelerator(**acc("a1")),
        input_tokens=bucket["input_tokens"],
        output_tokens=bucket["output_tokens"],
        chips_per_node=8,
        percentile=0.99 if targets else None,
        demand_rps=10 * bucket.get("weight", 1.0),  # the service's 10 req/s, the bucket's share
        **kwargs,
    )


# --- lengths: throughput, chips, cost --------------------------------------------------------


def test_two_bucket_mix_is_the_harmonic_time_share_of_single_bucket_rps():
    small, large = (bucket_perf(b) for b in MIX)
    assert small.feasible and large.feasible
    cand = build_candidates(build_spec(spec_data([inference(lengths=MIX)])))
    assert len(cand.inf_rps) == 1
    expected = 1.0 / (0.7 / small.replica_requests_per_s + 0.3 / large.replica_requests_per_s)
    assert cand.inf_rps[0] == pytest.approx(expected, rel=1e-12)
    assert cand.inf_chips[0] == max(small.chips_per_replica, large.chips_per_replica)


def test_weights_are_normalised_and_means_fill_the_token_fields():
    scaled = [{**b, "weight": b["weight"] * 10} for b in MIX]
    spec = build_spec(spec_data([inference(lengths=scaled)]))
    w = spec.workloads[0]
    assert [p for _, _, p in w.length_mix] == pytest.approx([0.7, 0.3])
    assert (w.input_tokens, w.output_tokens) == (2750, 310)  # 0.7*500+0.3*8000, 0.7*100+0.3*800
    same = build_candidates(build_spec(spec_data([inference(lengths=MIX)])))
    assert build_candidates(spec).inf_rps[0] == pytest.approx(same.inf_rps[0], rel=1e-12)


def test_single_bucket_lengths_equals_plain_token_fields():
    one = [{"input_tokens": 1500, "output_tokens": 300, "weight": 2.5}]
    a = build_candidates(build_spec(spec_data([inference(lengths=one)])))
    b = build_candidates(build_spec(spec_data([inference(input_tokens=1500, output_tokens=300)])))
    assert a.inf_rps[0] == b.inf_rps[0]
    assert a.inf_chips[0] == b.inf_chips[0]


def test_api_cost_and_tokens_per_minute_use_exact_weighted_means():
    lengths = [
        {"input_tokens": 501, "output_tokens": 100, "weight": 2},
        {"input_tokens": 8000, "output_tokens": 801, "weight": 1},
    ]
    mean_in, mean_out = (2 * 501 + 8000) / 3, (2 * 100 + 801) / 3  # 3000.67, 333.67
    api = {"id": "api1", "provider": "h", "model": "m70", "usd_per_mtok_in": 2, "usd_per_mtok_out": 10}
    data = spec_data(
        [inference(lengths=lengths, peak_to_mean=1.5)], accelerators=[], offers=[], api_offers=[api]
    )
    spec = build_spec(data)
    assert spec.workloads[0].input_tokens == 3001  # rounded for display; costs use the exact mean
    cand = build_candidates(spec)
    per_request = (mean_in * 2 + mean_out * 10) / 1e6
    assert cand.api_usd[0] == pytest.approx(per_request * 10 * MONTH_S, rel=1e-12)
    assert cand.api_tpm[0] == pytest.approx(15 * (mean_in + mean_out) * 60, rel=1e-12)
    result = plan(spec)
    assert result.total_usd == pytest.approx(per_request * 10 * MONTH_S, rel=1e-6)


def test_a_bucket_that_misses_the_slo_makes_the_offer_ineligible():
    small, large = (bucket_perf(b) for b in MIX)
    ttft = (small.ttft_ms + large.ttft_ms) / 2
    assert bucket_perf(MIX[0], ttft_ms=ttft).feasible
    assert not bucket_perf(MIX[1], ttft_ms=ttft).feasible
    # the mean lengths alone would meet the target: the histogram is what excludes the offer
    assert bucket_perf({"input_tokens": 2750, "output_tokens": 310}, ttft_ms=ttft).feasible
    data = spec_data([inference(lengths=MIX, slo={"ttft_ms": ttft}, allow_api=False)])
    with pytest.raises(SpecError) as info:
        build_candidates(build_spec(data))
    message = str(info.value)
    assert "no offer can host workload 'svc'" in message
    assert "1 by slo" in message
    assert "lengths[1]: 8000 in / 800 out" in message


# --- lengths: validation errors --------------------------------------------------------------


def _error(workload: dict[str, Any]) -> SpecError:
    with pytest.raises(SpecError) as info:
        build_spec(spec_data([workload]))
    assert "\n" not in str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("change", "path", "words"),
    [
        (lambda m: m[1].update(weight=0), "workloads[0].lengths[1].weight", "greater than 0"),
        (lambda m: m[0].update(weight=-1), "workloads[0].lengths[0].weight", "greater than 0"),
        (lambda m: m[0].update(input_tokens=0), "workloads[0].lengths[0].input_tokens", "greater than 0"),
        (lambda m: m[1].pop("output_tokens"), "workloads[0].lengths[1].output_tokens", "missing"),
        (lambda m: m[0].update(wieght=m[0].pop("weight")), "workloads[0].lengths[0].wieght", "'weight'"),
    ],
    ids=["weight-zero", "weight-negative", "tokens-zero", "tokens-missing", "misspelt-key"],
)
def test_bucket_errors_name_the_field_path(change, path, words):
    mix = copy.deepcopy(MIX)
    change(mix)
    err = _error(inference(lengths=mix))
    assert err.path == path, err
    assert words in err.message, err


def test_empty_lengths_is_an_error():
    err = _error(inference(lengths=[]))
    assert err.path == "workloads[0].lengths"
    assert "at least 1" in err.message


def test_neither_tokens_nor_lengths_is_an_error():
    err = _error(inference(output_tokens=100))
    assert err.path == "workloads[0].input_tokens"
    assert "required field is missing" in err.message and "lengths" in err.message


def test_tokens_and_lengths_together_is_an_error():
    err = _error(inference(lengths=MIX, input_tokens=500))
    assert err.path == "workloads[0]"
    assert "not both" in err.message


# --- confidence in the plan ------------------------------------------------------------------


def _confidence_plan() -> dict[str, Any]:
    data = spec_data(
        [
            # on the low-confidence chip, from the perf model: flagged
            inference(name="est", model="m8", input_tokens=500, output_tokens=100, stacks=["rocm"]),
            # on the high-confidence chip with a measured override by accelerator id
            inference(
                name="meas-hi",
                model="m8",
                input_tokens=500,
                output_tokens=100,
                stacks=["cuda"],
                throughput={"acc-hi": {"chips_per_replica": 1, "requests_per_s": 5}},
            ),
            # on the low-confidence chip, measured by offer id: not flagged
            inference(
                name="meas-lo",
                model="m8",
                input_tokens=500,
                output_tokens=100,
                stacks=["rocm"],
                throughput={"o-lo": {"chips_per_replica": 1, "requests_per_s": 5}},
            ),
            {
                "name": "train",
                "kind": "training",
                "model": {"params_b": 1},
                "tokens_b": 10,
                "deadline_days": 1,
                "mfu": 0.5,
                "stacks": ["cuda"],
            },
        ],
        accelerators=[acc("acc-hi", confidence="high"), acc("acc-lo", confidence="low", stack="rocm")],
        offers=[offer("o-hi", "acc-hi"), offer("o-lo", "acc-lo")],
    )
    result = plan(build_spec(data))
    assert result.feasible
    return result.to_dict()


def test_allocations_carry_accelerator_confidence_and_measured():
    out = _confidence_plan()
    allocs = {w["name"]: w["allocations"] for w in out["workloads"]}
    assert [(a["accelerator"], a["confidence"], a.get("measured")) for a in allocs["est"]] == [
        ("acc-lo", "low", None)
    ]
    assert [(a["confidence"], a.get("measured")) for a in allocs["meas-hi"]] == [("high", True)]
    assert [(a["confidence"], a.get("measured")) for a in allocs["meas-lo"]] == [("low", True)]
    assert [(a["accelerator"], a["confidence"]) for a in allocs["train"]] == [("acc-hi", "high")]
    assert out["low_confidence_accelerators"] == ["acc-lo"]


def test_no_low_confidence_summary_when_none_is_low():
    data = spec_data([inference(model="m8", input_tokens=500, output_tokens=100)])
    out = plan(build_spec(data)).to_dict()
    assert out["workloads"][0]["allocations"][0]["confidence"] == "medium"
    assert "low_confidence_accelerators" not in out


def test_table_flags_low_confidence_rows():
    console = Console(file=io.StringIO(), width=220, color_system=None)
    console.print(plan_tables(_confidence_plan()))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    flagged = [line for line in text.splitlines() if "(low confidence)" in line]
    assert len(flagged) == 1 and "acc-lo" in flagged[0], text
