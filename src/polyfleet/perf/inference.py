"""Inference performance model v1: chips per replica, batch, latency and throughput.

A replica is ``t`` chips in one tensor-parallel group, times ``p`` pipeline stages
(``p = 1`` unless the caller passes ``chips_per_node`` and the model does not fit in one
node).  Weights and KV cache are split evenly over the ``t*p`` chips and bandwidth and
FLOP/s add up.  Tensor-parallel communication is charged as two ring all-reduces of the
activations per layer.

Inputs (SI units)::

    W      = card.weight_bytes                      bytes of weights (all of them: capacity)
    kv     = card.kv_bytes_per_token                bytes of KV cache per context token
    A      = card.active_b * 1e9                    parameters touched per token
    L, H   = card.layers, card.hidden               layers, hidden size
    peak   = acc.peak_tflops(card.dtype) * 1e12     FLOP/s
    BW     = acc.hbm_tbps * 1e12                    bytes/s
    HBM    = acc.hbm_gb * 1e9                       bytes
    link   = acc.scaleup_gbps / 2 * 1e9 * mesh * e  bytes/s one way (the figure is bidirectional)
    mesh   = min(t-1, K) / K                        with K = acc.scaleup_links (a full-mesh box:
                                                    t chips use t-1 of its K peer links); 1 when
                                                    the fabric is switched (no scaleup_links)
    e      = LINK_EFFICIENCY[fabric]                measured share of the line rate on a
                                                    point-to-point fabric (PCIe 0.65, NVLink
                                                    bridge 0.855, xGMI 0.75); 1 when switched
    lat    = ALLREDUCE_LATENCY_S                    fixed cost of one all-reduce (PCIe: 24 us,
                                                    ``ALLREDUCE_LATENCY_S_BY_FABRIC``)
    u, me, ce = hbm_utilisation, memory_efficiency, compute_efficiency
                                                    (``me``/``ce`` default to the accelerator's
                                                    ``defaults.efficiency_for(acc.id)``)

    ctx_full = input_tokens + output_tokens         context at the end (the layout: one
                                                    request, or ``min_batch``, must fit)
    ctx_mean = input_tokens + output_tokens / 2     mean context during decode (step time,
                                                    and the KV a request in flight holds in
                                                    steady state, which sizes the batch with
                                                    or without SLO targets:
                                                    ``serving.steady_state_capacity``;
                                                    output_tokens*(1 + cv^2)/2 with
                                                    ``output_tokens_cv``: perf/serving.py)

Weights read per decode step, ``R(b)``: all of ``W`` for a dense card; for a mixture of
experts, the shared parameters plus the experts ``b`` tokens route to
(``polyfleet.perf.moe``, with the formulas).  Compute still counts the active parameters
only (``2*A`` FLOP per token) and memory capacity still holds all of ``W``.

The model in steps, one module each (``polyfleet.perf.prepared`` first checks the
arguments and derives what no layout changes: precision, peak, efficiencies, memory):

1. ``polyfleet.perf.layout``: chips per replica, ``t`` tensor-parallel x ``p`` pipeline
   stages, the fewest whose memory holds the weights and the KV of ``min_batch``
   requests (or the caller's forced layout).
2. ``polyfleet.perf.roofline``: the step time ``tpot(b)`` of ``b`` requests per
   micro-batch (memory + compute + all-reduce + hand-off + fixed overhead, no overlap),
   prefill and TTFT, serial or chunked (``batching``).
3. ``polyfleet.perf.sizing``: the batch an idealised always-full replica runs
   (capacity, TPOT and TTFT targets) and its throughput; or, with ``percentile``,
   ``polyfleet.perf.serving``: the Poisson load whose percentile TTFT/TPOT meet the
   targets.
4. The result: ``polyfleet.perf.result.InferencePerf``, with what bound the step and
   what limited the batch.

Precision (``polyfleet.perf.precision``).  ``peak`` is the dense peak of the precision
the GEMMs run at (the card's weight dtype, or ``activation_dtype``); a precision the chip
does not publish is a stated conversion or a "spec:" infeasible result, never another
precision's peak in silence.  ``peak`` is derated on power/clock-limited parts
(``defaults.CLOCK_DERATE``) and ``ce`` scaled by precision
(``defaults.PRECISION_COMPUTE_SCALE``).  ``o`` also carries a fixed per-step cost
(``defaults.STEP_OVERHEAD_S_PER_STEP``).  MoE expert weights are read at
``me * MOE_EXPERT_MEMORY_SCALE`` (grouped GEMMs), times the load imbalance of expert
parallelism when ``expert_parallel > 1`` (``polyfleet.perf.moe``).

Forced configuration: ``tensor_parallel``/``pipeline_stages`` fix ``t``/``p``; ``batch``
fixes ``b`` (no SLO search; infeasible only when memory cannot hold it).  Prefix caching:
``prefix_cache_hit = h`` of every prompt is a cached shared prefix, so ``pre`` uses
``(1-h)*input``, its KV is stored once per replica (``h*input*kv``) and each request
holds ``(1-h)*input`` + its output.
"""

from __future__ import annotations

from typing import Any

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf.defaults import BATCHING, HBM_UTILISATION, INTERNODE_GBPS
from polyfleet.perf.layout import forced_layout, smallest_layout
from polyfleet.perf.layout import mesh_share as _mesh_share  # noqa: F401  (old private name)
from polyfleet.perf.layout import pow2_floor as _pow2_floor  # noqa: F401  (old private name)
from polyfleet.perf.moe import expert_imbalance, moe_split, weight_bytes_read
from polyfleet.perf.precision import PrecisionError, compute_peak
from polyfleet.perf.prepared import Prepared, prepare_inference
from polyfleet.perf.result import InferencePerf
from polyfleet.perf.roofline import build_roofline
from polyfleet.perf.sizing import floor_eps as _floor  # noqa: F401  (old private name)
from polyfleet.perf.sizing import idealised_perf, percentile_perf

__all__ = [
    "InferencePerf",
    "PrecisionError",
    "Prepared",
    "compute_peak",
    "expert_imbalance",
    "inference_at",
    "inference_perf",
    "moe_split",
    "prepare_inference",
    "weight_bytes_read",
]


def _evaluate(prep: Prepared, t: int, p: int, expert_parallel: int, tags: dict[str, Any]) -> InferencePerf:
    """The estimate on ``t`` chips x ``p`` stages (a layout that holds the weights): roofline,
    then the batch (idealised) or the load (at the percentile)."""
    chips = t * p
    tags.update(tensor_parallel=t, pipeline_stages=p, expert_parallel=expert_parallel if prep.moe else 1)
    memory = prep.memory
    roof = build_roofline(
        prep.card,
        prep.acc,
        t=t,
        p=p,
        peak_flops=prep.peak_flops,
        memory_efficiency=prep.memory_efficiency,
        compute_efficiency=prep.compute_efficiency,
        input_tokens=prep.input_tokens,
        output_tokens=prep.output_tokens,
        live_in=prep.live_in,
        live_out=prep.live_out,
        batching=prep.batching,
        internode_gbps=prep.internode_gbps,
        step_overhead_s_per_layer=prep.per_layer_s,
        step_overhead_s=prep.per_step_s,
        expert_parallel=expert_parallel,
        attention_scale=prep.attention_scale,
    )
    kv_room = chips * memory.usable - memory.weights - memory.shared_kv
    if prep.percentile is not None:
        return percentile_perf(
            roof,
            chips=chips,
            kv_room=kv_room,
            output_tokens=prep.output_tokens,
            max_batch=prep.max_batch,
            percentile=prep.percentile,
            input_tokens_cv=prep.input_cv,
            tpot_ms=prep.tpot_ms,
            ttft_ms=prep.ttft_ms,
            tags=tags,
        )
    return idealised_perf(
        roof,
        chips=chips,
        kv_room=kv_room,
        output_tokens=prep.output_tokens,
        tpot_ms=prep.tpot_ms,
        ttft_ms=prep.ttft_ms,
        max_batch=prep.max_batch,
        batch=prep.batch,
        tags=tags,
    )


def inference_at(
    prep: Prepared | InferencePerf, t: int, p: int = 1, expert_parallel: int = 1
) -> InferencePerf:
    """The estimate on the forced layout TP ``t`` x PP ``p`` (x EP ``expert_parallel``) of a
    ``prepare_inference`` result (``t, p, expert_parallel >= 1``)."""
    if isinstance(prep, InferencePerf):
        return prep
    tags = prep.tags()
    layout = forced_layout(prep.memory, t, p, tags)
    if isinstance(layout, InferencePerf):
        return layout
    return _evaluate(prep, t, p, expert_parallel, tags)


def inference_perf(
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
    tensor_parallel: int | None = None,
    pipeline_stages: int | None = None,
    expert_parallel: int = 1,
    batch: int | None = None,
    percentile: float | None = None,
    prefix_cache_hit: float = 0.0,
    output_tokens_cv: float = 0.0,
    input_tokens_cv: float = 1.0,
) -> InferencePerf:
    """Size one inference replica and estimate its latency and throughput.

    See the module docstring for the formulas.  ``chips_per_node`` (the chips of one
    instance) caps the tensor-parallel group and allows pipeline stages across nodes
    when the model does not fit in one.  ``tensor_parallel``/``pipeline_stages``/``batch``
    fix the configuration instead (``batch``: no SLO search).  ``percentile`` (e.g. 0.99)
    meets ``tpot_ms``/``ttft_ms`` at that percentile under Poisson arrivals
    (``polyfleet.perf.serving``) instead of at an idealised full batch.  Raises
    ``ValueError`` for arguments no workload can have (negative tokens, non-positive
    targets); data the catalog lacks gives an infeasible result with a "spec:" reason
    instead, so a plan can skip it.
    """
    for name, value in (("tensor_parallel", tensor_parallel), ("pipeline_stages", pipeline_stages)):
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1")
    if expert_parallel < 1:
        raise ValueError("min_batch and expert_parallel must be >= 1")
    prep = prepare_inference(
        card,
        acc,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tpot_ms=tpot_ms,
        ttft_ms=ttft_ms,
        max_chips=max_chips,
        chips_per_node=chips_per_node,
        min_batch=min_batch,
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
    if isinstance(prep, InferencePerf):
        return prep
    tags = prep.tags()
    if tensor_parallel is not None:
        layout = forced_layout(prep.memory, tensor_parallel, pipeline_stages, tags)
    else:
        layout = smallest_layout(
            prep.memory, min_batch=min_batch, max_chips=max_chips, chips_per_node=chips_per_node, tags=tags
        )
    if isinstance(layout, InferencePerf):
        return layout
    return _evaluate(prep, *layout, expert_parallel, tags)
