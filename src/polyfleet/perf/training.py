"""Training performance model v1: chips for a deadline, chips for memory, run time.

Formulas (SI units)::

    F         = flops or 6 * card.active_b*1e9 * tokens_b*1e9     (6 FLOP/param/token)
    peak      = acc.peak_tflops("fp8" if card.dtype == "fp8" else "bf16") * 1e12
    mfu       = mfu or MFU_BY_STACK[acc.stack]
    sustained = peak * mfu                                         FLOP/s per chip
    chips_for_deadline = ceil(F / (sustained * deadline_days * 86400))
    chips_for_memory   = ceil(card.params_b*1e9 * TRAINING_BYTES_PER_PARAM
                              / (acc.hbm_gb*1e9 * hbm_utilisation))
    chips     = ceil(max(both) / chips_per_instance) * chips_per_instance
    run_hours = F / (chips * sustained * 3600)

Memory counts weights, gradients and Adam state fully sharded (ZeRO-3 style) and
ignores activations, so it is a lower bound.  Communication is folded into MFU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf.defaults import HBM_UTILISATION, MFU_BY_STACK, TRAINING_BYTES_PER_PARAM

_EPS = 1e-9
"""Slack taken off before ``ceil`` so an exact fit is not rounded up by float error."""


@dataclass(frozen=True)
class TrainingPerf:
    """Result of the training model for one (model card, accelerator, run).

    ``reason`` is "" when feasible, else a sentence starting with "spec:".  When
    infeasible the numeric fields hold what could be computed, 0 elsewhere.
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

    def to_dict(self) -> dict:
        """Plain dict of all fields, for JSON and tables."""
        return asdict(self)


def _ceil(x: float) -> int:
    """Ceiling, at least 1, that tolerates float error on exact integers (10 + 1e-12 -> 10)."""
    return max(1, math.ceil(x - _EPS))


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

    total = flops if flops is not None else 6 * card.active_b * 1e9 * tokens_b * 1e9
    use_mfu = mfu if mfu is not None else MFU_BY_STACK[acc.stack]
    chips_for_memory = _ceil(
        card.params_b * 1e9 * TRAINING_BYTES_PER_PARAM / (acc.hbm_gb * 1e9 * hbm_utilisation)
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
        )
    sustained = peak_tflops * 1e12 * use_mfu
    chips_for_deadline = _ceil(total / (sustained * deadline_days * 86400))
    chips = _ceil(max(chips_for_deadline, chips_for_memory) / chips_per_instance)
    chips *= chips_per_instance
    return TrainingPerf(
        feasible=True,
        reason="",
        flops=total,
        sustained_flops_per_chip=sustained,
        mfu=use_mfu,
        chips_for_deadline=chips_for_deadline,
        chips_for_memory=chips_for_memory,
        chips=chips,
        run_hours=total / (chips * sustained * 3600),
    )
