"""Issue 14's effects against hand-worked numbers: tail-latency SLOs under Poisson load,
precision peaks, clock derates, per-step overhead, steady-state KV, prefix caching and
the best configuration / Pareto front.

Toy chip (conftest ``toy_acc``): 100 TFLOPS bf16, 200 fp8, 10 GB, 1 TB/s, no scale-up
link (no all-reduce term).  Toy card: 4B bf16 dense, 8e9 weight bytes, KV 20,000 B/token.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest

from conftest import toy_acc
from polyfleet.catalog.io import load_bundled
from polyfleet.catalog.models import ModelCard
from polyfleet.perf import defaults, inference_perf
from polyfleet.perf.configs import best_config, pareto_front, search_configs
from polyfleet.perf.precision import PrecisionError, compute_peak
from polyfleet.perf.serving import (
    Replica,
    mg1_wait_quantile,
    mm1_wait_quantile,
    planned_load,
    poisson_quantile,
    steady_state_capacity,
)

TOY = {"hbm_utilisation": 0.9, "memory_efficiency": 0.5, "compute_efficiency": 0.5, "step_overhead_s": 0.0}


def toy_card(**over: object) -> ModelCard:
    fields: dict = {
        "name": "toy",
        "params_b": 4.0,
        "layers": 10,
        "kv_heads": 5,
        "head_dim": 100,
        "dtype": "bf16",
    }
    fields.update(over)
    return ModelCard(**fields)


# ---------------------------------------------------------------- queueing primitives


def test_poisson_quantile_by_hand() -> None:
    # mean 2: CDF 0.1353, 0.4060, 0.6767, 0.8571, 0.9473, 0.9834, 0.9955
    assert poisson_quantile(2.0, 0.90) == 4
    assert poisson_quantile(2.0, 0.99) == 6
    assert poisson_quantile(0.0, 0.99) == 0
    # above a mean of 30: mean + z*sqrt(mean) + (z^2 - 1)/6, rounded: 100 + 23.26 + 0.74 -> 124
    assert poisson_quantile(100.0, 0.99) == 124


def test_mm1_wait_quantile_by_hand() -> None:
    # u 0.5, service 0.1 s: 0.1/0.5 * ln(0.5/0.01) = 0.2 * ln 50 = 0.7824 s
    assert mm1_wait_quantile(0.5, 0.1, 0.99) == pytest.approx(0.2 * math.log(50))
    # P(wait > 0) = u <= 1 - percentile: the percentile waits nothing
    assert mm1_wait_quantile(0.005, 0.1, 0.99) == 0.0


def _linear(b: float) -> float:
    """T(b) = 10 ms + 1 ms per request."""
    return 0.010 + 0.001 * b


def test_planned_load_capacity_binds_at_the_occupancy_percentile() -> None:
    # cap = 1e9 / 1e7 = 100 requests; the p99 of Poisson(N) occupancy must be <= 100:
    # N + z*sqrt(N) + (z^2-1)/6 - 0.5 <= 100 -> sqrt(N) = (-z + sqrt(z^2 + 4*(100.5 - c)))/2
    r = Replica(tpot_s=_linear, prefill_s=0.05, chunked=False, chunks=1, kv_room_bytes=1e9,
                kv_bytes_per_request=1e7, stages=1, chips=1, output_tokens=100)  # fmt: skip
    out = planned_load(r, percentile=0.99, tpot_ms=None, ttft_ms=None, tags={})
    z = NormalDist().inv_cdf(0.99)
    c = (z * z - 1) / 6
    n = ((-z + math.sqrt(z * z + 4 * (100.5 - c))) / 2) ** 2  # 79.08 requests decoding
    lam = n / (100 * _linear(n) + n * 0.05)  # Little's law with serial prefill: 6.148 req/s
    assert out.feasible and out.limit == "capacity" and out.max_batch == 100
    assert out.replica_requests_per_s == pytest.approx(lam, rel=1e-6)
    assert out.output_tokens_per_s_per_chip == pytest.approx(lam * 100, rel=1e-6)


def test_planned_load_tpot_percentile_binds() -> None:
    # chunked (no prefill stalls): TPOT_p = T(B) <= 200 ms -> B <= 190; cap 1000 is far.
    r = Replica(tpot_s=_linear, prefill_s=0.0, chunked=True, chunks=1, kv_room_bytes=1e10,
                kv_bytes_per_request=1e7, stages=1, chips=2, output_tokens=100)  # fmt: skip
    out = planned_load(r, percentile=0.99, tpot_ms=200, ttft_ms=None, tags={})
    z = NormalDist().inv_cdf(0.99)
    c = (z * z - 1) / 6
    n = ((-z + math.sqrt(z * z + 4 * (190.5 - c))) / 2) ** 2  # 160.3
    lam = n / (100 * _linear(n))  # 9.41 req/s
    assert out.limit == "slo: tpot" and out.max_batch == 190
    assert out.tpot_ms == pytest.approx(200.0)  # T(190) exactly
    assert out.tpot_mean_ms == pytest.approx(_linear(n) * 1000, rel=1e-6)  # T at the mean occupancy
    assert out.replica_requests_per_s == pytest.approx(lam, rel=1e-6)
    assert out.output_tokens_per_s_per_chip == pytest.approx(lam * 100 / 2, rel=1e-6)


def test_planned_load_ttft_percentile_is_prefill_plus_queue_plus_a_step() -> None:
    r = Replica(tpot_s=_linear, prefill_s=0.05, chunked=False, chunks=1, kv_room_bytes=1e10,
                kv_bytes_per_request=1e7, stages=1, chips=1, output_tokens=100)  # fmt: skip
    out = planned_load(r, percentile=0.99, tpot_ms=None, ttft_ms=300, tags={})
    assert out.limit == "slo: ttft"
    lam, batch = out.replica_requests_per_s, out.max_batch
    u = lam * 0.05
    # TTFT_p = pre + S/(1-u)*ln(u/0.01) + T(B), S = pre
    ttft = 0.05 + 0.05 / (1 - u) * math.log(u / 0.01) + _linear(batch)
    assert out.ttft_ms == pytest.approx(ttft * 1000)
    assert out.ttft_ms <= 300 * (1 + 1e-9)
    # one request alone: 50 + 11 ms > 60 ms target -> infeasible with that figure
    bad = planned_load(r, percentile=0.99, tpot_ms=None, ttft_ms=60, tags={})
    assert not bad.feasible and bad.reason.startswith("slo: ttft") and "61.0 ms" in bad.reason


def test_server_load_is_below_offline_at_the_same_targets() -> None:
    kw = {"input_tokens": 1000, "output_tokens": 200, "tpot_ms": 30, "ttft_ms": 2000, **TOY}
    offline = inference_perf(toy_card(), toy_acc(), **kw)
    server = inference_perf(toy_card(), toy_acc(), percentile=0.99, **kw)
    assert offline.feasible and server.feasible and server.percentile == 0.99
    ratio = server.output_tokens_per_s_per_chip / offline.output_tokens_per_s_per_chip
    assert 0.3 < ratio < 1.0
    assert server.tpot_ms <= 30 * (1 + 1e-9) and server.tpot_mean_ms <= server.tpot_ms


# ---------------------------------------------------------------- KV steady state, prefix cache


def test_kv_is_sized_for_the_mean_live_context_under_load() -> None:
    # Each request holds (1000 + 200/2) * 20,000 = 22e6 B on average: 1e9 / 22e6 -> 45
    # requests, not the 41 that reserving the full 1,200-token context for each allows
    # (1e9 / 24e6).  One rule for both paths: the Poisson admission at p99 and the
    # idealised full batch of a workload without SLO targets.
    assert steady_state_capacity(1e9, 22e6) == 45 == math.floor(1e9 / 22e6)
    assert steady_state_capacity(9e8, 0.0) == 10**9  # a card without KV: not a KV limit
    kw = {"input_tokens": 1000, "output_tokens": 200, **TOY}
    served = inference_perf(toy_card(), toy_acc(), percentile=0.99, **kw)
    assert served.max_batch == 45 and served.limit == "capacity"
    offline = inference_perf(toy_card(), toy_acc(), **kw)  # no SLO, no percentile: idealised
    assert offline.max_batch == 45 and offline.limit == "capacity" and offline.percentile is None
    # long-tailed outputs (cv 1) hold 1000 + 200 live tokens in both paths: 1e9 / 24e6 -> 41
    spread = {**kw, "output_tokens_cv": 1.0}
    assert inference_perf(toy_card(), toy_acc(), **spread).max_batch == 41 == math.floor(1e9 / 24e6)
    # a fixed batch beyond the steady-state capacity does not fit: 46 x 22e6 > 1e9
    assert not inference_perf(toy_card(), toy_acc(), batch=46, **kw).feasible
    assert inference_perf(toy_card(), toy_acc(), batch=45, **kw).feasible


def test_output_length_spread_makes_requests_in_flight_hold_more_kv() -> None:
    # Length-biased sampling: a request in flight holds n*(1 + cv^2)/2 output tokens on
    # average.  cv = 1: 200 tokens, not 100; (1000 + 200) * 20,000 = 24e6 B -> 41 requests.
    kw = {"input_tokens": 1000, "output_tokens": 200, **TOY}
    spread = inference_perf(toy_card(), toy_acc(), percentile=0.99, output_tokens_cv=1.0, **kw)
    assert spread.max_batch == 41 == math.floor(1e9 / 24e6) and spread.limit == "capacity"
    with pytest.raises(ValueError):
        inference_perf(toy_card(), toy_acc(), output_tokens_cv=-0.1, **kw)


def test_output_length_spread_adds_kv_reads_and_attention_to_each_step() -> None:
    # Llama 3.1 8B bf16 on one H100 SXM, batch 64, 1000 in / 200 out: cv = 1 adds 100 live
    # tokens per request: 64*100*131,072 B / (3.35e12*0.8) = 0.3130 ms of KV reads plus
    # 64*100*524,288 FLOP / (989e12*0.5) = 0.0068 ms of attention = 0.3198 ms per step.
    catalog = load_bundled()
    card, acc = catalog.models["llama-3.1-8b"], catalog.accelerators["nvidia-h100-sxm"]
    kw = {"input_tokens": 1000, "output_tokens": 200, "tensor_parallel": 1, "batch": 64,
          "memory_efficiency": 0.8, "compute_efficiency": 0.5, "step_overhead_s": 0.0}  # fmt: skip
    equal = inference_perf(card, acc, **kw)
    spread = inference_perf(card, acc, output_tokens_cv=1.0, **kw)
    extra_ms = (64 * 100 * 131_072 / (3.35e12 * 0.8) + 64 * 100 * 524_288 / (989e12 * 0.5)) * 1000
    assert spread.tpot_ms - equal.tpot_ms == pytest.approx(extra_ms, rel=1e-6)
    assert extra_ms == pytest.approx(0.3198, abs=1e-4)


def test_mg1_wait_scales_the_mm1_wait_by_the_service_spread() -> None:
    # Pollaczek-Khinchine: the wait scales with (1 + cv^2)/2.  u 0.5, S 0.1 s, p99:
    # M/M/1 0.2*ln 50 = 0.7824 s; equal prompts (cv 0) half of it; cv 0.43 (Llama 3.1 405B's
    # prompts) 0.59245 of it = 0.4635 s.
    assert mg1_wait_quantile(0.5, 0.1, 1.0, 0.99) == mm1_wait_quantile(0.5, 0.1, 0.99)
    assert mg1_wait_quantile(0.5, 0.1, 0.0, 0.99) == pytest.approx(0.1 * math.log(50))
    assert mg1_wait_quantile(0.5, 0.1, 0.43, 0.99) == pytest.approx(0.59245 * 0.2 * math.log(50))
    assert mg1_wait_quantile(0.5, 0.1, 0.43, 0.99) == pytest.approx(0.4635, abs=1e-4)


def test_prompt_length_spread_shortens_the_ttft_queue_and_raises_the_load() -> None:
    # Same replica as the TTFT test above, prompts of equal length (cv 0): the p99 wait is
    # S/2/(1-u)*ln(u/0.01) and the load meeting 300 ms TTFT is higher than with M/M/1.
    base = {"tpot_s": _linear, "prefill_s": 0.05, "chunked": False, "chunks": 1, "kv_room_bytes": 1e10,
            "kv_bytes_per_request": 1e7, "stages": 1, "chips": 1, "output_tokens": 100}  # fmt: skip
    mm1 = planned_load(Replica(**base), percentile=0.99, tpot_ms=None, ttft_ms=300, tags={})
    equal = planned_load(Replica(**base, prefill_cv=0.0), percentile=0.99, tpot_ms=None, ttft_ms=300, tags={})
    u = equal.replica_requests_per_s * 0.05
    ttft = 0.05 + 0.025 / (1 - u) * math.log(u / 0.01) + _linear(equal.max_batch)
    assert equal.limit == "slo: ttft" and equal.ttft_ms == pytest.approx(ttft * 1000)
    assert equal.replica_requests_per_s > mm1.replica_requests_per_s * 1.2


def test_prefix_cache_hit_stores_the_prefix_once_and_skips_its_prefill() -> None:
    kw = {"input_tokens": 1000, "output_tokens": 200, "prefix_cache_hit": 0.6, **TOY}
    # KV room 1e9 - 0.6*1000*20,000 = 988e6; per request in steady state (400 + 200/2) *
    # 20,000 = 10e6 -> floor(988e6 / 10e6) = 98 (82 at the full 400 + 200), with or without load
    r = inference_perf(toy_card(), toy_acc(), **kw)
    assert r.max_batch == math.floor(988e6 / 10e6) == 98
    # prefill of the 400 uncached tokens: 2*4e9*400/5e13 = 64 ms (160 ms without the cache)
    assert r.ttft_ms == pytest.approx(64.0)
    assert inference_perf(toy_card(), toy_acc(), percentile=0.99, **kw).max_batch == 98


# ---------------------------------------------------------------- precision, derates, overhead


def test_fp4_runs_at_the_fp4_peak_where_the_chip_has_one() -> None:
    fp4 = toy_card(dtype="fp4")
    # 400 TFLOPS fp4 * 0.5: prefill 2*4e9*1000/2e14 = 40 ms
    r = inference_perf(fp4, toy_acc(fp4_tflops=400.0), input_tokens=1000, output_tokens=200, **TOY)
    assert r.dtype == "fp4" and r.precision_note == "" and r.ttft_ms == pytest.approx(40.0)
    # no FP4 peak: a stated conversion to fp8 (200 TFLOPS): 80 ms, and the note says so
    conv = inference_perf(fp4, toy_acc(), input_tokens=1000, output_tokens=200, **TOY)
    assert conv.dtype == "fp8" and conv.ttft_ms == pytest.approx(80.0)
    assert "no FP4 peak" in conv.precision_note and "computed at fp8" in conv.precision_note


def test_no_silent_fallback_from_bf16_to_fp8() -> None:
    maia_like = toy_acc(bf16_tflops=None, fp8_tflops=500.0)
    with pytest.raises(PrecisionError, match="no BF16 peak"):
        compute_peak(maia_like, "bf16")
    r = inference_perf(toy_card(), maia_like, input_tokens=1000, output_tokens=200, **TOY)
    assert not r.feasible and r.reason.startswith("spec:") and "BF16" in r.reason
    assert compute_peak(maia_like, "fp8").tflops == 500.0


def test_default_compute_efficiency_scales_by_precision() -> None:
    # defaults: 0.60 x 1.25 = 0.75 for bf16, 0.60 for fp8, 0.60 x 0.55 = 0.33 for fp4
    kw = {"input_tokens": 1000, "output_tokens": 200, "step_overhead_s": 0.0}
    acc = toy_acc(fp4_tflops=400.0)
    bf16 = inference_perf(toy_card(), acc, **kw)
    fp8 = inference_perf(toy_card(dtype="fp8"), acc, **kw)
    fp4 = inference_perf(toy_card(dtype="fp4"), acc, **kw)
    assert bf16.ttft_ms == pytest.approx(2 * 4e9 * 1000 / (100e12 * 0.75) * 1000)  # 106.7 ms
    assert fp8.ttft_ms == pytest.approx(2 * 4e9 * 1000 / (200e12 * 0.60) * 1000)  # 66.7 ms
    assert fp4.ttft_ms == pytest.approx(2 * 4e9 * 1000 / (400e12 * 0.33) * 1000)  # 60.6 ms
    assert defaults.PRECISION_COMPUTE_SCALE["fp4"] == 0.55


def test_clock_derate_lowers_the_compute_peak_of_power_limited_parts() -> None:
    pcie = toy_acc(id="nvidia-h100-pcie")
    r = inference_perf(toy_card(), pcie, input_tokens=1000, output_tokens=200, **TOY)
    # 100 TFLOPS x 0.79 sustained x 0.5: 2*4e9*1000 / 39.5e12 = 202.5 ms
    assert r.ttft_ms == pytest.approx(2 * 4e9 * 1000 / (100e12 * 0.79 * 0.5) * 1000)
    assert defaults.clock_derate("nvidia-h100-sxm") == 1.0


def test_per_step_overhead_is_added_to_every_step_and_binds_small_batches() -> None:
    kw = {k: v for k, v in TOY.items() if k != "step_overhead_s"}
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, **kw)
    # cuda default 0.6 ms on top of the 25.18 ms roofline step at b = 45; prefill 160 + 0.6
    assert r.tpot_ms == pytest.approx(25.18 + 0.6) and r.ttft_ms == pytest.approx(160.6)
    # a 0.1B card at batch 1: memory 0.2e9/0.5e12 = 0.4 ms + compute 0.004 ms < 0.6 ms
    small = inference_perf(
        toy_card(params_b=0.1), toy_acc(), input_tokens=10, output_tokens=10, batch=1, **kw
    )
    assert small.bound == "overhead" and small.limit == "batch" and small.max_batch == 1
    assert small.tpot_ms == pytest.approx(
        0.4 + 2 * 0.1e9 / 5e13 * 1000 + 0.6 + 0.2e-3 * 15 / 0.5e12 * 1e3, rel=1e-3
    )


# ---------------------------------------------------------------- configuration search


def test_best_configuration_and_pareto_front_by_hand() -> None:
    # No scale-up link, so no all-reduce cost: a larger group holds more requests and
    # amortises the weight read (per chip: tokens/s of the group / t).  b = floor((9e9*t -
    # 8e9) / 22e6), each request at its mean live context (1000 + 200/2 tokens):
    #   TP1: b 45,   step 25.18 ms,  pre 160 ms -> 3.6777 req/s -> 735.5 tok/s/chip
    #   TP2: b 454,  step 54.308 ms, pre 80 ms  -> 9.6224 req/s -> 962.2 tok/s/chip
    #   TP4: b 1272, step 68.872 ms, pre 40 ms  -> 19.674 req/s -> 983.7 tok/s/chip
    kw = {"input_tokens": 1000, "output_tokens": 200, **TOY}
    configs = search_configs(toy_card(), toy_acc(), chips_per_node=4, **kw)
    by_tp = {c.perf.tensor_parallel: c.perf for c in configs}
    assert sorted(by_tp) == [1, 2, 4]
    assert by_tp[1].max_batch == 45 and by_tp[2].max_batch == 454 and by_tp[4].max_batch == 1272
    assert by_tp[1].output_tokens_per_s_per_chip == pytest.approx(735.5, rel=1e-3)
    assert by_tp[2].output_tokens_per_s_per_chip == pytest.approx(962.2, rel=1e-3)
    assert by_tp[4].output_tokens_per_s_per_chip == pytest.approx(983.7, rel=1e-3)
    best = best_config(configs)
    assert best is not None and best.perf.tensor_parallel == 4 and best.label == "TP4 PP1 bf16 b=1272"
    # every one trades TPOT for tokens/s per chip: all three are on the front, by TPOT
    assert [c.perf.tensor_parallel for c in pareto_front(configs)] == [1, 2, 4]
    # TPOT <= 30 ms: TP2 b 215 (927.3/chip), TP4 b 509 (965.8/chip): TP4 still wins
    slo = best_config(search_configs(toy_card(), toy_acc(), chips_per_node=4, tpot_ms=30, **kw))
    assert slo is not None and slo.perf.tensor_parallel == 4 and slo.perf.max_batch == 509
    assert slo.perf.output_tokens_per_s_per_chip == pytest.approx(965.8, rel=1e-3)


def test_precision_search_uses_only_precisions_the_chip_has() -> None:
    kw = {"input_tokens": 1000, "output_tokens": 200, **TOY}
    no_fp4 = search_configs(toy_card(), toy_acc(), chips_per_node=1, dtypes=["bf16", "fp8", "fp4"], **kw)
    assert sorted({c.weight_dtype for c in no_fp4}) == ["bf16", "fp8"]
    with_fp4 = search_configs(
        toy_card(), toy_acc(fp4_tflops=400.0), chips_per_node=1, dtypes=["fp8", "fp4"], **kw
    )
    assert sorted({c.weight_dtype for c in with_fp4}) == ["fp4", "fp8"]  # bf16 not accepted
    best = best_config(with_fp4)
    assert best is not None and best.weight_dtype == "fp4"  # half the bytes, twice the peak


def test_moe_expert_parallel_imbalance_by_hand() -> None:
    from polyfleet.perf.moe import expert_imbalance, weight_bytes_read

    moe = toy_card(active_params_b=1.6, experts=8, experts_per_token=2)  # S 0.8e9, e 0.4e9
    # b = 1: q = 1 - 0.75 = 0.25; 4 chips of 2 experts: 1 + sqrt(2 ln 4)*sqrt(0.75/(2*0.25))
    assert expert_imbalance(moe, 1, 4) == pytest.approx(1 + math.sqrt(2 * math.log(4)) * math.sqrt(1.5))
    assert expert_imbalance(moe, 1, 1) == 1.0  # tensor-parallel experts: every chip a slice of each
    # the expert bytes (2 experts at b = 1) are charged at 1/0.72 of the dense rate, times it
    read = weight_bytes_read(moe, 1, expert_scale=0.72, imbalance=2.0)
    assert read == pytest.approx((0.8e9 + 0.8e9 * 2.0 / 0.72) * 2)


def test_a_calibration_changes_only_the_accelerators_it_was_fitted_on() -> None:
    from polyfleet.perf.calibration import AcceleratorFit, Calibration, Efficiency

    cal = Calibration(
        accelerators={
            "toy": AcceleratorFit(Efficiency(0.3, 0.4), 2, 10.0, 5.0, True, {"p1": 1.0, "p2": -2.0}),
            "one-point": AcceleratorFit(Efficiency(0.6, 0.8), 1, 10.0, 10.0, False),
        },
        source="",
        fitted_at="",
        n_points=3,
        error_before_pct=10.0,
        error_after_pct=5.0,
    )
    assert cal.kwargs("toy") == {"compute_efficiency": 0.3, "memory_efficiency": 0.4}
    assert cal.kwargs("one-point") == {} and cal.kwargs("never-measured") == {}
    # an unfitted chip keeps the model's own defaults, the per-precision scale included
    kw = {"input_tokens": 1000, "output_tokens": 200, "step_overhead_s": 0.0}
    plain = inference_perf(toy_card(), toy_acc(id="other"), **kw)
    assert inference_perf(toy_card(), toy_acc(id="other"), **kw, **cal.kwargs("other")) == plain
    assert plain.ttft_ms == pytest.approx(2 * 4e9 * 1000 / (100e12 * 0.75) * 1000)
    assert cal.to_dict()["accelerators"]["toy"]["residuals_pct"] == {"p1": 1.0, "p2": -2.0}


def test_best_configuration_for_a_demand_uses_the_fewest_chips() -> None:
    # TP1 3.5862, TP2 9.5927, TP4 19.652 requests/s per replica (the hand numbers above)
    kw = {"input_tokens": 1000, "output_tokens": 200, **TOY}
    configs = search_configs(toy_card(), toy_acc(), chips_per_node=4, **kw)

    def pick(demand: float) -> int:
        best = best_config(configs, demand)
        assert best is not None
        return best.perf.tensor_parallel

    # 3 req/s: TP1 1 replica = 1 chip; TP2 1 x 2 = 2; TP4 1 x 4 = 4
    assert pick(3.0) == 1
    # 100 req/s: TP1 28 x 1 = 28 chips; TP2 11 x 2 = 22; TP4 6 x 4 = 24
    assert pick(100.0) == 2
    # 1000 req/s: TP1 279; TP2 105 x 2 = 210; TP4 51 x 4 = 204
    assert pick(1000.0) == 4
    assert pick(0.0) == 4  # no demand: the most tokens/s per chip


# ------------------------------------------- issue 14's H200 step-time figures (real cards)


def _h200_step_ms(card: ModelCard, batch: int, tp: int = 1, **kw: object) -> float:
    acc = load_bundled().accelerators["nvidia-h200"]
    perf = inference_perf(
        card, acc, input_tokens=128, output_tokens=128, tensor_parallel=tp, batch=batch, **kw
    )
    assert perf.feasible
    return perf.tpot_ms


def test_h200_batch1_fp8_8b_step_is_bandwidth_plus_the_per_step_overhead() -> None:
    card = load_bundled().models["llama-3.1-8b"].model_copy(update={"dtype": "fp8"})
    # weights 8.03e9 B / (4.8 TB/s * 0.80) = 2.0911 ms ("bandwidth alone 2.1 ms" in issue 14);
    # + KV 192 tokens * 65,536 B / 3.84e12 = 0.0033 ms + 2*8.03e9 / (1979e12 * 0.60) = 0.0135 ms
    bare = _h200_step_ms(card, 1, step_overhead_s=0.0)
    assert bare == pytest.approx(2.0911 + 0.0033 + 0.0135, abs=0.001)
    # measured 5.2 ms with eager PyTorch: 3.1 ms of fixed per-step cost reproduces it (1%)
    assert _h200_step_ms(card, 1, step_overhead_s=3.1e-3) == pytest.approx(5.2, rel=0.01)
    # the bundled cuda default (0.6 ms: a CUDA-graph engine, TensorRT-LLM rows) sits in between
    assert _h200_step_ms(card, 1) == pytest.approx(bare + 0.6, abs=0.001)
    assert defaults.STEP_OVERHEAD_S_PER_STEP["cuda"] == 0.6e-3


def test_fp8_reaches_a_smaller_share_of_its_peak_than_bf16() -> None:
    # measured on an H200 end to end: 40% of the fp8 peak vs 55% of bf16, ratio 0.727;
    # model: 0.60 x 1.0 / (0.60 x 1.25) = 0.80, within 10% of the measured ratio
    scale = defaults.PRECISION_COMPUTE_SCALE
    ratio = scale["fp8"] / scale["bf16"]
    assert ratio == pytest.approx(0.80)
    assert ratio / (0.40 / 0.55) == pytest.approx(1.10, abs=0.005)


def test_mixtral_decode_is_25_to_54_percent_slower_than_the_plain_prediction(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    card = load_bundled().models["mixtral-8x7b"]
    # e = (46.7 - 12.9)/6 = 5.633e9 per expert, shared S = 12.9 - 2e = 1.633e9; batch 1 on TP2
    # (7.68 TB/s at 0.80): plain (S + 2e)*2 B = 25.8 GB -> 3.359 ms, expert reads at 0.72 of
    # the dense share: (S + 2e/0.72)*2 = 34.56 GB -> 4.500 ms; KV, compute and all-reduce
    # (0.662 ms) are the same in both: 5.162 / 4.021 = 1.284
    slow = {b: _h200_step_ms(card, b, tp=2, step_overhead_s=0.0) for b in (1, 8, 64)}
    monkeypatch.setattr(defaults, "MOE_EXPERT_MEMORY_SCALE", 1.0)
    plain = {b: _h200_step_ms(card, b, tp=2, step_overhead_s=0.0) for b in (1, 8, 64)}
    assert slow[1] / plain[1] == pytest.approx(1.284, abs=0.002)
    for b in (1, 8, 64):
        assert 1.25 <= slow[b] / plain[b] <= 1.54  # issue 14: measured 25-54% slower


# ------------------------------------------------------------------- attention FLOPs


def test_attention_flops_per_context_token_by_hand() -> None:
    from polyfleet.perf.attention import attention_flops_per_context_token, attention_rate_scale

    # GQA: 4 FLOP x layers x query heads x head_dim per context token: 4 x 10 x 8 x 100
    assert attention_flops_per_context_token(toy_card(heads=8)) == 32_000
    assert attention_flops_per_context_token(toy_card()) == 0  # no query heads: unknown, 0
    catalog = load_bundled()
    r1 = catalog.models["deepseek-r1"]
    # MLA over the 576-dim latent: 4 x 61 layers x 128 heads x 576
    assert attention_flops_per_context_token(r1) == 4 * 61 * 128 * 576 == 17_989_632
    # fp4 GEMMs on a B200, attention at the card's bf16 KV precision:
    # (9000 TFLOPS x 0.55) / (2250 x 1.25) = 1.76 GEMM FLOPs per attention FLOP
    b200 = catalog.accelerators["nvidia-b200"]
    assert attention_rate_scale(b200, r1.model_copy(update={"dtype": "fp4"}), "fp4") == pytest.approx(1.76)
    # fp8 weights without a kv_dtype keep an fp8 cache: attention at the GEMM precision
    l8 = catalog.models["llama-3.1-8b"].model_copy(update={"dtype": "fp8"})
    assert attention_rate_scale(catalog.accelerators["nvidia-h200"], l8, "fp8") == 1.0


def test_attention_flops_add_to_decode_and_prefill_compute() -> None:
    kw = {"input_tokens": 1000, "output_tokens": 200, "tensor_parallel": 1, "batch": 10, **TOY}
    bare = inference_perf(toy_card(), toy_acc(), **kw)
    attn = inference_perf(toy_card(heads=8), toy_acc(), **kw)
    # decode: 10 requests x 32,000 FLOP x ctx_mean 1,100 / (100 TFLOPS x 0.5) = 0.00704 ms
    assert attn.tpot_ms - bare.tpot_ms == pytest.approx(0.00704, rel=1e-6)
    # prefill: 1,000 prompt tokens x 32,000 x their mean context 500 / 5e13 = 0.32 ms
    assert attn.ttft_ms - bare.ttft_ms == pytest.approx(0.32, rel=1e-6)


def test_chunked_tpot_tail_counts_the_extra_prompts_at_the_percentile() -> None:
    # flat step T = 20 ms, n = 100 tokens, a prompt is 0.5 s of work: requests decoding N,
    # load lam = N/(n*T) = N/2 per s, prompts arriving during one request K_mean = lam*n*T = N.
    # TPOT_p = T + (K_p99 - N) * 0.5/100 <= 50 ms  ->  K_p99 - N <= 6.  K_p99 = 10 holds up to
    # the N where P(Poisson(N) <= 10) = 0.99 (4.7712); past it K_p99 = 11 and 11 - N > 6.
    def cdf10(mean: float) -> float:
        return sum(math.exp(-mean) * mean**k / math.factorial(k) for k in range(11))

    lo, hi = 4.0, 5.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf10(mid) >= 0.99 else (lo, mid)
    kw = {"chunked": True, "chunks": 1, "kv_room_bytes": 1000.0, "kv_bytes_per_request": 1.0}
    kw |= {"stages": 1, "chips": 1, "output_tokens": 100, "input_tokens": 100}
    r = Replica(tpot_s=lambda b: 0.02, prefill_s=0.5, **kw)
    perf = planned_load(r, percentile=0.99, tpot_ms=50, ttft_ms=None, tags={})
    n_flight = perf.replica_requests_per_s * 100 * 0.02
    assert perf.limit == "slo: tpot" and perf.max_batch == 10
    assert n_flight == pytest.approx(lo, rel=1e-6)  # 4.7712
    assert perf.tpot_ms == pytest.approx(20 + (10 - lo) * 5, rel=1e-6)  # 46.14 ms
    assert perf.tpot_mean_ms == pytest.approx(20)
    # prompts that cost nothing leave no tail: the memory binds (1,000 requests)
    free = planned_load(
        Replica(tpot_s=lambda b: 0.02, prefill_s=0.0, **kw),
        percentile=0.99,
        tpot_ms=50,
        ttft_ms=None,
        tags={},
    )
    assert free.limit == "capacity" and free.tpot_ms == pytest.approx(20)


def test_bridged_h100_pairs_run_a_wider_tensor_parallel_all_reduce_over_pcie() -> None:
    # H100 NVL/PCIe: an NVLink bridge joins 2 cards (600 GB/s line rate, 0.855 of it measured:
    # 513 GB/s); TP4 crosses PCIe Gen5 x16 between pairs, 128 GB/s bidirectional at the
    # measured NCCL share 0.65 = 83.2 GB/s, 41.6 GB/s each way.  Llama 2 70B (L=80, H=8192)
    # on TP4: c1 = 2*L * 2*(t-1)/t * H*2 / link = 160 * 1.5 * 16,384 / 41.6e9 = 94.52 us/token
    # (61.44 us at the PCIe line rate); an NVSwitch H100 SXM keeps its 900 GB/s.
    from polyfleet.perf.layout import allreduce_latency_s, link_gbps
    from polyfleet.perf.roofline import build_roofline

    catalog = load_bundled()
    nvl, sxm = catalog.accelerators["nvidia-h100-nvl"], catalog.accelerators["nvidia-h100-sxm"]
    assert link_gbps(nvl, 2) == pytest.approx(513) and link_gbps(nvl, 4) == pytest.approx(83.2)
    assert link_gbps(nvl, 8) == pytest.approx(83.2)
    assert link_gbps(catalog.accelerators["nvidia-h100-pcie"], 4) == pytest.approx(83.2)
    assert link_gbps(sxm, 8) == 900
    # the bridge pair keeps the 10 us all-reduce; beyond it PCIe's measured 24 us
    assert allreduce_latency_s(nvl, 2) == 10e-6 and allreduce_latency_s(nvl, 4) == 24e-6
    card = catalog.models["llama-2-70b"]
    args = dict(
        peak_flops=1e15,
        memory_efficiency=0.8,
        compute_efficiency=0.6,
        input_tokens=100,
        output_tokens=100,
        live_in=0.0,
        batching="serial",
        internode_gbps=50.0,
        step_overhead_s_per_layer=0.0,
        step_overhead_s=0.0,
        expert_parallel=1,
    )
    tp4 = build_roofline(card, nvl, t=4, p=1, **args)
    assert tp4.c1 == pytest.approx(94.52e-6, rel=1e-4)
    assert tp4.c0 == pytest.approx(160 * 24e-6)  # 3.84 ms of PCIe all-reduce latency per step
    # TP2 stays on the bridge: 160 * 1 * 16,384 / 256.5e9 = 10.22 us/token
    assert build_roofline(card, nvl, t=2, p=1, **args).c1 == pytest.approx(10.22e-6, rel=1e-3)


def test_point_to_point_fabrics_run_at_their_measured_share_of_the_line_rate() -> None:
    # L40S: PCIe Gen4 x16, 64 GB/s bidirectional line rate; NCCL's measured 0.65 of it =
    # 41.6 GB/s, 20.8 GB/s each way.  Llama 2 70B TP2: c1 = 160 * 1 * 16,384 / 20.8e9 =
    # 126.0 us/token, c0 = 160 * 24 us = 3.84 ms.  MI300X TP2 uses 1 of its 7 xGMI links:
    # 896/7 = 128 GB/s, 0.75 usable = 96 GB/s bidirectional.  TP8 uses all 7: 672 GB/s.
    from polyfleet.perf.layout import allreduce_latency_s, link_gbps
    from polyfleet.perf.roofline import build_roofline

    catalog = load_bundled()
    l40s, mi300x = catalog.accelerators["nvidia-l40s"], catalog.accelerators["amd-mi300x"]
    assert link_gbps(l40s, 2) == pytest.approx(41.6) and allreduce_latency_s(l40s, 2) == 24e-6
    assert link_gbps(mi300x, 2) == pytest.approx(96.0) and link_gbps(mi300x, 8) == pytest.approx(672.0)
    assert allreduce_latency_s(mi300x, 8) == 10e-6
    roof = build_roofline(
        catalog.models["llama-2-70b"],
        l40s,
        t=2,
        p=1,
        peak_flops=1e15,
        memory_efficiency=0.8,
        compute_efficiency=0.6,
        input_tokens=100,
        output_tokens=100,
        live_in=0.0,
        batching="serial",
        internode_gbps=50.0,
        step_overhead_s_per_layer=0.0,
        step_overhead_s=0.0,
        expert_parallel=1,
    )
    assert roof.c1 == pytest.approx(126.03e-6, rel=1e-4) and roof.c0 == pytest.approx(3.84e-3)
