"""What the inference model derives before it picks a layout, checked once per workload and chip.

Part of the inference model (``polyfleet.perf.inference``).  ``prepare_inference`` checks
``inference_perf``'s arguments (``ValueError`` for what no workload can have), resolves
the defaults (per-stack fixed costs, per-chip efficiencies, the precision's scale) and
derives the compute precision's derated peak and the memory a replica must hold; a card
without KV data or a chip without the precision gives the infeasible result every
layout would.  Why apart from ``inference_perf``: the configuration search
(``polyfleet.perf.configs``) evaluates many layouts of one workload on one chip
(``polyfleet.perf.inference.inference_at``) and derives all of this once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf import defaults
from polyfleet.perf.attention import attention_rate_scale
from polyfleet.perf.defaults import BATCHING, HBM_UTILISATION, INTERNODE_GBPS
from polyfleet.perf.layout import Memory
from polyfleet.perf.moe import moe_split
from polyfleet.perf.precision import PrecisionError, compute_peak
from polyfleet.perf.result import InferencePerf
from polyfleet.perf.result import infeasible as _infeasible


def _check_arguments(
    *,
    input_tokens: int,
    output_tokens: int,
    tpot_ms: float | None,
    ttft_ms: float | None,
    positive: dict[str, int | None],
    min_batch: int,
    expert_parallel: int,
    internode_gbps: float,
    batching: str,
    percentile: float | None,
    prefix_cache_hit: float,
) -> None:
    """Raise ``ValueError`` for an argument no workload can have (why: a caller's bug, not data)."""
    if input_tokens < 0 or output_tokens < 1:
        raise ValueError("need input_tokens >= 0 and output_tokens >= 1")
    if tpot_ms is not None and tpot_ms <= 0:
        raise ValueError("tpot_ms must be > 0")
    if ttft_ms is not None and ttft_ms <= 0:
        raise ValueError("ttft_ms must be > 0")
    for name, value in positive.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1")
    if min_batch < 1 or expert_parallel < 1:
        raise ValueError("min_batch and expert_parallel must be >= 1")
    if internode_gbps <= 0:
        raise ValueError("internode_gbps must be > 0")
    if batching not in ("serial", "chunked"):
        raise ValueError('batching must be "serial" or "chunked"')
    if percentile is not None and not 0 < percentile < 1:
        raise ValueError("percentile must be in (0, 1)")
    if not 0 <= prefix_cache_hit < 1:
        raise ValueError("prefix_cache_hit must be in [0, 1)")


def _overheads(acc: Accelerator, per_layer_s: float | None, per_step_s: float | None) -> tuple[float, float]:
    """Per-layer and per-step fixed costs: the caller's, else the stack's defaults."""
    if per_layer_s is None:
        per_layer_s = defaults.STEP_OVERHEAD_S_PER_LAYER.get(acc.stack, 0.0)
    if per_step_s is None:
        per_step_s = defaults.STEP_OVERHEAD_S_PER_STEP.get(acc.stack, 0.0)
    if per_layer_s < 0 or per_step_s < 0:
        raise ValueError("step_overhead_s_per_layer and step_overhead_s must be >= 0")
    return per_layer_s, per_step_s


def _efficiencies(
    acc: Accelerator,
    compute_efficiency: float | None,
    memory_efficiency: float | None,
    hbm_utilisation: float,
) -> tuple[float, float, bool]:
    """(compute, memory) efficiency: the caller's, else the chip's defaults; and whether the
    compute one is a default (only defaults get the precision scale: a caller's value,
    e.g. a calibration, already is the precision's)."""
    default_eff = defaults.efficiency_for(acc.id)
    scale_compute = compute_efficiency is None
    compute_efficiency = default_eff[0] if compute_efficiency is None else compute_efficiency
    memory_efficiency = default_eff[1] if memory_efficiency is None else memory_efficiency
    for name, value in (
        ("hbm_utilisation", hbm_utilisation),
        ("memory_efficiency", memory_efficiency),
        ("compute_efficiency", compute_efficiency),
    ):
        if not 0 < value <= 1:
            raise ValueError(f"{name} must be in (0, 1]")
    return compute_efficiency, memory_efficiency, scale_compute


@dataclass(frozen=True)
class Prepared:
    """What ``inference_perf`` derives before it picks a layout: checked arguments, the
    compute precision and its derated peak, efficiencies, fixed costs and the memory a
    replica must hold.  Why apart: a configuration search evaluates many layouts of one
    workload on one chip (``polyfleet.perf.configs``) and derives these once
    (``prepare_inference``, then ``inference_at`` per layout)."""

    card: ModelCard
    acc: Accelerator
    input_tokens: int
    output_tokens: int
    tpot_ms: float | None
    ttft_ms: float | None
    max_batch: int | None
    batch: int | None
    percentile: float | None
    batching: str
    internode_gbps: float
    per_layer_s: float
    per_step_s: float
    memory_efficiency: float
    compute_efficiency: float
    dtype: str
    precision_note: str
    peak_flops: float
    attention_scale: float
    memory: Memory
    live_in: float
    moe: bool
    live_out: float = 0.0
    """Mean output tokens a request in flight holds: ``n*(1 + cv^2)/2`` (``polyfleet.perf.serving``)."""
    input_cv: float = 1.0
    """Coefficient of variation of prompt lengths: the prefill lane's service-time spread."""

    def tags(self) -> dict[str, Any]:
        """The result fields every layout shares (a fresh dict: layouts add theirs)."""
        return {"dtype": self.dtype, "precision_note": self.precision_note, "percentile": self.percentile}


def _prepare(
    card: ModelCard,
    acc: Accelerator,
    *,
    input_tokens: int,
    output_tokens: int,
    tpot_ms: float | None,
    ttft_ms: float | None,
    max_batch: int | None,
    hbm_utilisation: float,
    memory_efficiency: float | None,
    compute_efficiency: float | None,
    internode_gbps: float,
    batching: str,
    step_overhead_s_per_layer: float | None,
    step_overhead_s: float | None,
    activation_dtype: str | None,
    batch: int | None,
    percentile: float | None,
    prefix_cache_hit: float,
    output_tokens_cv: float = 0.0,
    input_tokens_cv: float = 1.0,
) -> Prepared | InferencePerf:
    """``Prepared`` from arguments ``_check_arguments`` accepted, or the infeasible result
    every layout would give (the card lacks KV data, the chip the precision)."""
    per_layer_s, per_step_s = _overheads(acc, step_overhead_s_per_layer, step_overhead_s)
    compute_efficiency, memory_efficiency, scale_compute = _efficiencies(
        acc, compute_efficiency, memory_efficiency, hbm_utilisation
    )
    kv = card.kv_bytes_per_token
    if kv is None:
        return _infeasible("spec: model card lacks layers/kv_heads/head_dim")
    try:
        peak_info = compute_peak(acc, card.dtype, activation_dtype)
    except PrecisionError as exc:
        return _infeasible(f"spec: {exc}")
    if batch is not None:
        percentile = None  # a fixed batch is the idealised estimate, no queueing
    if scale_compute:
        compute_efficiency *= defaults.PRECISION_COMPUTE_SCALE.get(peak_info.dtype, 1.0)
    live_in = input_tokens * (1 - prefix_cache_hit)  # per-request prompt KV (prefix stored once)
    if output_tokens_cv < 0 or input_tokens_cv < 0:
        raise ValueError("output_tokens_cv and input_tokens_cv must be >= 0")
    return Prepared(
        card=card,
        acc=acc,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tpot_ms=tpot_ms,
        ttft_ms=ttft_ms,
        max_batch=max_batch,
        batch=batch,
        percentile=percentile,
        batching=batching,
        internode_gbps=internode_gbps,
        per_layer_s=per_layer_s,
        per_step_s=per_step_s,
        memory_efficiency=memory_efficiency,
        compute_efficiency=compute_efficiency,
        dtype=peak_info.dtype,
        precision_note=peak_info.note,
        peak_flops=peak_info.tflops * 1e12 * defaults.clock_derate(acc.id),
        attention_scale=attention_rate_scale(acc, card, peak_info.dtype),
        memory=Memory(
            usable=acc.hbm_gb * 1e9 * hbm_utilisation,
            weights=card.weight_bytes,
            shared_kv=input_tokens * prefix_cache_hit * kv,
            ctx_full=live_in + output_tokens,
            kv=kv,
        ),
        live_in=live_in,
        moe=moe_split(card) is not None,
        live_out=output_tokens * (1 + output_tokens_cv**2) / 2,
        input_cv=input_tokens_cv,
    )


def prepare_inference(
    card: ModelCard,
    acc: Accelerator,
    *,
    input_tokens: int,
    output_tokens: int,
    tpot_ms: float | None = None,
    ttft_ms: float | None = None,
    max_chips: int | None = None,
    chips_per_node: int | None = None,
    min_batch: int = 1,
    max_batch: int | None = None,
    hbm_utilisation: float = HBM_UTILISATION,
    memory_efficiency: float | None = None,
    compute_efficiency: float | None = None,
    internode_gbps: float = INTERNODE_GBPS,
    batching: str = BATCHING,
    step_overhead_s_per_layer: float | None = None,
    step_overhead_s: float | None = None,
    activation_dtype: str | None = None,
    batch: int | None = None,
    percentile: float | None = None,
    prefix_cache_hit: float = 0.0,
    output_tokens_cv: float = 0.0,
    input_tokens_cv: float = 1.0,
) -> Prepared | InferencePerf:
    """``inference_perf``'s arguments without the layout, checked and derived once.

    ``inference_at(prepare_inference(card, acc, **kw), t, p, e)`` equals
    ``inference_perf(card, acc, tensor_parallel=t, pipeline_stages=p, expert_parallel=e,
    **kw)`` (an ``InferencePerf`` here is the infeasible answer of every layout).  Raises
    ``ValueError`` as ``inference_perf`` does.
    """
    _check_arguments(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tpot_ms=tpot_ms,
        ttft_ms=ttft_ms,
        positive={
            "max_chips": max_chips,
            "chips_per_node": chips_per_node,
            "max_batch": max_batch,
            "batch": batch,
        },
        min_batch=min_batch,
        expert_parallel=1,
        internode_gbps=internode_gbps,
        batching=batching,
        percentile=percentile,
        prefix_cache_hit=prefix_cache_hit,
    )
    return _prepare(
        card,
        acc,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tpot_ms=tpot_ms,
        ttft_ms=ttft_ms,
        max_batch=max_batch,
        hbm_utilisation=hbm_utilisation,
        memory_efficiency=memory_efficiency,
        compute_efficiency=compute_efficiency,
        internode_gbps=internode_gbps,
        batching=batching,
        step_overhead_s_per_layer=step_overhead_s_per_layer,
        step_overhead_s=step_overhead_s,
        activation_dtype=activation_dtype,
        batch=batch,
        percentile=percentile,
        prefix_cache_hit=prefix_cache_hit,
        output_tokens_cv=output_tokens_cv,
        input_tokens_cv=input_tokens_cv,
    )
