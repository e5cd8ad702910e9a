"""Inference performance model v1: chips per replica, batch, latency and throughput.

A replica is ``t`` chips in one tensor-parallel group; weights and KV cache are split
evenly over them and bandwidth and FLOP/s add up.  Tensor-parallel communication is
charged as two ring all-reduces of the activations per layer.

Inputs (SI units)::

    W      = card.weight_bytes                      bytes of weights
    kv     = card.kv_bytes_per_token                bytes of KV cache per context token
    A      = card.active_b * 1e9                    parameters touched per token
    L, H   = card.layers, card.hidden               layers, hidden size
    peak   = acc.peak_tflops(card.dtype) * 1e12     FLOP/s
    BW     = acc.hbm_tbps * 1e12                    bytes/s
    HBM    = acc.hbm_gb * 1e9                       bytes
    link   = acc.scaleup_gbps / 2 * 1e9             bytes/s one way (the figure is bidirectional)
    lat    = ALLREDUCE_LATENCY_S                    fixed cost of one all-reduce
    u, me, ce = hbm_utilisation, memory_efficiency, compute_efficiency

    ctx_full = input_tokens + output_tokens         context at the end (memory sizing)
    ctx_mean = input_tokens + output_tokens / 2     mean context during decode (step time)

Chips per replica: the smallest power of two ``t`` in 1, 2, 4, ..., MAX_TENSOR_PARALLEL
(and <= max_chips) with ``t*HBM*u >= W + min_batch*ctx_full*kv`` (``min_batch`` is 1
unless the caller asks for KV room for more requests).

Tensor-parallel all-reduce of the activations of ``n`` tokens (bf16, 2 bytes each),
two per layer, a ring moving ``2(t-1)/t`` of the data::

    comm(n) = 2*L*(2*(t-1)/t * n*H*2 / link + lat)  when t > 1
    comm(n) = 0                                     when t == 1, or the card lacks
                                                    ``hidden`` / the chip ``scaleup_gbps``

Decode step of a batch of ``b`` requests, seconds (memory, compute and communication
do not overlap)::

    mem(b)  = (W + b*ctx_mean*kv) / (t*BW*me)       read weights once, each request's KV
    comp(b) = 2*A*b / (t*peak*ce)                   2 FLOP per active parameter per token
    step(b) = mem(b) + comp(b) + comm(b)  =  s0 + s1*b   with
    s0      = W / (t*BW*me) + comm(0)
    s1      = ctx_mean*kv / (t*BW*me) + 2*A / (t*peak*ce) + (comm(1) - comm(0))

Batch::

    b_mem   = floor((t*HBM*u - W) / (ctx_full*kv))
    b_tpot  = floor((T - s0) / s1)                  largest b with step(b) <= T,
              where T = tpot_ms/1000 (no cap when tpot_ms is None)
    max_batch = min(b_mem, b_tpot)                  < 1 -> infeasible ("slo: tpot ...")

Prefill (requests' prompts are batched, so the weights are not re-read per request and
prefill is compute-bound; not overlapped with decode in v1)::

    prefill = 2*A*input_tokens / (t*peak*ce) + comm(input_tokens)
    ttft_ms = prefill*1000                          > ttft target -> infeasible ("slo: ttft")

Throughput::

    per_request_s = prefill + output_tokens*step(b)/b
    replica_requests_per_s = 1/per_request_s
    output_tokens_per_s_per_chip = replica_requests_per_s*output_tokens/t
    bound = "memory" if mem(b) >= comp(b) else "compute"
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf import defaults
from polyfleet.perf.defaults import (
    ALLREDUCE_LATENCY_S,
    COMPUTE_EFFICIENCY,
    HBM_UTILISATION,
    MAX_TENSOR_PARALLEL,
    MEMORY_EFFICIENCY,
)

_EPS = 1e-9
"""Slack added before ``floor`` so a batch that fits exactly is not lost to rounding."""


@dataclass(frozen=True)
class InferencePerf:
    """Result of the inference model for one (model card, accelerator, workload).

    ``reason`` is "" when feasible, else a sentence starting with its category:
    "memory:", "slo: tpot", "slo: ttft" or "spec:".  When infeasible the numeric fields
    hold the best values computed (0 where unknown) and ``bound`` may be "".
    """

    feasible: bool
    reason: str
    chips_per_replica: int
    max_batch: int
    tpot_ms: float
    ttft_ms: float
    replica_requests_per_s: float
    output_tokens_per_s_per_chip: float
    bound: str

    def to_dict(self) -> dict:
        """Plain dict of all fields, for JSON and tables."""
        return asdict(self)


def _infeasible(reason: str, **fields: float | int | str) -> InferencePerf:
    """An infeasible result with zeros for every field not given."""
    base: dict = {
        "chips_per_replica": 0,
        "max_batch": 0,
        "tpot_ms": 0.0,
        "ttft_ms": 0.0,
        "replica_requests_per_s": 0.0,
        "output_tokens_per_s_per_chip": 0.0,
        "bound": "",
    }
    base.update(fields)
    return InferencePerf(feasible=False, reason=reason, **base)


def _floor(x: float) -> int:
    """Floor that tolerates float error on exact integers (10 - 1e-12 -> 10)."""
    return math.floor(x + _EPS)


def inference_perf(
    card: ModelCard,
    acc: Accelerator,
    *,
    input_tokens: int,
    output_tokens: int,
    tpot_ms: float | None = None,
    ttft_ms: float | None = None,
    max_chips: int | None = None,
    min_batch: int = 1,
    hbm_utilisation: float = HBM_UTILISATION,
    memory_efficiency: float = MEMORY_EFFICIENCY,
    compute_efficiency: float = COMPUTE_EFFICIENCY,
) -> InferencePerf:
    """Size one inference replica and estimate its latency and throughput.

    See the module docstring for the formulas.  Raises ``ValueError`` for arguments no
    workload can have (negative tokens, non-positive targets); data the catalog lacks
    gives an infeasible result with a "spec:" reason instead, so a plan can skip it.
    """
    if input_tokens < 0 or output_tokens < 1:
        raise ValueError("need input_tokens >= 0 and output_tokens >= 1")
    if tpot_ms is not None and tpot_ms <= 0:
        raise ValueError("tpot_ms must be > 0")
    if ttft_ms is not None and ttft_ms <= 0:
        raise ValueError("ttft_ms must be > 0")
    if max_chips is not None and max_chips < 1:
        raise ValueError("max_chips must be >= 1")
    if min_batch < 1:
        raise ValueError("min_batch must be >= 1")
    for name, value in (
        ("hbm_utilisation", hbm_utilisation),
        ("memory_efficiency", memory_efficiency),
        ("compute_efficiency", compute_efficiency),
    ):
        if not 0 < value <= 1:
            raise ValueError(f"{name} must be in (0, 1]")

    kv = card.kv_bytes_per_token
    if kv is None:
        return _infeasible("spec: model card lacks layers/kv_heads/head_dim")
    peak_tflops = acc.peak_tflops(card.dtype)
    if peak_tflops is None:
        return _infeasible("spec: accelerator has no published TFLOPS")

    weights = card.weight_bytes
    active = card.active_b * 1e9
    peak = peak_tflops * 1e12
    bw = acc.hbm_tbps * 1e12
    usable = acc.hbm_gb * 1e9 * hbm_utilisation
    ctx_full = input_tokens + output_tokens
    ctx_mean = input_tokens + output_tokens / 2

    # Tensor-parallel degree: smallest power of two whose memory holds weights + KV.
    limit = MAX_TENSOR_PARALLEL if max_chips is None else min(MAX_TENSOR_PARALLEL, max_chips)
    need = weights + min_batch * ctx_full * kv
    t = 1
    while t * usable < need:
        if t * 2 > limit:
            largest = 1 << (limit.bit_length() - 1)
            return _infeasible(
                f"memory: weights + KV for {min_batch} request(s) need {need / 1e9:.1f} GB, "
                f"at most {largest * usable / 1e9:.1f} GB usable on {largest} chip(s)",
                bound="memory",
            )
        t *= 2

    mem_rate = t * bw * memory_efficiency  # bytes/s actually streamed
    comp_rate = t * peak * compute_efficiency  # FLOP/s actually sustained

    # Tensor-parallel all-reduce: comm(n) = c0 + c1*n (0 without the data it needs).
    c0 = c1 = 0.0
    if t > 1 and card.hidden is not None and card.layers is not None and acc.scaleup_gbps:
        link = acc.scaleup_gbps / 2 * 1e9  # bytes/s in one direction
        c0 = 2 * card.layers * ALLREDUCE_LATENCY_S
        c1 = 2 * card.layers * (2 * (t - 1) / t) * card.hidden * 2 / link

    def mem(b: int) -> float:
        return (weights + b * ctx_mean * kv) / mem_rate

    def comp(b: int) -> float:
        return 2 * active * b / comp_rate

    def comm(n: float) -> float:
        return c0 + c1 * n

    def step(b: int) -> float:
        return mem(b) + comp(b) + comm(b)

    b_mem = _floor((t * usable - weights) / (ctx_full * kv))
    b_tpot: float = math.inf
    if tpot_ms is not None:
        target = tpot_ms / 1000
        s0 = weights / mem_rate + c0
        s1 = ctx_mean * kv / mem_rate + 2 * active / comp_rate + c1
        b_tpot = _floor((target - s0) / s1)
    prefill = 2 * active * input_tokens / comp_rate + comm(input_tokens)

    if b_tpot < 1:
        return _infeasible(
            f"slo: tpot {tpot_ms:g} ms unreachable, one-request step is {step(1) * 1000:.1f} ms",
            chips_per_replica=t,
            tpot_ms=step(1) * 1000,
            ttft_ms=prefill * 1000,
            bound="memory" if mem(1) >= comp(1) else "compute",
        )
    batch = int(min(b_mem, b_tpot))

    per_request = prefill + output_tokens * step(batch) / batch
    requests_per_s = 1 / per_request
    reason = ""
    if ttft_ms is not None and prefill * 1000 > ttft_ms:
        reason = f"slo: ttft {prefill * 1000:.1f} ms exceeds target {ttft_ms:g} ms"
    return InferencePerf(
        feasible=not reason,
        reason=reason,
        chips_per_replica=t,
        max_batch=batch,
        tpot_ms=step(batch) * 1000,
        ttft_ms=prefill * 1000,
        replica_requests_per_s=requests_per_s,
        output_tokens_per_s_per_chip=requests_per_s * output_tokens / t,
        bound="memory" if mem(batch) >= comp(batch) else "compute",
    )


def sized_inference_perf(card: ModelCard, acc: Accelerator, **kwargs: Any) -> InferencePerf:
    """``inference_perf`` with the replica sized for ``MIN_BATCH`` requests, else for one.

    This is what the planner and ``polyfleet perf`` use: it picks a tensor-parallel
    degree that leaves room for a working batch when the chips allow it.
    """
    perf = inference_perf(card, acc, min_batch=defaults.MIN_BATCH, **kwargs)
    if not perf.feasible and perf.reason.startswith("memory"):
        return inference_perf(card, acc, min_batch=1, **kwargs)
    return perf
