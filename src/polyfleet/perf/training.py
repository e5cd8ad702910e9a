"""Training performance model v2: chips for a deadline, chips for memory, run time.

Formulas (SI units)::

    F         = flops or 6 * card.active_b*1e9 * tokens_b*1e9     (6 FLOP/param/token)
    peak      = acc.peak_tflops("fp8" if card.dtype == "fp8" else "bf16") * 1e12
    mfu       = mfu or MFU_BY_STACK[acc.stack]
    eff(n)    = 1                                   for n <= 512 (SCALING_BASE_CHIPS)
              = max(0.3, 1 - alpha * log2(n / 512)) otherwise
    alpha     = (1 - e_pub) / log2(n_pub / 512)     per stack, from SCALING_POINTS
    sustained(n) = peak * mfu * eff(n)                             FLOP/s per chip
    chips_for_deadline(n) = ceil(F / (sustained(n) * deadline_days * 86400))
    act       = layers * 34 * seq * micro_batch * hidden           bytes (0 if unknown)
    chips_for_memory = ceil((card.params_b*1e9 * TRAINING_BYTES_PER_PARAM + act)
                            / (acc.hbm_gb*1e9 * hbm_utilisation))
    chips     = least n, a whole number of instances, with
                n >= max(chips_for_deadline(n), chips_for_memory)
    run_hours = F / (chips * sustained(chips) * 3600)

Scaling efficiency is the loss of per-chip throughput at thousands of chips
(communication, stragglers, smaller per-chip batches), relative to 512 chips.  MFU is
the single-scale figure from ``MFU_BY_STACK``; ``sustained`` multiplies both.  Since
``eff`` falls as ``n`` grows, ``chips`` is found by fixed-point iteration: start at the
loss-free count, recompute the deadline chips with ``eff(n)``, round up to instances,
and repeat until ``n`` stops growing.  ``n * eff(n)`` rises with ``n`` whenever
``eff > alpha / ln 2`` (about 0.11), always true above the 0.3 floor, so a fixed point
exists; the iteration climbs to the least one.  After ``_MAX_ITERATIONS`` it falls back
to the chips needed at the floor efficiency, which always suffice.

Memory counts weights, gradients and Adam state fully sharded (ZeRO-3 style), plus the
activations of one micro-batch (``TRAINING_MICRO_BATCH`` sequences of
``TRAINING_SEQ_LEN`` tokens) through all layers with selective recomputation
(Korthikanti et al. 2022).  Those activations are held once per model replica, split
across its tensor/pipeline-parallel group, so they are added once, not per chip; each
further data-parallel replica adds its own, which this lower bound ignores.  Without
``card.layers`` and ``card.hidden`` activations are skipped and ``activation_bytes``
is 0.  Communication within a 512-chip job is folded into MFU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf.defaults import (
    ACTIVATION_BYTES_FACTOR,
    HBM_UTILISATION,
    MFU_BY_STACK,
    MFU_REFERENCE_CHIPS,
    SCALING_BASE_CHIPS,
    SCALING_EFFICIENCY_FLOOR,
    SCALING_POINTS,
    TRAINING_BYTES_PER_PARAM,
    TRAINING_MICRO_BATCH,
    TRAINING_SEQ_LEN,
)

_EPS = 1e-9
"""Slack taken off before ``ceil`` so an exact fit is not rounded up by float error."""

_MAX_ITERATIONS = 100
"""Bound on the fixed-point iteration for chips under scaling loss."""


@dataclass(frozen=True)
class TrainingPerf:
    """Result of the training model for one (model card, accelerator, run).

    ``reason`` is "" when feasible, else a sentence starting with "spec:".  When
    infeasible the numeric fields hold what could be computed, 0 elsewhere.
    ``sustained_flops_per_chip`` is ``peak * mfu * scaling_efficiency`` at ``chips``;
    ``activation_bytes`` is one replica's activation memory, 0 when the card lacks
    ``layers`` or ``hidden`` (activations skipped).
    """

    feasible: bool
    reason: str
    flops: float
    sustained_flops_per_chip: float
    mfu: float
    chips_for_deadline: int
    chips_for_memory: int
    chips: int
    run_hours: float
    scaling_efficiency: float = 1.0
    activation_bytes: float = 0.0

    def to_dict(self) -> dict:
        """Plain dict of all fields, for JSON and tables."""
        return asdict(self)


def _ceil(x: float) -> int:
    """Ceiling, at least 1, that tolerates float error on exact integers (10 + 1e-12 -> 10)."""
    return max(1, math.ceil(x - _EPS))


def scaling_alpha(stack: str) -> float:
    """Slope of the efficiency loss per doubling beyond 512 chips, fitted to the stack's
    published point; stacks without one use the cuda slope (an estimate)."""
    chips, eff = SCALING_POINTS.get(stack, SCALING_POINTS["cuda"])
    return (1 - eff) / math.log2(chips / SCALING_BASE_CHIPS)


def scaling_efficiency(chips: int, stack: str) -> float:
    """Per-chip throughput at ``chips`` relative to 512 chips, floored at 0.3."""
    if chips < 1:
        raise ValueError("chips must be >= 1")
    if chips <= SCALING_BASE_CHIPS:
        return 1.0
    eff = 1 - scaling_alpha(stack) * math.log2(chips / SCALING_BASE_CHIPS)
    return max(SCALING_EFFICIENCY_FLOOR, eff)


def activation_bytes(
    card: ModelCard,
    *,
    seq_len: int = TRAINING_SEQ_LEN,
    micro_batch: int = TRAINING_MICRO_BATCH,
) -> float:
    """Activation memory of one micro-batch through all layers, selective recompute:
    ``layers * 34 * seq_len * micro_batch * hidden`` bytes; 0 without layers or hidden."""
    if card.layers is None or card.hidden is None:
        return 0.0
    return card.layers * ACTIVATION_BYTES_FACTOR * seq_len * micro_batch * card.hidden


def training_perf(
    card: ModelCard,
    acc: Accelerator,
    *,
    tokens_b: float,
    deadline_days: float,
    chips_per_instance: int = 1,
    flops: float | None = None,
    mfu: float | None = None,
    hbm_utilisation: float = HBM_UTILISATION,
    seq_len: int = TRAINING_SEQ_LEN,
    micro_batch: int = TRAINING_MICRO_BATCH,
) -> TrainingPerf:
    """Chips needed to train ``card`` on ``tokens_b`` billion tokens within the deadline.

    Raises ``ValueError`` for impossible arguments; an accelerator without published
    TFLOPS gives an infeasible result with a "spec:" reason.
    """
    if tokens_b <= 0 and flops is None:
        raise ValueError("tokens_b must be > 0 (or give flops)")
    if flops is not None and flops <= 0:
        raise ValueError("flops must be > 0")
    if deadline_days <= 0:
        raise ValueError("deadline_days must be > 0")
    if chips_per_instance < 1:
        raise ValueError("chips_per_instance must be >= 1")
    if mfu is not None and not 0 < mfu <= 1:
        raise ValueError("mfu must be in (0, 1]")
    if not 0 < hbm_utilisation <= 1:
        raise ValueError("hbm_utilisation must be in (0, 1]")
    if seq_len < 1 or micro_batch < 1:
        raise ValueError("seq_len and micro_batch must be >= 1")

    total = flops if flops is not None else 6 * card.active_b * 1e9 * tokens_b * 1e9
    use_mfu = mfu if mfu is not None else MFU_BY_STACK[acc.stack]
    act = activation_bytes(card, seq_len=seq_len, micro_batch=micro_batch)
    chips_for_memory = _ceil(
        (card.params_b * 1e9 * TRAINING_BYTES_PER_PARAM + act) / (acc.hbm_gb * 1e9 * hbm_utilisation)
    )
    peak_tflops = acc.peak_tflops("fp8" if card.dtype == "fp8" else "bf16")
    if peak_tflops is None:
        return TrainingPerf(
            feasible=False,
            reason="spec: accelerator has no published TFLOPS",
            flops=total,
            sustained_flops_per_chip=0.0,
            mfu=use_mfu,
            chips_for_deadline=0,
            chips_for_memory=chips_for_memory,
            chips=0,
            run_hours=0.0,
            activation_bytes=act,
        )
    base = peak_tflops * 1e12 * use_mfu
    chip_seconds = total / (deadline_days * 86400)
    # The default MFUs were measured at MFU_REFERENCE_CHIPS, so they already carry the
    # scaling loss up to that size: apply only the loss beyond it (never a gain below it).
    # A user-given mfu is read as measured at <= 512 chips and gets the whole loss.
    ref_chips = MFU_REFERENCE_CHIPS.get(acc.stack, 1)
    reference = 1.0 if mfu is not None else scaling_efficiency(ref_chips, acc.stack)

    def eff_at(n: int) -> float:
        return min(1.0, scaling_efficiency(n, acc.stack) / reference)

    def needed(n: int) -> tuple[int, int]:
        """(deadline chips, whole-instance chips) if per-chip speed is that at n chips."""
        deadline = _ceil(chip_seconds / (base * eff_at(n)))
        whole = _ceil(max(deadline, chips_for_memory) / chips_per_instance) * chips_per_instance
        return deadline, whole

    chips = needed(1)[1]  # loss-free count: eff(1) = 1
    for _ in range(_MAX_ITERATIONS):
        nxt = needed(chips)[1]
        if nxt <= chips:
            break
        chips = nxt
    else:  # not settled: size for the floor efficiency, a lower bound on eff(n)
        floor = _ceil(chip_seconds / (base * SCALING_EFFICIENCY_FLOOR))
        chips = max(chips, _ceil(max(floor, chips_for_memory) / chips_per_instance) * chips_per_instance)
    eff = eff_at(chips)
    sustained = base * eff
    return TrainingPerf(
        feasible=True,
        reason="",
        flops=total,
        sustained_flops_per_chip=sustained,
        mfu=use_mfu,
        chips_for_deadline=needed(chips)[0],
        chips_for_memory=chips_for_memory,
        chips=chips,
        run_hours=total / (chips * sustained * 3600),
        scaling_efficiency=eff,
        activation_bytes=act,
    )
