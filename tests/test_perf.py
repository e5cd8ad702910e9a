"""Performance model v1 against hand-worked numbers.

Each expectation is written out from the formulas in ``polyfleet.perf.inference`` and
``polyfleet.perf.training`` with round made-up inputs, so a reader can redo it by hand.
"""

from __future__ import annotations

import math

import pytest

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf import (
    InferencePerf,
    TrainingPerf,
    defaults,
    inference_perf,
    training_perf,
)

# Toy efficiencies: 9 GB usable of 10, 0.5 TB/s of 1, 50 TFLOP/s of 100.
TOY = {"hbm_utilisation": 0.9, "memory_efficiency": 0.5, "compute_efficiency": 0.5}


def toy_acc(**over: object) -> Accelerator:
    """100 TFLOPS bf16, 200 fp8, 10 GB, 1 TB/s."""
    fields: dict = {
        "id": "toy",
        "vendor": "nvidia",
        "bf16_tflops": 100.0,
        "fp8_tflops": 200.0,
        "hbm_gb": 10.0,
        "hbm_tbps": 1.0,
        "stack": "cuda",
    }
    fields.update(over)
    return Accelerator(**fields)


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
# input 1000, output 200: ctx_full 1200 -> 24e6 B/request, ctx_mean 1100 -> 22e6 B/request.


def test_memory_cap_binds_and_all_numbers() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=100, **TOY)
    # t=1: 9e9 >= 8e9 + 24e6.
    assert r.feasible and r.reason == ""
    assert r.chips_per_replica == 1
    b_mem = math.floor((9e9 - 8e9) / 24e6)  # 41
    b_tpot = math.floor(min((0.1 * 0.5e12 - 8e9) / 22e6, 0.1 * 5e13 / (2 * 4e9)))  # 625
    assert (b_mem, b_tpot) == (41, 625)
    assert r.max_batch == 41
    mem = (8e9 + 41 * 22e6) / 0.5e12  # 17.804 ms
    comp = 2 * 4e9 * 41 / 5e13  # 6.56 ms
    assert r.tpot_ms == pytest.approx(mem * 1000)
    assert r.bound == "memory" and mem > comp
    prefill = max(2 * 4e9 * 1000 / 5e13, 8e9 / 0.5e12)  # 0.16 s, compute
    assert r.ttft_ms == pytest.approx(160.0)
    rps = 1 / (prefill + 200 * mem / 41)
    assert r.replica_requests_per_s == pytest.approx(rps)
    assert r.output_tokens_per_s_per_chip == pytest.approx(rps * 200 / 1)


def test_tpot_cap_binds() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=17, **TOY)
    # memory-term cap: (0.017*0.5e12 - 8e9)/22e6 = 22.7 -> 22 < b_mem 41 and < comp cap 106.
    assert r.max_batch == 22
    assert r.tpot_ms == pytest.approx((8e9 + 22 * 22e6) / 0.5e12 * 1000)  # 16.968
    assert r.tpot_ms <= 17
    assert (8e9 + 23 * 22e6) / 0.5e12 * 1000 > 17  # one more request would break the SLO


def test_no_tpot_means_memory_cap_only() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, **TOY)
    assert r.max_batch == 41


def test_tpot_unreachable() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, tpot_ms=16, **TOY)
    one = (8e9 + 22e6) / 0.5e12 * 1000  # 16.044 ms > 16
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
    assert r.max_batch == 41 and r.replica_requests_per_s > 0


def test_ttft_met() -> None:
    r = inference_perf(toy_card(), toy_acc(), input_tokens=1000, output_tokens=200, ttft_ms=200, **TOY)
    assert r.feasible


def test_tensor_parallel_choice_and_memory_infeasible() -> None:
    # 4.5B -> W 9e9; input 30000 + output 20000 -> 50000*20000 = 1e9 B/request.
    card = toy_card(params_b=4.5)
    kw = {"input_tokens": 30_000, "output_tokens": 20_000, **TOY}
    r = inference_perf(card, toy_acc(), **kw)
    # 1 chip: 9e9 < 10e9; 2 chips: 18e9 >= 10e9.
    assert r.chips_per_replica == 2
    assert r.max_batch == math.floor((18e9 - 9e9) / 1e9)  # 9
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
    # need 9e9 + 10*1e9 = 19e9 > 2 chips' 18e9 -> 4 chips.
    r = inference_perf(card, toy_acc(), min_batch=10, **kw)
    assert r.chips_per_replica == 4
    assert r.max_batch == math.floor((36e9 - 9e9) / 1e9)  # 27


def test_compute_bound() -> None:
    # 1B, KV 2*2*1*64*2 = 512 B/token; input 100, output 100.
    card = toy_card(params_b=1.0, layers=2, kv_heads=1, head_dim=64)
    assert card.kv_bytes_per_token == 512
    r = inference_perf(card, toy_acc(), input_tokens=100, output_tokens=100, tpot_ms=50, **TOY)
    comp_cap = 0.05 * 5e13 / (2 * 1e9)  # 1250
    mem_cap = (0.05 * 0.5e12 - 2e9) / (150 * 512)  # 299479
    b_mem = (9e9 - 2e9) / (200 * 512)  # 68359
    assert comp_cap < mem_cap and comp_cap < b_mem
    assert r.max_batch == 1250
    assert r.bound == "compute"
    assert r.tpot_ms == pytest.approx(2 * 1e9 * 1250 / 5e13 * 1000)  # 50 ms
    prefill = max(2 * 1e9 * 100 / 5e13, 2e9 / 0.5e12)  # 4 ms memory
    assert r.ttft_ms == pytest.approx(prefill * 1000)
    assert r.replica_requests_per_s == pytest.approx(1 / (prefill + 100 * 0.05 / 1250))


def test_mla_kv_size() -> None:
    # MLA: layers * kv_latent_dim * 2 bytes = 61*576*2 = 70,272; heads/head_dim ignored.
    card = toy_card(attention="mla", layers=61, kv_latent_dim=576, heads=128, kv_heads=128, head_dim=128)
    assert card.kv_bytes_per_token == 61 * 576 * 2
    r = inference_perf(card, toy_acc(), input_tokens=1000, output_tokens=200, **TOY)
    assert r.max_batch == math.floor(1e9 / (1200 * 70_272))  # 11


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
    assert r.max_batch == math.floor(1e9 / (1200 * 10_000))  # 83


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
    assert d["max_batch"] == 41 and d["bound"] == "memory" and d["feasible"] is True
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
    assert r.max_batch == math.floor((2 * usable - w) / (1800 * kv))  # 4: memory cap
    mem = (w + 4 * 1650 * kv) / (2 * 3.35e12 * 0.8)  # 26.7 ms
    comp = 2 * 70.6e9 * 4 / (2 * 989e12 * 0.6)
    assert r.tpot_ms == pytest.approx(mem * 1000)
    assert r.bound == "memory" and mem > comp
    prefill = 2 * 70.6e9 * 1500 / (2 * 989e12 * 0.6)  # 178.5 ms, compute-bound
    assert prefill > w / (2 * 3.35e12 * 0.8)
    assert r.ttft_ms == pytest.approx(prefill * 1000)
    rps = 1 / (prefill + 300 * mem / 4)
    assert r.replica_requests_per_s == pytest.approx(rps)
    assert r.output_tokens_per_s_per_chip == pytest.approx(rps * 300 / 2)


def test_llama70b_on_h100_min_batch_picks_four_chips() -> None:
    r = inference_perf(llama70(), h100(), input_tokens=1500, output_tokens=300, tpot_ms=40, min_batch=8)
    w, kv = 141.2e9, 327_680
    # 2 chips hold 4 requests < 8 -> 4 chips; memory cap floor((288e9 - w)/(1800 kv)) = 248,
    # TPOT caps (0.04*4*3.35e12*0.8 - w)/(1650 kv) = 531 and 0.04*4*989e12*0.6/(2*70.6e9) = 672.
    assert r.chips_per_replica == 4
    assert r.max_batch == 248
    assert r.tpot_ms == pytest.approx((w + 248 * 1650 * kv) / (4 * 3.35e12 * 0.8) * 1000)
    assert r.tpot_ms < 40


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
    assert defaults.TRAINING_BYTES_PER_PARAM == 2 + 2 + 4 + 4 + 4
    assert defaults.MAX_TENSOR_PARALLEL == 64
    for stack in ("rocm", "neuron", "synapse", "maia"):
        assert "estimate" in defaults.MFU_SOURCES[stack]
