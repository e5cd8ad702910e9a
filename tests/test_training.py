"""Training model v2 against hand-worked numbers: scaling efficiency and activation memory.

Toy accelerator (as in ``test_perf``): 100 TFLOP/s bf16, 10 GB HBM, cuda, so at the
cuda MFU 0.40 one chip sustains 4e13 FLOP/s before scaling loss, and 9 GB of HBM is
usable (utilisation 0.9).

Scaling slopes, from the published points relative to 512 chips:
cuda alpha = (1 - 0.65) / log2(11616 / 512) = 0.35 / log2(22.6875) = 0.35 / 4.5039 = 0.077712;
xla  alpha = (1 - 0.77) / log2(6144 / 512)  = 0.23 / log2(12)      = 0.23 / 3.5850 = 0.064157.
"""

from __future__ import annotations

import itertools
import math

import pytest

from conftest import toy_acc
from polyfleet.catalog.models import ModelCard
from polyfleet.perf import defaults, training_perf
from polyfleet.perf.training import activation_bytes, scaling_alpha, scaling_efficiency

ALPHA_CUDA = 0.35 / math.log2(11616 / 512)
ALPHA_XLA = 0.23 / math.log2(6144 / 512)
BASE = 100e12 * 0.40  # toy sustained FLOP/s per chip before scaling loss
DAY = 86400


def toy_card(**over: object) -> ModelCard:
    """4B params: 4e9 x 16 = 64e9 training-state bytes -> ceil(64/9) = 8 chips."""
    fields: dict = {"name": "toy", "params_b": 4.0, "layers": 10, "kv_heads": 5, "head_dim": 100}
    fields.update(over)
    return ModelCard(**fields)


# ---------------------------------------------------------------- scaling efficiency


def test_alpha_fitted_to_published_points() -> None:
    assert scaling_alpha("cuda") == pytest.approx(ALPHA_CUDA) == pytest.approx(0.077712, abs=1e-6)
    assert scaling_alpha("xla") == pytest.approx(ALPHA_XLA) == pytest.approx(0.064157, abs=1e-6)
    for stack in ("rocm", "neuron", "synapse", "maia"):  # estimates: cuda slope
        assert scaling_alpha(stack) == pytest.approx(ALPHA_CUDA)
        assert "estimate" in defaults.SCALING_SOURCES[stack]
    assert set(defaults.SCALING_SOURCES) == set(defaults.MFU_BY_STACK)
    assert defaults.SCALING_POINTS == {"cuda": (11_616, 0.65), "xla": (6_144, 0.77)}


def test_efficiency_at_published_points_and_base() -> None:
    for stack in ("cuda", "xla", "rocm"):
        assert scaling_efficiency(1, stack) == 1.0
        assert scaling_efficiency(512, stack) == 1.0
    assert scaling_efficiency(11_616, "cuda") == pytest.approx(0.65)
    assert scaling_efficiency(6_144, "xla") == pytest.approx(0.77)
    # one doubling past 512 costs one alpha
    assert scaling_efficiency(1024, "cuda") == pytest.approx(1 - 0.077712, abs=1e-6)
    assert scaling_efficiency(1024, "xla") == pytest.approx(1 - 0.064157, abs=1e-6)
    with pytest.raises(ValueError):
        scaling_efficiency(0, "cuda")


def test_efficiency_monotone_and_floored() -> None:
    counts = [512, 513, 1000, 2048, 6144, 11_616, 16_384, 100_000, 262_144, 300_000, 10**7]
    for stack in ("cuda", "xla"):
        effs = [scaling_efficiency(n, stack) for n in counts]
        assert all(a >= b for a, b in itertools.pairwise(effs))
        assert effs[1] < 1.0
    # cuda hits 0.3 where alpha * log2(n/512) = 0.7: n = 512 * 2**(0.7/0.077712) ~ 263,538
    assert scaling_efficiency(262_144, "cuda") == pytest.approx(1 - 9 * ALPHA_CUDA)  # 0.3006
    assert scaling_efficiency(262_144, "cuda") > 0.3
    assert scaling_efficiency(300_000, "cuda") == 0.3
    assert scaling_efficiency(10**7, "xla") == defaults.SCALING_EFFICIENCY_FLOOR == 0.3


# ---------------------------------------------------------------- fixed-point chips
# A user-given mfu is read as measured at <= 512 chips, so the whole scaling loss applies.
MFU = defaults.MFU_BY_STACK["cuda"]


def test_fixed_point_chips_under_scaling_loss() -> None:
    # F = 4e13 x 86400 x 1000: 1000 chips loss-free for a 1-day deadline, 8-chip instances.
    f = BASE * DAY * 1000
    r = training_perf(
        toy_card(), toy_acc(), tokens_b=1, deadline_days=1, flops=f, chips_per_instance=8, mfu=MFU
    )
    # n=1000:  eff = 1 - a*log2(1000/512) = 0.924947 -> ceil(1000/0.924947) = 1082 -> 1088
    # n=1088:  eff = 1 - a*log2(2.125)    = 0.915491 -> ceil(1092.31)       = 1093 -> 1096
    # n=1096:  eff = 1 - a*log2(2.140625) = 0.914670 -> ceil(1093.29)       = 1094 -> 1096  fixed
    assert scaling_efficiency(1000, "cuda") == pytest.approx(0.924947, abs=1e-6)
    assert scaling_efficiency(1088, "cuda") == pytest.approx(0.915491, abs=1e-6)
    assert scaling_efficiency(1096, "cuda") == pytest.approx(0.914670, abs=1e-6)
    assert r.feasible
    assert r.chips == 1096
    assert r.chips_for_deadline == 1094
    assert r.scaling_efficiency == pytest.approx(0.914670, abs=1e-6)
    assert r.sustained_flops_per_chip == pytest.approx(BASE * r.scaling_efficiency)
    assert r.run_hours == pytest.approx(f / (1096 * BASE * 0.914670 * 3600), rel=1e-6)  # 23.94 h
    assert r.run_hours <= 24
    # one instance fewer misses the deadline at its own efficiency
    short = 1088 * BASE * scaling_efficiency(1088, "cuda") * DAY  # 1088 x 0.915491 = 996.05 chips' worth
    assert short < f
    # half the work: 500 chips loss-free
    half = training_perf(
        toy_card(), toy_acc(), tokens_b=1, deadline_days=1, flops=f / 2, chips_per_instance=8, mfu=MFU
    )
    assert half.chips == 504 and half.scaling_efficiency == 1.0  # 500 -> 504, below 512: no loss


def test_fixed_point_reaches_floor() -> None:
    # 100,000 loss-free chips: the iteration climbs to the 0.3 floor, 100000/0.3 = 333,333.3
    f = BASE * DAY * 100_000
    r = training_perf(
        toy_card(), toy_acc(), tokens_b=1, deadline_days=1, flops=f, chips_per_instance=8, mfu=MFU
    )
    assert r.scaling_efficiency == 0.3
    assert r.chips_for_deadline == 333_334
    assert r.chips == 333_336  # whole 8-chip instances
    assert r.run_hours <= 24
    assert (r.chips - 8) * BASE * scaling_efficiency(r.chips - 8, "cuda") * DAY < f


def test_memory_binds_at_scale_efficiency_still_applies() -> None:
    # 400B params: 400e9 x 16 / 9e9 = 711.1 -> 712 memory chips; the deadline needs few:
    # 1e20 / (4e13 x 0.96303 x 864,000) = 2.894 / 0.96303 = 3.005 -> 4 at eff(712).
    card = toy_card(params_b=400.0)
    r = training_perf(
        card, toy_acc(), tokens_b=1, deadline_days=10, flops=1e20, chips_per_instance=8, mfu=MFU
    )
    assert r.chips_for_memory == 712
    assert r.chips_for_deadline == 4
    assert r.chips == 712
    eff = 1 - ALPHA_CUDA * math.log2(712 / 512)  # 0.96302
    assert r.scaling_efficiency == pytest.approx(eff)
    assert r.run_hours == pytest.approx(1e20 / (712 * BASE * eff * 3600))


# ---------------------------------------------------------------- activation memory


def test_activations_add_memory_chips() -> None:
    # hidden 8000, 10 layers, seq 4096, micro-batch 1: 10 x 34 x 4096 x 1 x 8000 = 11.14112e9 B
    act = 10 * 34 * 4096 * 1 * 8000
    assert act == 11_141_120_000
    card = toy_card(hidden=8000)
    assert activation_bytes(card) == act
    r = training_perf(card, toy_acc(), tokens_b=1, deadline_days=100)
    assert r.activation_bytes == act
    assert r.chips_for_memory == math.ceil((64e9 + act) / 9e9) == 9  # 8.349, was 8 without
    assert r.chips == 9
    # micro-batch 2 doubles activations: (64e9 + 22.28224e9) / 9e9 = 9.587 -> 10
    r2 = training_perf(card, toy_acc(), tokens_b=1, deadline_days=100, micro_batch=2)
    assert r2.activation_bytes == 2 * act and r2.chips_for_memory == 10
    # seq 1024: a quarter, 2.78528e9 -> 66.785/9 = 7.42 -> 8
    r3 = training_perf(card, toy_acc(), tokens_b=1, deadline_days=100, seq_len=1024)
    assert r3.activation_bytes == act / 4 and r3.chips_for_memory == 8
    assert defaults.ACTIVATION_BYTES_FACTOR == 34
    assert (defaults.TRAINING_SEQ_LEN, defaults.TRAINING_MICRO_BATCH) == (4096, 1)


def test_missing_hidden_or_layers_skips_activations() -> None:
    for card in (toy_card(), toy_card(layers=None, hidden=8000)):
        assert activation_bytes(card) == 0.0
        r = training_perf(card, toy_acc(), tokens_b=1, deadline_days=100)
        assert r.activation_bytes == 0.0
        assert r.chips_for_memory == math.ceil(64e9 / 9e9) == 8


def test_new_fields_in_dict_and_infeasible() -> None:
    r = training_perf(toy_card(hidden=8000), toy_acc(), tokens_b=1, deadline_days=100)
    d = r.to_dict()
    assert d["scaling_efficiency"] == 1.0
    assert d["activation_bytes"] == 11_141_120_000
    bad = training_perf(
        toy_card(hidden=8000), toy_acc(bf16_tflops=None, fp8_tflops=None), tokens_b=1, deadline_days=1
    )
    assert not bad.feasible and bad.chips == 0 and bad.chips_for_memory == 9
    assert bad.activation_bytes == 11_141_120_000
    with pytest.raises(ValueError):
        training_perf(toy_card(), toy_acc(), tokens_b=1, deadline_days=1, seq_len=0)


def test_default_mfu_carries_the_loss_up_to_its_reference_scale() -> None:
    """Default cuda MFU was measured on 16,384 chips: no extra loss below that, the
    relative loss eff(n) / eff(16384) beyond it (the published loss is not counted twice)."""
    ref = scaling_efficiency(16_384, "cuda")
    small = training_perf(
        toy_card(), toy_acc(), tokens_b=1, deadline_days=1, flops=BASE * DAY * 1000, chips_per_instance=8
    )
    assert small.chips == 1000 and small.scaling_efficiency == 1.0
    big = training_perf(
        toy_card(), toy_acc(), tokens_b=1, deadline_days=1, flops=BASE * DAY * 30_000, chips_per_instance=8
    )
    assert big.chips > 30_000
    assert big.scaling_efficiency == pytest.approx(scaling_efficiency(big.chips, "cuda") / ref)
    assert big.run_hours <= 24
