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
    link   = acc.scaleup_gbps / 2 * 1e9 * mesh      bytes/s one way (the figure is bidirectional)
    mesh   = min(t-1, K) / K                        with K = acc.scaleup_links (a full-mesh box:
                                                    t chips use t-1 of its K peer links); 1 when
                                                    the fabric is switched (no scaleup_links)
    lat    = ALLREDUCE_LATENCY_S                    fixed cost of one all-reduce
    u, me, ce = hbm_utilisation, memory_efficiency, compute_efficiency
                                                    (``me``/``ce`` default to the accelerator's
                                                    ``defaults.efficiency_for(acc.id)``)

    ctx_full = input_tokens + output_tokens         context at the end (memory sizing)
    ctx_mean = input_tokens + output_tokens / 2     mean context during decode (step time)

Weights read per decode step, ``R(b)``: all of ``W`` for a dense card; for a mixture of
experts, the shared parameters plus the experts ``b`` tokens route to
(``polyfleet.perf.moe``, with the formulas).  Compute still counts the active parameters
only (``2*A`` FLOP per token) and memory capacity still holds all of ``W``.

Chips per replica.  Let ``need = W + m*ctx_full*kv`` with ``m = min_batch`` (1 unless
the caller asks for KV room for more requests).  Tensor parallelism: the smallest power
of two ``t`` in 1, 2, 4, ..., MAX_TENSOR_PARALLEL (and <= max_chips, and <= chips_per_node
when given) with ``t*HBM*u >= need``; then ``p = 1``.  Pipeline parallelism, only when
``chips_per_node`` is given and no such ``t`` exists: ``t`` = the largest power of two
<= chips_per_node (and the caps above) and ``p`` the smallest power of two in
2, 4, ..., MAX_PIPELINE_STAGES with ``t*p <= max_chips`` and
``t*p*HBM*u >= W + max(m, p)*ctx_full*kv`` (room for one request per micro-batch).
chips_per_replica = ``t*p``; each stage holds ``L/p`` layers on ``t`` chips of one node.

Tensor-parallel all-reduce of the activations of ``n`` tokens (bf16, 2 bytes each),
two per layer, a ring moving ``2(t-1)/t`` of the data::

    comm(n) = 2*L*(2*(t-1)/t * n*H*2 / link + lat)  when t > 1
    comm(n) = 0                                     when t == 1, or the card lacks
                                                    ``hidden`` / the chip ``scaleup_gbps``

Pipeline hand-off of the activations of ``n`` tokens between two stages, over the
inter-node network (``xlink = internode_gbps * 1e9`` bytes/s one way per node,
``xlat = INTERNODE_LATENCY_S``)::

    x(n) = n*H*2 / xlink + xlat    when p > 1 (the bytes term is 0 without ``hidden``)
    x(n) = 0                       when p == 1

Decode step of one micro-batch of ``b`` requests through the whole model on ``t`` chips,
seconds (memory, compute and communication do not overlap)::

    mem(b)  = (R(b) + b*ctx_mean*kv) / (t*BW*me)    read weights once, each request's KV
    comp(b) = 2*A*b / (t*peak*ce)                   2 FLOP per active parameter per token
    o       = L * step_overhead_s_per_layer         fixed cost of one pass through the model
                                                    (launches, synchronisation), by stack:
                                                    ``defaults.STEP_OVERHEAD_S_PER_LAYER``
    step(b) = mem(b) + comp(b) + comm(b) + o

Pipeline (``p`` stages, ``p`` micro-batches of ``b`` requests in flight, so every stage
is busy; with ``p = 1`` all of this reduces to the plain tensor-parallel replica).  A
stage runs ``1/p`` of the layers, then hands off to the next (the last stage sends the
sampled tokens back to the first; all ``p`` hand-offs are charged as ``x(b)``)::

    stage(b) = step(b)/p + x(b)                     one pipeline slot
    tpot(b)  = p*stage(b) = step(b) + p*x(b)        one token of one request
    requests in flight  = p*b  (reported as ``max_batch``)
    replica decode rate = p*b / tpot(b) = b / stage(b) tokens/s

For a dense card ``tpot(b) = s0 + s1*b`` with::

    s0 = W / (t*BW*me) + comm(0) + o + p*x(0)
    s1 = ctx_mean*kv / (t*BW*me) + 2*A / (t*peak*ce) + (comm(1) - comm(0)) + p*(x(1) - x(0))

Batch (per micro-batch ``b``; ``max_batch = p*b``)::

    B_mem   = floor((t*p*HBM*u - W) / (ctx_full*kv))   requests the memory holds
    b_mem   = floor(B_mem / p)
    b_tpot  = largest b with tpot(b) <= T, T = tpot_ms/1000 (no cap when tpot_ms is None);
              dense: floor((T - s0) / s1); MoE: found by bisection (tpot grows with b)
    b       = min(b_mem, b_tpot)                    < 1 -> infeasible ("slo: tpot ...")

Prefill (requests' prompts are batched, so the weights are not re-read per request and
prefill is compute-bound; not overlapped with decode in v1; prompts are pipelined like
decode micro-batches)::

    pre     = 2*A*input_tokens / (t*peak*ce) + comm(input_tokens) + o
    ttft_ms = (pre + p*x(input_tokens))*1000        > ttft target -> infeasible ("slo: ttft")

Throughput (replica time per request: its prefill slot plus its share of decode slots)::

    per_request_s = pre/p + x(input_tokens) + output_tokens*stage(b)/b
    replica_requests_per_s = 1/per_request_s
    output_tokens_per_s_per_chip = replica_requests_per_s*output_tokens/(t*p)
    bound = "memory" if mem(b) >= comp(b) else "compute"

With ``p = 1`` these are ``per_request_s = pre + output_tokens*step(b)/b`` and
``ttft = pre``: a dense card without ``chips_per_node`` gives exactly the v1 numbers.

Everything above is ``batching="serial"`` (the default, ``defaults.BATCHING``).

Continuous batching with chunked prefill (``batching="chunked"``).  Steady state at
``b`` requests decoding per micro-batch: each step emits ``b`` tokens, so ``b/output``
requests finish per step and as many arrive; their prompts are chunked into the decode
steps, each step carrying ``P(b) = b*input_tokens/output_tokens`` prompt tokens (the
average; the prompt chunk reads no KV beyond its own context, which is ignored).  With
``n(b) = b + P(b) = b*(1 + input/output)`` tokens per step::

    mem(b)  = (R(n(b)) + b*ctx_mean*kv) / (t*BW*me)   MoE: the prompt tokens route too
    comp(b) = 2*A*n(b) / (t*peak*ce)
    step(b) = mem(b) + comp(b) + comm(n(b)) + o
    tpot(b) = step(b) + p*x(n(b))                     TPOT includes the prefill share
    stage(b) = tpot(b)/p;  per_request_s = output_tokens*stage(b)/b   (no separate prefill)

Dense: ``s1 = ctx_mean*kv/(t*BW*me) + (1 + input/output)*(2*A/(t*peak*ce) + c1 + p*x1)``.

TTFT with chunking.  A prompt of ``input`` tokens is split into chunks of at most
``CHUNK_TOKENS`` (the engine's per-step token budget); one chunk rides in each step and
the first token is sampled at the end of the last chunk's step::

    ttft(b) = ceil(input_tokens / CHUNK_TOKENS) * tpot(b)     (tpot(b) when input = 0)

so TTFT grows with the prompt, and with ``b`` through ``tpot``.  Batch: ``cap =
min(b_mem, b_tpot)`` as above (with the chunked ``tpot``); with a TTFT target ``b`` is the
largest integer in ``[1, cap]`` with ``ttft(b) <= target`` (bisection: ``ttft`` grows with
``b``), infeasible ("slo: ttft ...") when even ``b = 1`` misses it.  Queueing under
Poisson arrivals is added by ``percentile`` (``polyfleet.perf.serving``).

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

import math
from typing import Any

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf import defaults
from polyfleet.perf.defaults import (
    ALLREDUCE_LATENCY_S,
    BATCHING,
    HBM_UTILISATION,
    INTERNODE_GBPS,
    INTERNODE_LATENCY_S,
    MAX_PIPELINE_STAGES,
    MAX_TENSOR_PARALLEL,
)
from polyfleet.perf.moe import expert_imbalance, moe_split, weight_bytes_read
from polyfleet.perf.precision import PrecisionError, compute_peak
from polyfleet.perf.result import InferencePerf
from polyfleet.perf.result import infeasible as _infeasible

_EPS = 1e-9
"""Slack added before ``floor`` so a batch that fits exactly is not lost to rounding."""


def _floor(x: float) -> int:
    """Floor that tolerates float error on exact integers (10 - 1e-12 -> 10)."""
    return math.floor(x + _EPS)


def _pow2_floor(n: int) -> int:
    """Largest power of two <= n (n >= 1)."""
    return 1 << (n.bit_length() - 1)


def _mesh_share(acc: Accelerator, t: int) -> float:
    """Share of the chip's scale-up bandwidth a ``t``-chip group can use.

    On a switched fabric (NVSwitch, TPU ICI: no ``scaleup_links``) any group gets it all.
    In a full-mesh box (MI300X, Gaudi: ``scaleup_links`` point-to-point peer links) a chip
    reaches its ``t - 1`` group peers over one link each and the others sit idle.
    """
    links = acc.scaleup_links
    if not links:
        return 1.0
    return min(t - 1, links) / links


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
    if input_tokens < 0 or output_tokens < 1:
        raise ValueError("need input_tokens >= 0 and output_tokens >= 1")
    if tpot_ms is not None and tpot_ms <= 0:
        raise ValueError("tpot_ms must be > 0")
    if ttft_ms is not None and ttft_ms <= 0:
        raise ValueError("ttft_ms must be > 0")
    for name, value in (
        ("max_chips", max_chips),
        ("chips_per_node", chips_per_node),
        ("max_batch", max_batch),
        ("tensor_parallel", tensor_parallel),
        ("pipeline_stages", pipeline_stages),
        ("batch", batch),
    ):
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
    if step_overhead_s_per_layer is None:
        step_overhead_s_per_layer = defaults.STEP_OVERHEAD_S_PER_LAYER.get(acc.stack, 0.0)
    if step_overhead_s is None:
        step_overhead_s = defaults.STEP_OVERHEAD_S_PER_STEP.get(acc.stack, 0.0)
    if step_overhead_s_per_layer < 0 or step_overhead_s < 0:
        raise ValueError("step_overhead_s_per_layer and step_overhead_s must be >= 0")
    default_eff = defaults.efficiency_for(acc.id)
    scale_compute = compute_efficiency is None  # the precision scale adjusts defaults only
    compute_efficiency = default_eff[0] if compute_efficiency is None else compute_efficiency
    memory_efficiency = default_eff[1] if memory_efficiency is None else memory_efficiency
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
    try:
        peak_info = compute_peak(acc, card.dtype, activation_dtype)
    except PrecisionError as exc:
        return _infeasible(f"spec: {exc}")
    if batch is not None:
        percentile = None  # a fixed batch is the idealised estimate, no queueing
    tags = {"dtype": peak_info.dtype, "precision_note": peak_info.note, "percentile": percentile}
    if scale_compute:
        compute_efficiency *= defaults.PRECISION_COMPUTE_SCALE.get(peak_info.dtype, 1.0)

    weights = card.weight_bytes
    active = card.active_b * 1e9
    peak = peak_info.tflops * 1e12 * defaults.clock_derate(acc.id)
    bw = acc.hbm_tbps * 1e12
    usable = acc.hbm_gb * 1e9 * hbm_utilisation
    live_in = input_tokens * (1 - prefix_cache_hit)  # per-request prompt KV (prefix stored once)
    shared_kv = input_tokens * prefix_cache_hit * kv
    ctx_full = live_in + output_tokens
    ctx_mean = input_tokens + output_tokens / 2  # attention reads the whole context
    moe = moe_split(card) is not None

    # Tensor-parallel degree: smallest power of two whose memory holds weights + KV.
    limit = MAX_TENSOR_PARALLEL
    for cap in (max_chips, chips_per_node):
        if cap is not None:
            limit = min(limit, cap)
    need = weights + shared_kv + min_batch * ctx_full * kv
    t, p = 1, 1
    if tensor_parallel is not None:
        t, p = tensor_parallel, pipeline_stages or 1
        if t * p * usable < weights + shared_kv + p * ctx_full * kv:
            return _infeasible(
                f"memory: weights + KV need {(weights + shared_kv + p * ctx_full * kv) / 1e9:.1f} GB, "
                f"at most {t * p * usable / 1e9:.1f} GB usable on TP{t} x PP{p}",
                bound="memory",
                chips_per_replica=t * p,
                tensor_parallel=t,
                pipeline_stages=p,
                **tags,
            )
    else:
        while t * usable < need:
            if t * 2 > limit:
                break
            t *= 2
    if t * p * usable < need and tensor_parallel is None:
        largest, stages = _pow2_floor(limit), 0
        if chips_per_node is not None:
            # Pipeline stages across nodes, each stage a whole (power-of-two) node group.
            t, q = largest, 2
            while q <= MAX_PIPELINE_STAGES and (max_chips is None or t * q <= max_chips):
                if t * q * usable >= weights + shared_kv + max(min_batch, q) * ctx_full * kv:
                    p = q
                    break
                stages, q = q, q * 2
        if p == 1:
            where = f"{largest} chip(s)"
            if stages:
                largest = t * stages
                where = f"{largest} chip(s) ({stages} pipeline stages of {t})"
            return _infeasible(
                f"memory: weights + KV for {min_batch} request(s) need {need / 1e9:.1f} GB, "
                f"at most {largest * usable / 1e9:.1f} GB usable on {where}",
                bound="memory",
                **tags,
            )

    chips = t * p
    tags.update(tensor_parallel=t, pipeline_stages=p, expert_parallel=expert_parallel if moe else 1)
    mem_rate = t * bw * memory_efficiency  # bytes/s actually streamed, per stage group
    comp_rate = t * peak * compute_efficiency  # FLOP/s actually sustained, per stage group

    # Tensor-parallel all-reduce: comm(n) = c0 + c1*n (0 without the data it needs).
    c0 = c1 = 0.0
    if t > 1 and card.hidden is not None and card.layers is not None and acc.scaleup_gbps:
        link = acc.scaleup_gbps / 2 * 1e9 * _mesh_share(acc, t)  # bytes/s in one direction
        c0 = 2 * card.layers * ALLREDUCE_LATENCY_S
        c1 = 2 * card.layers * (2 * (t - 1) / t) * card.hidden * 2 / link

    # Fixed cost of one pass through the model (per layer) and of one engine step.
    o = (card.layers or 0) * step_overhead_s_per_layer + step_overhead_s

    # Pipeline hand-off between stages: x(n) = x0 + x1*n (0 without pipeline stages).
    x0 = x1 = 0.0
    if p > 1:
        x0 = INTERNODE_LATENCY_S
        if card.hidden is not None:
            x1 = card.hidden * 2 / (internode_gbps * 1e9)

    # Chunked prefill: every step also carries P(b) = b*input/output prompt tokens.
    ratio = live_in / output_tokens if batching == "chunked" else 0.0
    ep = expert_parallel if moe else 1
    expert_scale = defaults.MOE_EXPERT_MEMORY_SCALE

    def tokens(b: float) -> float:
        """Tokens one step of ``b`` decoding requests pushes through the model."""
        return b * (1 + ratio)

    def mem(b: float) -> float:
        if moe:
            n = tokens(b)
            imbalance = expert_imbalance(card, n, ep)
            read = weight_bytes_read(card, n, expert_scale=expert_scale, imbalance=imbalance)
        else:
            read = weights
        return (read + b * ctx_mean * kv) / mem_rate

    def comp(b: float) -> float:
        return 2 * active * tokens(b) / comp_rate

    def comm(n: float) -> float:
        return c0 + c1 * n

    def xfer(n: float) -> float:
        return x0 + x1 * n

    def step(b: float) -> float:
        return mem(b) + comp(b) + comm(tokens(b)) + o

    def tpot(b: float) -> float:
        return step(b) + p * xfer(tokens(b))

    pre = 2 * active * live_in / comp_rate + comm(live_in) + o
    chunks = max(1, math.ceil(live_in / defaults.CHUNK_TOKENS))

    def ttft(b: float) -> float:
        if batching == "serial":
            return pre + p * xfer(input_tokens)
        return tpot(b) * chunks

    def largest(lo: int, hi: int, ok: Any) -> int:
        """Largest b in [lo, hi] with ok(b), given ok(lo) and ok monotone (true, then false)."""
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if ok(mid):
                lo = mid
            else:
                hi = mid - 1
        return lo

    def bound_of(b: float) -> str:
        m, c = mem(b), comp(b)
        if o > m + c:
            return "overhead"
        return "memory" if m >= c else "compute"

    kv_room = chips * usable - weights - shared_kv
    if percentile is not None and batch is None:
        from polyfleet.perf.serving import Replica, planned_load

        replica = Replica(
            tpot_s=tpot,
            prefill_s=pre + p * xfer(input_tokens),
            chunked=batching == "chunked",
            chunks=chunks,
            kv_room_bytes=kv_room,
            kv_bytes_per_request=(live_in + output_tokens / 2) * kv,
            stages=p,
            chips=chips,
            output_tokens=output_tokens,
            input_tokens=round(live_in),
            max_batch=max_batch,
            bound_of=bound_of,
        )
        return planned_load(replica, percentile=percentile, tpot_ms=tpot_ms, ttft_ms=ttft_ms, tags=tags)

    b_mem = _floor(kv_room / (ctx_full * kv)) // p
    b_tpot: float = math.inf
    if batch is not None:
        if batch // p > b_mem or batch < p:
            return _infeasible(
                f"memory: batch {batch} does not fit, the memory holds {b_mem * p} request(s)",
                chips_per_replica=chips,
                bound="memory",
                **tags,
            )
    elif tpot_ms is not None:
        target = tpot_ms / 1000
        if not moe:
            s0 = weights / mem_rate + c0 + o + p * x0
            s1 = ctx_mean * kv / mem_rate + (1 + ratio) * (2 * active / comp_rate + c1 + p * x1)
            b_tpot = _floor((target - s0) / s1)
        elif tpot(1) > target * (1 + _EPS):
            b_tpot = 0
        else:  # tpot grows with b: bisect for the largest b <= b_mem meeting the target
            b_tpot = largest(1, max(b_mem, 1), lambda b: tpot(b) <= target * (1 + _EPS))

    if b_tpot < 1:
        return _infeasible(
            f"slo: tpot {tpot_ms:g} ms unreachable, one-request step is {tpot(1) * 1000:.1f} ms",
            chips_per_replica=chips,
            tpot_ms=tpot(1) * 1000,
            ttft_ms=ttft(1) * 1000,
            bound=bound_of(1),
            **tags,
        )
    cap = b_mem if max_batch is None else min(b_mem, max(1, max_batch // p))
    b = int(batch // p if batch is not None else min(cap, b_tpot))
    why = "capacity" if b == b_mem else "slo: tpot"
    if batch is not None or b < min(b_mem, b_tpot):
        why = "batch"

    reason = ""
    if ttft_ms is not None and batch is None and ttft(b) * 1000 > ttft_ms * (1 + _EPS):
        limit_s = ttft_ms / 1000 * (1 + _EPS)
        if batching == "chunked" and ttft(1) <= limit_s:  # ttft grows with b: the largest b meeting it
            b, why = largest(1, b, lambda x: ttft(x) <= limit_s), "slo: ttft"
        else:
            reason = f"slo: ttft {ttft(b) * 1000:.1f} ms exceeds target {ttft_ms:g} ms"
            if batching == "chunked":
                reason += f"; lowest reachable {ttft(1) * 1000:.1f} ms at batch {p}"

    stage = tpot(b) / p
    if batching == "serial":
        per_request = pre / p + xfer(input_tokens) + output_tokens * stage / b
    else:  # prompts ride in the decode steps: b requests finish every output_tokens steps
        per_request = output_tokens * stage / b
    requests_per_s = 1 / per_request
    return InferencePerf(
        feasible=not reason,
        reason=reason,
        chips_per_replica=chips,
        max_batch=b * p,
        tpot_ms=tpot(b) * 1000,
        ttft_ms=ttft(b) * 1000,
        replica_requests_per_s=requests_per_s,
        output_tokens_per_s_per_chip=requests_per_s * output_tokens / chips,
        bound=bound_of(b),
        limit=why,
        tpot_mean_ms=tpot(b) * 1000,
        ttft_mean_ms=ttft(b) * 1000,
        **tags,
    )
