"""Performance model v1 against hand-worked numbers.

Each expectation is written out from the formulas in ``polyfleet.perf.inference`` and
``polyfleet.perf.training`` with round made-up inputs, so a reader can redo it by hand.
"""

from __future__ import annotations

import math

import pytest

from conftest import toy_acc
from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf import (
    InferencePerf,
    TrainingPerf,
    defaults,
    inference_perf,
    training_perf,
)

# Toy efficiencies: 9 GB usable of 10, 0.5 TB/s of 1, 50 TFLOP/s of 100.
TOY = {"hbm_utilisation": 0.9, "memory_efficiency": 0.5, "compute_efficiency": 0.5, "step_overhead_s": 0.0}


def toy_card(**over: object) -> ModelCard:
    """4B bf16 dense: 8e9 weight bytes; KV 2*10*5*100*2 = 20,000 bytes per token."""
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


# ---------------------------------------------------------------- inference: toy cases
# input 1000, output 200: ctx_full 1200 -> 24e6 B/request (one request at its end: the layout),
# ctx_mean 1100 -> 22e6 B/request: the step's KV reads and, in steady state, the KV memory a
# request in flight holds (``serving.steady_state_capacity``), so b_mem = floor(1e9/22e6) = 45.
# One toy chip: step(b) = s0 + s1*b with s0 = 8e9/0.5e12 = 16 ms and
# s1 = 22e6/0.5e12 + 2*4e9/5e13 = 0.044 ms + 0.16 ms = 0.204 ms (no comm at t=1).


def test_memory_cap_binds_and_all_numbers() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=100, **TOY)
    # t=1: 9e9 >= 8e9 + 24e6.
    assert r.feasible and r.reason == ""
    assert r.chips_per_replica == 1
    # steady state: each request holds its mean live context, 1000 + 200/2 tokens (22e6 B),
    # not its full 1200 (24e6 B, which would give 41)
    b_mem = math.floor((9e9 - 8e9) / 22e6)  # 45.45 -> 45
    b_tpot = math.floor((0.1 - 8e9 / 0.5e12) / (22e6 / 0.5e12 + 2 * 4e9 / 5e13))  # 84/0.204 -> 411
    assert (b_mem, b_tpot) == (45, 411)
    assert r.max_batch == 45 and r.limit == "capacity"
    mem = (8e9 + 45 * 22e6) / 0.5e12  # 17.98 ms
    comp = 2 * 4e9 * 45 / 5e13  # 7.2 ms
    assert r.tpot_ms == pytest.approx((mem + comp) * 1000)  # 25.18 ms: no overlap
    assert r.tpot_ms == pytest.approx(25.18)
    assert r.bound == "memory" and mem > comp
    prefill = 2 * 4e9 * 1000 / 5e13  # 0.16 s, batched prefill: compute only
    assert r.ttft_ms == pytest.approx(160.0)
    rps = 1 / (prefill + 200 * (mem + comp) / 45)
    assert r.replica_requests_per_s == pytest.approx(rps)
    assert r.output_tokens_per_s_per_chip == pytest.approx(rps * 200 / 1)


def test_tpot_cap_binds() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=20, **TOY)
    # (20 ms - 16 ms) / 0.204 ms = 19.6 -> 19 < b_mem 45.
    assert r.max_batch == math.floor((0.020 - 0.016) / 0.204e-3) == 19
    step19 = (8e9 + 19 * 22e6) / 0.5e12 + 2 * 4e9 * 19 / 5e13  # 16.836 + 3.04 = 19.876 ms
    assert r.tpot_ms == pytest.approx(step19 * 1000)
    assert r.tpot_ms == pytest.approx(19.876)
    assert r.tpot_ms <= 20
    step20 = (8e9 + 20 * 22e6) / 0.5e12 + 2 * 4e9 * 20 / 5e13  # 20.08 ms
    assert step20 * 1000 > 20  # one more request would break the SLO


def test_no_tpot_means_memory_cap_only() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, **TOY)
    assert r.max_batch == 45


def test_tpot_unreachable() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=16, **TOY)
    one = ((8e9 + 22e6) / 0.5e12 + 2 * 4e9 / 5e13) * 1000  # 16.044 + 0.16 = 16.204 ms > 16
    assert not r.feasible
    assert r.reason.startswith("slo: tpot")
    assert r.max_batch == 0 and r.replica_requests_per_s == 0
    assert r.chips_per_replica == 1
    assert r.tpot_ms == pytest.approx(one)
    assert r.ttft_ms == pytest.approx(160.0)


def test_ttft_infeasible_keeps_numbers() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, ttft_ms=100, **TOY)
    assert not r.feasible
    assert r.reason.startswith("slo: ttft")
    assert r.ttft_ms == pytest.approx(160.0)
    assert r.max_batch == 45 and r.replica_requests_per_s > 0


def test_ttft_met() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, ttft_ms=200, **TOY)
    assert r.feasible


def test_tensor_parallel_choice_and_memory_infeasible() -> None:
    # 4.5B -> W 9e9; input 30000 + output 20000 -> 50000*20000 = 1e9 B/request at its end
    # (the layout: one request must fit), 40000*20000 = 0.8e9 B in steady state (the batch).
    card = toy_card(params_b=4.5)
    kw = {"input_tokens": 30_000, "output_tokens": 20_000, **TOY}
    r = inference_perf(card, toy_acc(), **kw)
    # 1 chip: 9e9 < 10e9; 2 chips: 18e9 >= 10e9.
    assert r.chips_per_replica == 2
    assert r.max_batch == math.floor((18e9 - 9e9) / 0.8e9) == 11  # 11.25
    assert inference_perf(card, toy_acc(), max_chips=3, **kw).chips_per_replica == 2
    bad = inference_perf(card, toy_acc(), max_chips=1, **kw)
    assert not bad.feasible
    assert bad.reason.startswith("memory:")
    assert "10.0 GB" in bad.reason and "9.0 GB" in bad.reason
    assert bad.chips_per_replica == 0 and bad.max_batch == 0


def test_exact_fit_survives_float_rounding() -> None:
    # W 8e9 + 50000*20000 = 9e9 = 0.9*10e9 exactly: one chip, one request.
    r = inference_perf(toy_card(), toy_acc(), input_tokens=30_000, output_tokens=20_000, **TOY)
    assert r.chips_per_replica == 1 and r.max_batch == 1


def test_min_batch_raises_tensor_parallel() -> None:
    card = toy_card(params_b=4.5)
    kw = {"input_tokens": 30_000, "output_tokens": 20_000, **TOY}
    # need 9e9 + 10*1e9 = 19e9 > 2 chips' 18e9 -> 4 chips (min_batch requests at full context).
    r = inference_perf(card, toy_acc(), min_batch=10, **kw)
    assert r.chips_per_replica == 4
    assert r.max_batch == math.floor((36e9 - 9e9) / 0.8e9) == 33  # steady state: 33.75


def test_compute_bound() -> None:
    # 1B, KV 2*2*1*64*2 = 512 B/token; input 100, output 100.
    card = toy_card(params_b=1.0, layers=2, kv_heads=1, head_dim=64)
    assert card.kv_bytes_per_token == 512
    r = inference_perf(card, toy_acc(), input_tokens=100, output_tokens=100, tpot_ms=50, **TOY)
    s0 = 2e9 / 0.5e12  # 4 ms of weights
    s1 = 150 * 512 / 0.5e12 + 2 * 1e9 / 5e13  # 0.1536 us + 40 us per request
    b_tpot = math.floor((0.05 - s0) / s1)  # 46 ms / 40.1536 us = 1145.6 -> 1145
    b_mem = math.floor((9e9 - 2e9) / (200 * 512))  # 68359
    assert (b_tpot, b_mem) == (1145, 68359)
    assert r.max_batch == 1145
    mem = (2e9 + 1145 * 150 * 512) / 0.5e12  # 4.176 ms
    comp = 2 * 1e9 * 1145 / 5e13  # 45.8 ms
    assert r.bound == "compute" and comp > mem
    assert r.tpot_ms == pytest.approx((mem + comp) * 1000)  # 49.976 ms
    assert r.tpot_ms <= 50
    prefill = 2 * 1e9 * 100 / 5e13  # 4 ms, compute only
    assert r.ttft_ms == pytest.approx(prefill * 1000)
    assert r.replica_requests_per_s == pytest.approx(1 / (prefill + 100 * (mem + comp) / 1145))


def test_decode_step_adds_memory_and_compute() -> None:
    # No overlap: at b=45 the step is mem + comp, not max(mem, comp).
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, **TOY)
    mem = (8e9 + 45 * 22e6) / 0.5e12  # 17.98 ms
    comp = 2 * 4e9 * 45 / 5e13  # 7.2 ms
    assert r.max_batch == 45
    assert r.tpot_ms == pytest.approx((mem + comp) * 1000)
    assert r.tpot_ms > max(mem, comp) * 1000 * 1.3  # 25.18 vs 17.98
    assert r.bound == "memory"


def test_prefill_has_no_weight_read_term() -> None:
    # Batched prefill: with no prompt there is no prefill work (was W/(t*BW*me) = 16 ms).
    r = inference_perf(toy_card(), toy_acc(), input_tokens=0, output_tokens=200, **TOY)
    assert r.ttft_ms == 0.0
    r = inference_perf(toy_card(), toy_acc(), input_tokens=10, output_tokens=200, **TOY)
    assert r.ttft_ms == pytest.approx(2 * 4e9 * 10 / 5e13 * 1000)  # 1.6 ms, below 16 ms


# Tensor-parallel case: 4.5B (W 9e9), input 30000 + output 20000 -> t=2 (see below), batch
# floor(9e9 / 0.8e9) = 11 (steady state: 40000 live tokens x 20000 B),
# hidden 1000, scale-up 100 GB/s bidirectional -> link 50e9 B/s one way.  Per all-reduce
# pair per layer: comm(n) = 2*10*(2*(2-1)/2 * n*1000*2/50e9 + 10e-6)
#   = 200 us + n * 0.8 us.
COMM = {"input_tokens": 30_000, "output_tokens": 20_000, **TOY}


def test_tensor_parallel_comm_cost() -> None:
    card = toy_card(params_b=4.5, hidden=1000)
    acc = toy_acc(scaleup_gbps=100.0)
    r = inference_perf(card, acc, **COMM)
    assert r.chips_per_replica == 2 and r.max_batch == 11

    def comm(n: float) -> float:
        return 2 * 10 * (2 * (2 - 1) / 2 * n * 1000 * 2 / (100 / 2 * 1e9) + 10e-6)

    assert comm(0) == pytest.approx(200e-6)
    assert comm(1) - comm(0) == pytest.approx(0.8e-6)
    mem = (9e9 + 11 * 40_000 * 20_000) / (2 * 0.5e12)  # 17.8 ms
    comp = 2 * 4.5e9 * 11 / (2 * 5e13)  # 0.99 ms
    step = mem + comp + comm(11)  # 17.8 + 0.99 + 0.2088 = 18.9988 ms
    assert r.tpot_ms == pytest.approx(step * 1000)
    assert r.tpot_ms == pytest.approx(18.9988)
    prefill = 2 * 4.5e9 * 30_000 / (2 * 5e13) + comm(30_000)  # 2.7 s + 24.2 ms
    assert r.ttft_ms == pytest.approx(prefill * 1000)
    assert r.ttft_ms == pytest.approx(2724.2)
    assert r.replica_requests_per_s == pytest.approx(1 / (prefill + 20_000 * step / 11))
    assert r.bound == "memory"


def test_tensor_parallel_comm_lowers_tpot_batch_cap() -> None:
    # s0 = 9e9/1e12 + 200 us = 9.2 ms; s1 = 0.8 ms + 0.09 ms + 0.8 us = 0.8908 ms.
    # TPOT 17.1 ms: (17.1 - 9.2)/0.8908 = 8.87 -> 8; without comm (17.1 - 9)/0.89 = 9.1 -> 9.
    card = toy_card(params_b=4.5, hidden=1000)
    with_comm = inference_perf(card, toy_acc(scaleup_gbps=100.0), tpot_ms=17.1, **COMM)
    assert with_comm.max_batch == math.floor((0.0171 - 0.0092) / 0.8908e-3) == 8
    assert with_comm.tpot_ms == pytest.approx(9.2 + 8 * 0.8908)  # 16.3264 ms
    no_comm = inference_perf(card, toy_acc(), tpot_ms=17.1, **COMM)  # no scaleup_gbps
    assert no_comm.max_batch == math.floor((0.0171 - 0.009) / 0.89e-3) == 9
    assert no_comm.tpot_ms == pytest.approx(9.0 + 9 * 0.89)  # 17.01 ms


def test_comm_skipped_without_data_or_tensor_parallelism() -> None:
    base = inference_perf(toy_card(params_b=4.5), toy_acc(), **COMM)
    # No hidden on the card, or no scale-up figure on the chip: comm is 0.
    no_hidden = inference_perf(toy_card(params_b=4.5), toy_acc(scaleup_gbps=100.0), **COMM)
    no_link = inference_perf(toy_card(params_b=4.5, hidden=1000), toy_acc(), **COMM)
    for r in (no_hidden, no_link):
        assert r.chips_per_replica == 2
        assert r.tpot_ms == pytest.approx(base.tpot_ms)
        assert r.ttft_ms == pytest.approx(base.ttft_ms)
    assert base.tpot_ms == pytest.approx(17.8 + 0.99)  # b = 11
    assert base.ttft_ms == pytest.approx(2700.0)
    # t=1 has no all-reduce even with hidden and a scale-up link.
    card, acc = toy_card(hidden=1000), toy_acc(scaleup_gbps=100.0)
    one = inference_perf(card, acc, input_tokens=1000, output_tokens=200, **TOY)
    assert one.chips_per_replica == 1
    assert one.tpot_ms == pytest.approx(25.18) and one.ttft_ms == pytest.approx(160.0)


def test_kv_dtype_rule() -> None:
    # 2*10*5*100 = 10,000 KV values per token; bytes follow the KV dtype.
    assert toy_card().kv_bytes_per_token == 10_000 * 2  # bf16 weights -> bf16 KV
    assert toy_card(dtype="fp8").kv_bytes_per_token == 10_000 * 1
    # fp4/int4 weights: KV cache in fp8 (1 byte), not bf16 and not 4-bit.
    assert toy_card(dtype="fp4").kv_bytes_per_token == 10_000 * 1
    assert toy_card(dtype="int4").kv_bytes_per_token == 10_000 * 1
    mla = {"attention": "mla", "layers": 61, "kv_latent_dim": 576}
    assert toy_card(dtype="fp4", **mla).kv_bytes_per_token == 61 * 576 * 1
    # An explicit kv_dtype always wins.
    assert toy_card(dtype="fp4", kv_dtype="bf16").kv_bytes_per_token == 10_000 * 2
    assert toy_card(dtype="fp4", kv_dtype="fp4").kv_bytes_per_token == 10_000 * 0.5
    assert toy_card(dtype="bf16", kv_dtype="fp8").kv_bytes_per_token == 10_000 * 1


def test_mla_kv_size() -> None:
    # MLA: layers * kv_latent_dim * 2 bytes = 61*576*2 = 70,272; heads/head_dim ignored.
    card = toy_card(attention="mla", layers=61, kv_latent_dim=576, heads=128, kv_heads=128, head_dim=128)
    assert card.kv_bytes_per_token == 61 * 576 * 2
    r = inference_perf(card, toy_acc(), input_tokens=1000, output_tokens=200, **TOY)
    assert r.max_batch == math.floor(1e9 / (1100 * 70_272))  # 12.9 -> 12: mean live context 1100


def test_spec_infeasible() -> None:
    no_kv = inference_perf(toy_card(layers=None), toy_acc(), input_tokens=10, output_tokens=10)
    assert not no_kv.feasible and no_kv.reason.startswith("spec:")
    mla = toy_card(attention="mla")  # no kv_latent_dim
    assert inference_perf(mla, toy_acc(), input_tokens=10, output_tokens=10).reason.startswith("spec:")
    no_flops = toy_acc(bf16_tflops=None, fp8_tflops=None)
    r = inference_perf(toy_card(), no_flops, input_tokens=10, output_tokens=10)
    assert not r.feasible and r.reason.startswith("spec:") and r.max_batch == 0


def test_fp8_uses_fp8_peak() -> None:
    # fp8 8B: W 8e9; prefill comp 2*8e9*1000/(200e12*0.5) = 0.16 s (0.32 s at bf16 peak).
    card = toy_card(params_b=8.0, dtype="fp8")
    assert card.weight_bytes == 8e9 and card.kv_bytes_per_token == 10_000
    r = inference_perf(card, toy_acc(), input_tokens=1000, output_tokens=200, **TOY)
    assert r.ttft_ms == pytest.approx(160.0)
    assert r.max_batch == math.floor(1e9 / (1100 * 10_000))  # 90: mean live context 1100


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError):
        inference_perf(toy_card(), toy_acc(), input_tokens=10, output_tokens=0)
    with pytest.raises(ValueError):
        inference_perf(toy_card(), toy_acc(), input_tokens=10, output_tokens=10, tpot_ms=0)
    with pytest.raises(ValueError):
        inference_perf(toy_card(), toy_acc(), input_tokens=10, output_tokens=10, max_chips=0)


def test_to_dict() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, **TOY)
    d = r.to_dict()
    assert isinstance(r, InferencePerf)
    assert d["max_batch"] == 45 and d["bound"] == "memory" and d["feasible"] is True
    assert set(d) == {f for f in InferencePerf.__dataclass_fields__}


# ---------------------------------------------------------------- inference: realistic


def llama70() -> ModelCard:
    return ModelCard(name="llama-3.1-70b", params_b=70.6, layers=80, kv_heads=8, head_dim=128, dtype="bf16")


def h100() -> Accelerator:
    return Accelerator(
        id="h100",
        vendor="nvidia",
        bf16_tflops=989,
        fp8_tflops=1979,
        hbm_gb=80,
        hbm_tbps=3.35,
        stack="cuda",
    )


def test_llama70b_on_h100_default_efficiencies() -> None:
    r = inference_perf(llama70(), h100(), input_tokens=1500, output_tokens=300, tpot_ms=40)
    w = 70.6e9 * 2  # 141.2 GB
    kv = 2 * 80 * 8 * 128 * 2  # 327,680 B/token
    usable = 80e9 * 0.9  # 72 GB per chip
    # 1 chip: 72 < 141.79 GB; 2 chips: 144 >= 141.2 + 1800*kv/1e9 = 141.79 GB -> t=2.
    assert w + 1800 * kv > usable and 2 * usable >= w + 1800 * kv
    assert r.chips_per_replica == 2
    # the batch holds mean live contexts, 1500 + 300/2 = 1650 tokens: 2.8 GB / 0.5407 GB
    assert r.max_batch == math.floor((2 * usable - w) / (1650 * kv)) == 5  # memory cap
    # The card has no ``hidden`` and the chip no ``scaleup_gbps``: no comm term.
    # Defaults: bf16 compute efficiency 0.60 x 1.25 = 0.75 (PRECISION_COMPUTE_SCALE) and a
    # 0.6 ms fixed cost per cuda step (STEP_OVERHEAD_S_PER_STEP), in every pass.
    o = 0.6e-3
    mem = (w + 5 * 1650 * kv) / (2 * 3.35e12 * 0.8)  # 26.85 ms
    comp = 2 * 70.6e9 * 5 / (2 * 989e12 * 0.75)  # 0.48 ms
    assert r.tpot_ms == pytest.approx((mem + comp + o) * 1000)  # 27.92 ms
    assert r.bound == "memory" and mem > comp
    prefill = 2 * 70.6e9 * 1500 / (2 * 989e12 * 0.75) + o  # 142.8 + 0.6 ms
    assert r.ttft_ms == pytest.approx(prefill * 1000)
    rps = 1 / (prefill + 300 * (mem + comp + o) / 5)
    assert r.replica_requests_per_s == pytest.approx(rps)
    assert r.output_tokens_per_s_per_chip == pytest.approx(rps * 300 / 2)


def test_llama70b_on_h100_min_batch_picks_four_chips() -> None:
    r = inference_perf(llama70(), h100(), input_tokens=1500, output_tokens=300, tpot_ms=40, min_batch=8)
    w, kv = 141.2e9, 327_680
    # bf16 compute efficiency 0.60 x 1.25 = 0.75; 0.6 ms fixed cost per cuda step.
    mem_rate, comp_rate, o = 4 * 3.35e12 * 0.8, 4 * 989e12 * 0.75, 0.6e-3

    def step(b: int) -> float:
        return (w + b * 1650 * kv) / mem_rate + 2 * 70.6e9 * b / comp_rate + o

    # 2 chips hold 4 requests at full context (1800 tokens) < 8 -> 4 chips; memory cap in
    # steady state floor((288e9 - w)/(1650 kv)) = 271 (248 at full context);
    # TPOT cap (0.04 - w/mem_rate - o) / (1650 kv/mem_rate + 2*70.6e9/comp_rate)
    #   = (40 - 13.77) ms / 0.0980 ms = 267.5 -> 267: the TPOT cap binds.
    s0 = w / mem_rate + o
    s1 = 1650 * kv / mem_rate + 2 * 70.6e9 / comp_rate
    assert math.floor((2 * 72e9 - w) / (1800 * kv)) == 4
    assert math.floor((288e9 - w) / (1650 * kv)) == 271
    assert math.floor((0.04 - s0) / s1) == 267
    assert r.chips_per_replica == 4
    assert r.max_batch == 267 and r.limit == "slo: tpot"
    assert r.tpot_ms == pytest.approx(step(267) * 1000)
    assert r.tpot_ms <= 40


# ---------------------------------------------------------------- training


def test_training_deadline_binds_and_instance_rounding() -> None:
    r = training_perf(toy_card(), toy_acc(), tokens_b=100, deadline_days=10, chips_per_instance=8)
    f = 6 * 4e9 * 100e9  # 2.4e21
    sustained = 100e12 * 0.40  # cuda MFU
    assert r.feasible and r.reason == ""
    assert r.flops == pytest.approx(f)
    assert r.mfu == 0.40
    assert r.sustained_flops_per_chip == pytest.approx(sustained)
    assert r.chips_for_deadline == math.ceil(f / (sustained * 10 * 86400)) == 70
    assert r.chips_for_memory == math.ceil(4e9 * 16 / 9e9) == 8
    assert r.chips == 72  # 70 rounded up to whole 8-chip instances
    assert r.run_hours == pytest.approx(f / (72 * sustained * 3600))  # 231.5 h
    assert r.run_hours <= 10 * 24


def test_training_memory_binds_moe_flops_use_active() -> None:
    card = toy_card(params_b=100.0, active_params_b=10.0)
    r = training_perf(card, toy_acc(), tokens_b=1, deadline_days=10, chips_per_instance=8)
    f = 6 * 10e9 * 1e9  # active params, 6e19
    assert r.flops == pytest.approx(f)
    assert r.chips_for_deadline == math.ceil(f / (4e13 * 864_000)) == 2
    assert r.chips_for_memory == math.ceil(100e9 * 16 / 9e9) == 178
    assert r.chips == 184
    assert r.run_hours == pytest.approx(f / (184 * 4e13 * 3600))


def test_training_fp8_peak_and_overrides() -> None:
    r = training_perf(toy_card(dtype="fp8"), toy_acc(), tokens_b=100, deadline_days=10)
    assert r.sustained_flops_per_chip == pytest.approx(200e12 * 0.40)
    bf = training_perf(toy_card(), toy_acc(stack="xla"), tokens_b=1, deadline_days=1, flops=1e21, mfu=0.5)
    assert bf.flops == 1e21 and bf.mfu == 0.5
    assert bf.sustained_flops_per_chip == pytest.approx(100e12 * 0.5)
    assert bf.chips_for_deadline == math.ceil(1e21 / (5e13 * 86400)) == 232
    xla = training_perf(toy_card(), toy_acc(stack="xla"), tokens_b=1, deadline_days=1)
    assert xla.mfu == defaults.MFU_BY_STACK["xla"] == 0.46


def test_training_no_tflops_infeasible() -> None:
    r = training_perf(toy_card(), toy_acc(bf16_tflops=None, fp8_tflops=None), tokens_b=1, deadline_days=1)
    assert isinstance(r, TrainingPerf)
    assert not r.feasible and r.reason.startswith("spec:")
    assert r.chips == 0 and r.chips_for_memory == 8
    assert r.to_dict()["feasible"] is False


def test_defaults_documented() -> None:
    assert set(defaults.MFU_BY_STACK) == set(defaults.MFU_SOURCES)
    assert defaults.ALLREDUCE_LATENCY_S == 10e-6
    assert defaults.TRAINING_BYTES_PER_PARAM == 2 + 2 + 4 + 4 + 4
    assert defaults.MAX_TENSOR_PARALLEL == 64
    for stack in ("rocm", "neuron", "synapse", "maia"):
        assert "estimate" in defaults.MFU_SOURCES[stack]


# ---------------------------------------------------------------- inference: MoE traffic
# Toy MoE: 4B total, 1.6B active, E=8 experts, k=2 per token, bf16.
# e = (4 - 1.6)/(8 - 2) = 0.4B per expert, shared S = 1.6 - 2*0.4 = 0.8B.


def toy_moe(**over: object) -> ModelCard:
    fields: dict = {"params_b": 4.0, "active_params_b": 1.6, "experts": 8, "experts_per_token": 2}
    fields.update(over)
    return toy_card(**fields)


def moe_read(b: float) -> float:
    """Hand formula: (S + e*E*(1 - (1 - k/E)^b) / s) * 2 bytes at the dense rate, with the
    grouped-GEMM expert scale s = MOE_EXPERT_MEMORY_SCALE = 0.72 (no imbalance at EP 1)."""
    return (0.8e9 + 0.4e9 * 8 * (1 - 0.75**b) / 0.72) * 2


def test_moe_split_and_weights_read() -> None:
    from polyfleet.perf.moe import moe_split, weight_bytes_read

    shared, e, n_exp, k = moe_split(toy_moe())  # type: ignore[misc]
    assert (shared, e, n_exp, k) == (pytest.approx(0.8e9), pytest.approx(0.4e9), 8, 2)
    # b=1: shared + exactly 2 experts = the active parameters, 1.6e9 * 2 B.
    assert weight_bytes_read(toy_moe(), 1) == pytest.approx((0.8e9 + 2 * 0.4e9) * 2) == 3.2e9
    # b=2: 8*(1 - 0.75^2) = 3.5 distinct experts expected.
    assert weight_bytes_read(toy_moe(), 2) == pytest.approx((0.8e9 + 3.5 * 0.4e9) * 2)
    # Large batches touch every expert: all 8e9 bytes.
    assert weight_bytes_read(toy_moe(), 200) == pytest.approx(8e9, rel=1e-12)
    reads = [weight_bytes_read(toy_moe(), b) for b in (1, 2, 4, 8, 16, 32)]
    assert reads == sorted(reads) and reads[-1] < 8e9
    # Dense cards (and k >= E) read all their weights at any batch.
    assert weight_bytes_read(toy_card(), 1) == 8e9
    assert moe_split(toy_card()) is None
    assert moe_split(toy_moe(experts_per_token=8)) is None


def test_moe_decode_step_hand_worked() -> None:
    card = toy_moe()
    r = inference_perf(card, toy_acc(), input_tokens=1000, output_tokens=200, **TOY)
    # Capacity holds all 8e9 bytes: same t=1 and b_mem=45 as the dense toy.
    assert r.chips_per_replica == 1 and r.pipeline_stages == 1 and r.max_batch == 45
    mem = (moe_read(45) + 45 * 22e6) / 0.5e12
    comp = 2 * 1.6e9 * 45 / 5e13  # compute counts active parameters only
    assert r.tpot_ms == pytest.approx((mem + comp) * 1000)
    assert r.ttft_ms == pytest.approx(2 * 1.6e9 * 1000 / 5e13 * 1000)  # 64 ms
    assert r.replica_requests_per_s == pytest.approx(1 / (2 * 1.6e9 * 1000 / 5e13 + 200 * (mem + comp) / 45))


def test_moe_tpot_cap_bisection() -> None:
    card = toy_moe()

    def step(b: int) -> float:
        return (moe_read(b) + b * 22e6) / 0.5e12 + 2 * 1.6e9 * b / 5e13

    # One request: ((0.8e9 + 0.8e9/0.72)*2 + 22e6)/0.5e12 + 64 us = 7.7529 ms; batch grows
    # the expert reads.
    assert step(1) == pytest.approx(7.7529e-3, rel=1e-4)
    r = inference_perf(card, toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=12, **TOY)
    b = r.max_batch
    assert step(b) <= 0.012 < step(b + 1)
    assert r.tpot_ms == pytest.approx(step(b) * 1000)
    bad = inference_perf(card, toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=7.5, **TOY)
    assert not bad.feasible and bad.reason.startswith("slo: tpot")
    assert bad.tpot_ms == pytest.approx(step(1) * 1000)


def test_moe_small_batch_beats_dense_of_same_size() -> None:
    moe = inference_perf(toy_moe(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=12, **TOY)
    dense = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=17, **TOY)
    assert moe.feasible and moe.tpot_ms < 12
    assert dense.feasible and dense.tpot_ms > 16  # reads all 8e9 bytes every step


# ---------------------------------------------------------------- inference: pipeline
# Toy 4.5B (W 9e9), hidden 1000, input 30000 + output 20000 (1e9 B/request, 0.8e9 mean)
# on one-chip nodes: 1 chip holds 9e9 < 10e9, so t=1 and p=2 stages (18e9 >= 9e9 + 2e9).
# Hand-off x(n) = 20 us + n*1000*2/50e9 = 20 us + n*0.04 us.


def test_pipeline_stages_hand_worked() -> None:
    card = toy_card(params_b=4.5, hidden=1000)
    r = inference_perf(card, toy_acc(scaleup_gbps=100.0), chips_per_node=1, **COMM)
    assert r.feasible and r.pipeline_stages == 2 and r.chips_per_replica == 2
    # B_mem = floor((18e9 - 9e9)/0.8e9) = 11 requests (steady state) -> 5 per micro-batch,
    # 10 in flight.
    assert r.max_batch == 10

    def x(n: float) -> float:
        return 20e-6 + n * 1000 * 2 / 50e9

    step = (9e9 + 5 * 0.8e9) / 0.5e12 + 2 * 4.5e9 * 5 / 5e13  # 26 + 0.9 ms, t=1: no comm
    tpot = step + 2 * x(5)  # 26.9 + 0.0404 ms
    assert r.tpot_ms == pytest.approx(tpot * 1000) == pytest.approx(26.9404)
    pre = 2 * 4.5e9 * 30_000 / 5e13  # 5.4 s on one stage group of 1 chip
    assert r.ttft_ms == pytest.approx((pre + 2 * x(30_000)) * 1000) == pytest.approx(5402.44)
    rps = 1 / (pre / 2 + x(30_000) + 20_000 * (tpot / 2) / 5)
    assert r.replica_requests_per_s == pytest.approx(rps)
    assert r.output_tokens_per_s_per_chip == pytest.approx(rps * 20_000 / 2)
    assert r.to_dict()["pipeline_stages"] == 2


def test_pipeline_latency_and_throughput_relations() -> None:
    card = toy_card(params_b=4.5, hidden=1000)
    pp = inference_perf(card, toy_acc(), chips_per_node=1, **COMM)
    tp = inference_perf(card, toy_acc(), max_chips=2, **COMM)  # same 2 chips as tensor parallel
    assert (pp.chips_per_replica, pp.pipeline_stages) == (2, 2)
    assert (tp.chips_per_replica, tp.pipeline_stages) == (2, 1)
    # Same memory, so about the same requests in flight (rounded down to whole micro-batches).
    assert tp.max_batch == 11 and pp.max_batch == 10
    # A token passes every stage in turn: its TPOT streams all the weights from one
    # chip's bandwidth (9e9/0.5e12 = 18 ms), the tensor-parallel step from two (9 ms).
    assert tp.tpot_ms == pytest.approx(18.79) and pp.tpot_ms == pytest.approx(26.9404)
    assert pp.tpot_ms > tp.tpot_ms
    # Prefill is pipelined: TTFT is the whole prompt on one chip, throughput share halves.
    assert pp.ttft_ms == pytest.approx(2 * tp.ttft_ms, rel=1e-3)
    # Decode rate p*b/tpot: below tensor parallelism (each stage re-reads its weights per
    # micro-batch) but within a factor p.
    assert tp.replica_requests_per_s / 2 < pp.replica_requests_per_s < tp.replica_requests_per_s
    # A slower inter-node link only adds hand-off time.
    slow = inference_perf(card, toy_acc(), chips_per_node=1, internode_gbps=0.1, **COMM)
    assert slow.max_batch == pp.max_batch and slow.tpot_ms > pp.tpot_ms
    assert slow.tpot_ms - pp.tpot_ms == pytest.approx(2 * 5 * 1000 * 2 * (1 / 0.1e9 - 1 / 50e9) * 1000)


def test_pipeline_not_used_when_the_node_holds_the_model() -> None:
    # Dense results are unchanged by chips_per_node when one node is enough.
    card = toy_card(params_b=4.5, hidden=1000)
    acc = toy_acc(scaleup_gbps=100.0)
    for node in (2, 4, 8):
        with_node = inference_perf(card, acc, chips_per_node=node, tpot_ms=30, **COMM)
        assert with_node == inference_perf(card, acc, tpot_ms=30, **COMM)
        assert with_node.pipeline_stages == 1 and with_node.chips_per_replica == 2
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, chips_per_node=8, **TOY)
    assert r.tpot_ms == pytest.approx(25.18) and r.max_batch == 45 and r.pipeline_stages == 1


def test_pipeline_limits() -> None:
    card = toy_card(params_b=4.5)
    # max_chips caps t*p: with one chip there is no room for a second stage.
    capped = inference_perf(card, toy_acc(), chips_per_node=1, max_chips=1, **COMM)
    assert not capped.feasible and capped.reason.startswith("memory:")
    assert "9.0 GB usable on 1 chip(s)" in capped.reason
    # 40B (80e9 B) on one-chip nodes would need 16 stages > MAX_PIPELINE_STAGES = 8.
    assert defaults.MAX_PIPELINE_STAGES == 8
    big = inference_perf(toy_card(params_b=40.0), toy_acc(), chips_per_node=1, **COMM)
    assert not big.feasible and big.reason.startswith("memory:")
    assert "72.0 GB usable on 8 chip(s) (8 pipeline stages of 1)" in big.reason
    # Without chips_per_node nothing changes: tensor parallelism only.
    assert inference_perf(card, toy_acc(), max_chips=1, **COMM).pipeline_stages == 1
    with pytest.raises(ValueError):
        inference_perf(card, toy_acc(), chips_per_node=0, **COMM)


def test_pipeline_for_real_models_that_outgrow_a_node() -> None:
    from polyfleet.catalog.io import load_bundled
    from polyfleet.perf import sized_inference_perf

    cat = load_bundled()
    h100, h200 = cat.accelerators["nvidia-h100-sxm"], cat.accelerators["nvidia-h200"]
    kw = {"input_tokens": 2000, "output_tokens": 500, "tpot_ms": 50}
    # Llama 3.1 405B bf16: 810 GB > 8 x 80 x 0.9 = 576 GB -> 2 stages of 8 H100s (1152 GB).
    llama = cat.models["llama-3.1-405b"]
    assert llama.weight_bytes == 810e9 and 810e9 > 8 * 80e9 * 0.9
    one_node = sized_inference_perf(llama, h100, max_chips=8, **kw)
    assert not one_node.feasible and one_node.reason.startswith("memory:")
    r = sized_inference_perf(llama, h100, chips_per_node=8, **kw)
    assert r.feasible and (r.pipeline_stages, r.chips_per_replica) == (2, 16)
    assert r.max_batch % 2 == 0 and r.tpot_ms <= 50
    # DeepSeek-V3 fp8: 671 GB fits in 8 H200s (8 x 141 x 0.9 = 1015 GB) but not 8 H100s.
    ds = cat.models["deepseek-v3"]
    assert sized_inference_perf(ds, h200, chips_per_node=8, **kw).pipeline_stages == 1
    assert sized_inference_perf(ds, h200, chips_per_node=8, **kw).chips_per_replica == 8
    r = sized_inference_perf(ds, h100, chips_per_node=8, **kw)
    assert r.feasible and (r.pipeline_stages, r.chips_per_replica) == (2, 16)


def test_internode_defaults_documented() -> None:
    assert defaults.INTERNODE_GBPS == 50.0  # one 400 Gb/s NIC
    assert defaults.INTERNODE_LATENCY_S == 20e-6


# ---------------------------------------------------------------- inference: chunked prefill
# batching="chunked": every step carries P(b) = b*input/output prompt tokens.  Toy dense
# card, input 1000 / output 200: n(b) = 6b tokens per step, so on one chip
# tpot(b) = 16 ms + b*(22e6/0.5e12 + 6*2*4e9/5e13) = 16 ms + b*(0.044 + 0.96) ms.
CHUNKED = {"batching": "chunked", **TOY}


def test_chunked_hand_worked_memory_cap() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, **CHUNKED)
    assert r.feasible and r.chips_per_replica == 1 and r.max_batch == 45  # b_mem as serial
    mem = (8e9 + 45 * 22e6) / 0.5e12  # 17.98 ms: the KV read is unchanged
    comp = 2 * 4e9 * 45 * 6 / 5e13  # 270 tokens: 43.2 ms
    assert r.tpot_ms == pytest.approx((mem + comp) * 1000) == pytest.approx(61.18)
    assert r.bound == "compute" and comp > mem
    # TTFT: ceil(1000 / CHUNK_TOKENS 2048) = 1 chunk, one step.
    assert r.ttft_ms == pytest.approx(61.18)
    rps = 45 / (200 * (mem + comp))  # 45 requests finish every 200 steps
    assert r.replica_requests_per_s == pytest.approx(rps)
    assert r.output_tokens_per_s_per_chip == pytest.approx(rps * 200)
    # One chip, no all-reduce: the same requests/s as serial prefill (same work, same batch).
    serial = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, **TOY)
    assert serial.replica_requests_per_s == pytest.approx(rps)
    assert inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200,
                          batching="serial", **TOY) == serial  # fmt: skip


def test_chunked_prefill_share_of_the_step() -> None:
    kw = {"input_tokens": 1000, "output_tokens": 200, **TOY}
    serial = inference_perf(toy_card(), toy_acc(), **kw)
    chunked = inference_perf(toy_card(), toy_acc(), batching="chunked", **kw)
    # Same batch 45: the step grows by the compute of P = 45*1000/200 = 225 prompt tokens.
    assert chunked.max_batch == serial.max_batch == 45
    assert chunked.tpot_ms - serial.tpot_ms == pytest.approx(225 * 2 * 4e9 / 5e13 * 1000)  # 36 ms
    # No prompt: no prefill share, the step is the serial decode step; TTFT is one step.
    empty = inference_perf(
        toy_card(), toy_acc(), input_tokens=0, output_tokens=200, batching="chunked", **TOY
    )
    # mean live context 100 -> b_mem = floor(1e9/(100*20000)) = 500 (250 at the full 200).
    assert empty.max_batch == 500
    tpot = (8e9 + 500 * 100 * 20_000) / 0.5e12 + 2 * 4e9 * 500 / 5e13  # 18 + 80 ms
    assert empty.tpot_ms == pytest.approx(tpot * 1000) == pytest.approx(98.0)
    serial_empty = inference_perf(toy_card(), toy_acc(), input_tokens=0, output_tokens=200, **TOY)
    assert empty.tpot_ms == pytest.approx(serial_empty.tpot_ms)
    assert empty.ttft_ms == pytest.approx(empty.tpot_ms)
    with pytest.raises(ValueError):
        inference_perf(toy_card(), toy_acc(), batching="eager", **kw)


def test_chunked_tpot_cap_includes_prefill() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=30, **CHUNKED)
    # (30 - 16) / 1.004 = 13.94 -> 13 (serial would take 41: its step leaves prefill out).
    assert r.max_batch == math.floor((30 - 16) / 1.004) == 13
    assert r.tpot_ms == pytest.approx(16 + 13 * 1.004) == pytest.approx(29.052)
    assert r.ttft_ms == pytest.approx(29.052)  # one chunk
    assert r.replica_requests_per_s == pytest.approx(13 / (200 * 0.029052))
    bad = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=17, **CHUNKED)
    assert not bad.feasible and bad.reason.startswith("slo: tpot")
    assert bad.tpot_ms == pytest.approx(17.004)  # 16 + 1.004 > 17


def test_chunked_ttft_grows_with_the_prompt() -> None:
    # input 5000 / output 200: n(b) = 26b tokens per step; ctx_full 5200 -> 104e6 B/request,
    # b_mem = floor(1e9/104e6) = 9; ctx_mean 5100 -> 102e6 B.
    # tpot(b) = 16 + b*(102e6/0.5e12 + 26*2*4e9/5e13) = 16 + 4.364*b ms -> tpot(9) = 55.276 ms.
    long = inference_perf(toy_card(), toy_acc(), input_tokens=5000, output_tokens=200, **CHUNKED)
    assert long.max_batch == 9 and long.tpot_ms == pytest.approx(55.276)
    # ceil(5000/2048) = 3 chunks, one per step: TTFT = 3 * 55.276 = 165.828 ms.
    assert math.ceil(5000 / defaults.CHUNK_TOKENS) == 3
    assert long.ttft_ms == pytest.approx(3 * 55.276)
    # input 1000 / output 20: one chunk, TTFT = TPOT = 16 + 8.2004*b; b_mem = 49.
    short = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=20, **CHUNKED)
    assert short.max_batch == 49 and short.ttft_ms == pytest.approx(16 + 8.2004 * 49)


def test_chunked_batch_meets_ttft_and_tpot_at_once() -> None:
    kw = {"input_tokens": 1000, "output_tokens": 20, **CHUNKED}
    # One chunk: ttft(b) = tpot(b) = 16 + 8.2004 b ms, growing with b.
    # TTFT 250 ms alone: largest b with 16 + 8.2004 b <= 250 -> 28 (memory allows 49).
    r = inference_perf(toy_card(), toy_acc(), ttft_ms=250, **kw)
    assert r.feasible and r.max_batch == math.floor((250 - 16) / 8.2004) == 28
    assert r.ttft_ms == pytest.approx(16 + 28 * 8.2004) == pytest.approx(245.6112)
    assert r.limit == "slo: ttft"
    # TPOT 200 ms as well: the TPOT cap floor(184/8.2004) = 22 binds, TTFT 196.4 ms is met.
    both = inference_perf(toy_card(), toy_acc(), ttft_ms=250, tpot_ms=200, **kw)
    assert both.feasible and both.max_batch == 22 and both.limit == "slo: tpot"
    assert both.tpot_ms <= 200 and both.ttft_ms <= 250
    # TTFT 20 ms: one request alone takes 24.2004 ms: infeasible.
    bad = inference_perf(toy_card(), toy_acc(), ttft_ms=20, **kw)
    assert not bad.feasible and bad.reason.startswith("slo: ttft")
    assert "lowest reachable 24.2 ms at batch 1" in bad.reason
    # Exactly at a batch's TTFT: that batch.
    edge = inference_perf(toy_card(), toy_acc(), ttft_ms=180.008, **kw)
    assert edge.feasible and edge.max_batch == 20


def test_chunked_tensor_parallel_and_pipeline() -> None:
    card = toy_card(params_b=4.5, hidden=1000)
    # t=2, b=11, input 30000 / output 20000: n = 2.5*11 = 27.5 tokens per step.
    r = inference_perf(card, toy_acc(scaleup_gbps=100.0), batching="chunked", **COMM)
    assert r.chips_per_replica == 2 and r.max_batch == 11
    mem = 17.8e-3  # (9e9 + 11*0.8e9)/1e12, as serial
    comp = 2 * 4.5e9 * 27.5 / 1e14  # 2.475 ms
    comm = 200e-6 + 27.5 * 0.8e-6  # 0.222 ms: the prompt tokens are all-reduced too
    assert r.tpot_ms == pytest.approx((mem + comp + comm) * 1000) == pytest.approx(20.497)
    assert r.ttft_ms == pytest.approx(20.497 * 15)  # ceil(30000/2048) = 15 chunks
    assert r.replica_requests_per_s == pytest.approx(11 / (20_000 * (mem + comp + comm)))
    # Pipeline: t=1, p=2, b=5 per micro-batch, n = 12.5; hand-off x(12.5) = 20 + 0.5 us.
    pp = inference_perf(card, toy_acc(), chips_per_node=1, batching="chunked", **COMM)
    assert (pp.pipeline_stages, pp.chips_per_replica, pp.max_batch) == (2, 2, 10)
    step = (9e9 + 5 * 0.8e9) / 0.5e12 + 2 * 4.5e9 * 12.5 / 5e13  # 26 + 2.25 ms
    tpot = step + 2 * (20e-6 + 12.5 * 1000 * 2 / 50e9)  # 28.291 ms
    assert pp.tpot_ms == pytest.approx(tpot * 1000) == pytest.approx(28.291)
    assert pp.ttft_ms == pytest.approx(tpot * 15 * 1000)
    assert pp.replica_requests_per_s == pytest.approx(5 / (20_000 * tpot / 2))  # b/stage per token


def test_chunked_moe_routes_prompt_tokens() -> None:
    r = inference_perf(toy_moe(), toy_acc(), input_tokens=1000, output_tokens=200, **CHUNKED)
    assert r.max_batch == 45
    # 270 tokens per step route to experts: essentially all 8 are read.
    mem = (moe_read(270) + 45 * 22e6) / 0.5e12
    comp = 2 * 1.6e9 * 270 / 5e13
    assert r.tpot_ms == pytest.approx((mem + comp) * 1000)
    assert moe_read(270) > moe_read(45)
    # TPOT cap by bisection over the chunked step.
    capped = inference_perf(toy_moe(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=30, **CHUNKED)

    def step(b: int) -> float:
        return (moe_read(6 * b) + b * 22e6) / 0.5e12 + 2 * 1.6e9 * 6 * b / 5e13

    b = capped.max_batch
    assert b >= 1 and step(b) <= 0.030 < step(b + 1)


def test_chunked_through_sized_inference_perf() -> None:
    from polyfleet.perf import sized_inference_perf

    kw = {"input_tokens": 1000, "output_tokens": 200, **CHUNKED}
    assert sized_inference_perf(toy_card(), toy_acc(), **kw) == inference_perf(
        toy_card(), toy_acc(), min_batch=defaults.MIN_BATCH, **kw
    )
    assert defaults.BATCHING == "serial"


def test_full_mesh_box_gives_a_small_group_only_its_peer_links() -> None:
    # Same case as test_tensor_parallel_comm_cost, but the 100 GB/s is spread over 7
    # point-to-point links (an 8-chip all-to-all box): t=2 reaches its one peer over one
    # link, 100/7 GB/s bidirectional -> link = 50e9/7 B/s one way, so the bytes term of
    # comm(n) is 7x larger: comm(n) = 200 us + n * 5.6 us.
    card = toy_card(params_b=4.5, hidden=1000)
    mesh = inference_perf(card, toy_acc(scaleup_gbps=100.0, scaleup_links=7), **COMM)
    switched = inference_perf(card, toy_acc(scaleup_gbps=100.0), **COMM)
    assert mesh.chips_per_replica == switched.chips_per_replica == 2
    assert mesh.max_batch == switched.max_batch == 11

    def comm(n: float) -> float:
        return 2 * 10 * (n * 1000 * 2 / (100 / 7 / 2 * 1e9) + 10e-6)

    assert comm(1) - comm(0) == pytest.approx(5.6e-6)
    step = (17.8e-3 + 0.99e-3) + comm(11)  # 18.79 + 0.2616 ms
    assert mesh.tpot_ms == pytest.approx(step * 1000)
    assert mesh.tpot_ms == pytest.approx(19.0516)
    assert mesh.ttft_ms == pytest.approx((2.7 + comm(30_000)) * 1000)  # 2700 + 168.2 ms
    assert mesh.ttft_ms > switched.ttft_ms + 140


def test_mesh_share_grows_with_the_group_and_caps_at_all_links() -> None:
    from polyfleet.perf.inference import _mesh_share

    mesh = toy_acc(scaleup_gbps=896.0, scaleup_links=7)
    assert [_mesh_share(mesh, t) for t in (2, 4, 8, 16)] == [1 / 7, 3 / 7, 1.0, 1.0]
    assert _mesh_share(toy_acc(scaleup_gbps=900.0), 2) == 1.0  # switched: the whole figure


def test_per_accelerator_efficiency_defaults_apply_unless_overridden() -> None:
    from polyfleet.catalog.io import load_bundled
    from polyfleet.perf.calibration import Calibration, Efficiency

    accs = load_bundled().accelerators
    card = toy_card(params_b=70.0, layers=80, kv_heads=8, head_dim=128, hidden=8192, dtype="fp8")
    kw = {"input_tokens": 2000, "output_tokens": 500, "tpot_ms": 50.0}
    compute, memory = defaults.EFFICIENCY_BY_ACCELERATOR["amd-mi300x"]
    assert (compute, memory) == (0.38, 0.70)
    assert defaults.efficiency_for("amd-mi300x") == (0.38, 0.70)
    assert defaults.efficiency_for("nvidia-h100-sxm") == (
        defaults.COMPUTE_EFFICIENCY,
        defaults.MEMORY_EFFICIENCY,
    )
    mi = accs["amd-mi300x"]
    implicit = inference_perf(card, mi, **kw)
    explicit = inference_perf(card, mi, compute_efficiency=0.38, memory_efficiency=0.70, **kw)
    global_ = inference_perf(card, mi, compute_efficiency=0.6, memory_efficiency=0.8, **kw)
    assert implicit == explicit
    assert implicit.output_tokens_per_s_per_chip < 0.9 * global_.output_tokens_per_s_per_chip
    assert Efficiency.default("amd-mi300x") == Efficiency(compute=0.38, memory=0.70)
    assert Efficiency.default() == Efficiency(compute=0.6, memory=0.8)
    empty = Calibration(
        accelerators={}, source="", fitted_at="", n_points=0, error_before_pct=0.0, error_after_pct=0.0
    )
    assert empty.efficiency("amd-mi300x") == Efficiency(compute=0.38, memory=0.70)
    # every per-chip default says where it comes from
    assert set(defaults.EFFICIENCY_BY_ACCELERATOR) <= set(defaults.EFFICIENCY_SOURCES)
    assert set(defaults.EFFICIENCY_SOURCES) <= set(accs)


def test_step_overhead_adds_a_fixed_cost_per_layer_to_each_pass() -> None:
    # Toy case of test_memory_cap_binds_and_all_numbers (10 layers) with 100 us per layer:
    # o = 1 ms on every decode step and on the prefill.  TPOT cap 100 ms:
    # b_tpot = floor((0.1 - 16 ms - 1 ms) / 0.204 ms) = 406; memory still caps at 45.
    base = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=100, **TOY)
    r = inference_perf(
        toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=100,
        step_overhead_s_per_layer=100e-6, **TOY,
    )  # fmt: skip
    assert r.max_batch == base.max_batch == 45
    assert r.tpot_ms == pytest.approx(25.18 + 1.0)
    assert r.ttft_ms == pytest.approx(base.ttft_ms + 1.0)  # 160 + 1 ms
    # a tighter TPOT target: (0.02 - 0.017) / 0.204e-3 = 14.7 -> 14 (without o: 19)
    tight = inference_perf(
        toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=20,
        step_overhead_s_per_layer=100e-6, **TOY,
    )  # fmt: skip
    assert tight.max_batch == math.floor((0.020 - 0.017) / 0.204e-3) == 14
    loose = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=20, **TOY)
    assert loose.max_batch == math.floor((0.020 - 0.016) / 0.204e-3) == 19


def test_step_overhead_defaults_by_stack() -> None:
    kw = {"input_tokens": 1000, "output_tokens": 200, **TOY}
    cuda = inference_perf(toy_card(), toy_acc(), **kw)
    neuron = inference_perf(toy_card(), toy_acc(stack="neuron"), **kw)
    per_layer = defaults.STEP_OVERHEAD_S_PER_LAYER["neuron"]
    assert per_layer == pytest.approx(150.5e-6)
    assert "cuda" not in defaults.STEP_OVERHEAD_S_PER_LAYER
    assert neuron.tpot_ms == pytest.approx(cuda.tpot_ms + 10 * per_layer * 1000)
    off = inference_perf(toy_card(), toy_acc(stack="neuron"), step_overhead_s_per_layer=0.0, **kw)
    assert off.tpot_ms == pytest.approx(cuda.tpot_ms)
    with pytest.raises(ValueError, match="step_overhead"):
        inference_perf(toy_card(), toy_acc(), step_overhead_s_per_layer=-1.0, **kw)


def test_step_overhead_counts_once_per_pass_with_pipeline_stages_and_chunking() -> None:
    # o = L * 100 us = 1 ms.  Pipeline (p=2 on one-chip nodes): tpot = step + p*x, and the
    # step holds o once (each stage runs half the layers: o/2 each, two stages).  Chunked:
    # every step carries o once as well; per-request time grows by output*o/b.
    card = toy_card(params_b=4.5, hidden=1000)
    base = inference_perf(card, toy_acc(), chips_per_node=1, **COMM)
    over = inference_perf(card, toy_acc(), chips_per_node=1, step_overhead_s_per_layer=100e-6, **COMM)
    assert over.pipeline_stages == base.pipeline_stages == 2 and over.max_batch == base.max_batch
    assert over.tpot_ms == pytest.approx(base.tpot_ms + 1.0)
    assert over.ttft_ms == pytest.approx(base.ttft_ms + 1.0)
    kw = {"input_tokens": 1000, "output_tokens": 200, "batching": "chunked", **TOY}
    c0 = inference_perf(toy_card(), toy_acc(), **kw)
    c1 = inference_perf(toy_card(), toy_acc(), step_overhead_s_per_layer=100e-6, **kw)
    assert c1.max_batch == c0.max_batch == 45
    assert c1.tpot_ms == pytest.approx(c0.tpot_ms + 1.0)
    per_request = 200 * c1.tpot_ms / 1000 / 45
    assert c1.replica_requests_per_s == pytest.approx(1 / per_request)
