"""Step time of one inference replica: the roofline of a decode step, prefill and TTFT.

Part of the inference model (``polyfleet.perf.inference``; notation there).  Given the
layout (``t`` chips per stage, ``p`` stages, ``polyfleet.perf.layout``), a ``Roofline``
holds the rates and fixed costs and answers ``tpot(b)``, ``ttft(b)`` and the prefill
time; the batch and the result are chosen from it (``polyfleet.perf.sizing``,
``polyfleet.perf.serving``).

Tensor-parallel all-reduce of the activations of ``n`` tokens (bf16, 2 bytes each),
two per layer, a ring moving ``2(t-1)/t`` of the data::

    comm(n) = 2*L*(2*(t-1)/t * n*H*2 / link + lat)  when t > 1 (link: the achieved one-way
                                                    rate, lat: the fabric's latency; layout)
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
    comp(b) = (2*A + F*ctx_mean)*b / (t*peak*ce)    2 FLOP per active parameter per token, plus
                                                    attention: F FLOP per context token
                                                    (``polyfleet.perf.attention``, GEMM-rate)
    o       = L * step_overhead_s_per_layer         fixed cost of one pass through the model
              + step_overhead_s                     (launches, synchronisation) and of one
                                                    engine step, by stack (``defaults``)
    step(b) = mem(b) + comp(b) + comm(b) + o

Pipeline (``p`` stages, ``p`` micro-batches of ``b`` requests in flight, so every stage
is busy; with ``p = 1`` all of this reduces to the plain tensor-parallel replica).  A
stage runs ``1/p`` of the layers, then hands off to the next (the last stage sends the
sampled tokens back to the first; all ``p`` hand-offs are charged as ``x(b)``)::

    stage(b) = step(b)/p + x(b)                     one pipeline slot
    tpot(b)  = p*stage(b) = step(b) + p*x(b)        one token of one request

For a dense card ``tpot(b) = s0 + s1*b`` with::

    s0 = W / (t*BW*me) + comm(0) + o + p*x(0)
    s1 = ctx_mean*kv / (t*BW*me) + (2*A + F*ctx_mean) / (t*peak*ce) + (comm(1) - comm(0)) + p*(x(1) - x(0))

Prefill (prompts are batched, so the weights are not re-read per request and prefill is
compute-bound; not overlapped with decode; prompts are pipelined like micro-batches)::

    pre     = (2*A + F*input_tokens/2)*input_tokens / (t*peak*ce) + comm(input_tokens) + o
    ttft    = pre + p*x(input_tokens)                               (serial batching)

Continuous batching with chunked prefill (``batching="chunked"``): each step of ``b``
decoding requests also carries ``P(b) = b*input_tokens/output_tokens`` prompt tokens, so
``n(b) = b*(1 + input/output)`` tokens per step::

    mem(b)  = (R(n(b)) + b*ctx_mean*kv) / (t*BW*me)   MoE: the prompt tokens route too
    comp(b) = 2*A*n(b) / (t*peak*ce)
    step(b) = mem(b) + comp(b) + comm(n(b)) + o
    tpot(b) = step(b) + p*x(n(b))                     TPOT includes the prefill share
    ttft(b) = ceil(input_tokens / CHUNK_TOKENS) * tpot(b)     (tpot(b) when input = 0)

Dense chunked: ``s1 = ctx_mean*kv/(t*BW*me) + (1 + input/output)*(2*A/(t*peak*ce) + c1 + p*x1)``.

``bound_of(b)``: "overhead" when ``o`` exceeds memory + compute time, else "memory" if
``mem(b) >= comp(b)``, else "compute".  Every formula is evaluated in the order written
(floating point: the same inputs give the same bits as before the module was split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf import defaults
from polyfleet.perf.attention import attention_flops_per_context_token
from polyfleet.perf.defaults import INTERNODE_LATENCY_S
from polyfleet.perf.layout import allreduce_latency_s, link_gbps
from polyfleet.perf.moe import expert_imbalance, moe_split, weight_bytes_read


@dataclass(frozen=True)
class Roofline:
    """Rates and fixed costs of one replica layout; its methods are the docstring's formulas.

    ``mem_rate`` bytes/s and ``comp_rate`` FLOP/s actually sustained per stage group;
    ``c0 + c1*n`` the all-reduce time and ``x0 + x1*n`` the hand-off time of ``n`` tokens;
    ``o`` the fixed cost of one step; ``one_plus_ratio`` = ``1 + input/output`` with
    chunked prefill (1 when serial); ``live_in`` the prompt tokens not served from a
    cached prefix; ``prefill_s`` is ``pre`` and ``chunks`` the steps a chunked prompt takes.
    """

    card: ModelCard
    stages: int
    weights: float
    kv: float
    two_active: float
    attn_req: float
    ctx_mean: float
    mem_rate: float
    comp_rate: float
    c0: float
    c1: float
    o: float
    x0: float
    x1: float
    one_plus_ratio: float
    chunked: bool
    input_tokens: int
    live_in: float
    moe: bool
    expert_parallel: int
    expert_scale: float
    prefill_s: float
    chunks: int
    live_out: float = 0.0

    @property
    def live_kv_bytes(self) -> float:
        """Bytes of KV one request in flight holds on average in steady state,
        ``(live_in + live_out)*kv``: its uncached prompt plus its mean live output
        (``polyfleet.perf.serving.steady_state_capacity`` sizes both the idealised batch
        and the Poisson admission with it)."""
        return (self.live_in + self.live_out) * self.kv

    def tokens(self, b: float) -> float:
        """Tokens one step of ``b`` decoding requests pushes through the model."""
        return b * self.one_plus_ratio

    def mem(self, b: float) -> float:
        """Seconds reading weights (``R``) and the requests' KV in one step of ``b``."""
        if self.moe:
            n = self.tokens(b)
            imbalance = expert_imbalance(self.card, n, self.expert_parallel)
            read = weight_bytes_read(self.card, n, expert_scale=self.expert_scale, imbalance=imbalance)
        else:
            read = self.weights
        return (read + b * self.ctx_mean * self.kv) / self.mem_rate

    def comp(self, b: float) -> float:
        """Seconds of GEMM and attention compute in one step of ``b`` requests."""
        return (self.two_active * self.tokens(b) + b * self.attn_req) / self.comp_rate

    def comm(self, n: float) -> float:
        """Seconds of tensor-parallel all-reduces for ``n`` tokens."""
        return self.c0 + self.c1 * n

    def xfer(self, n: float) -> float:
        """Seconds of one pipeline hand-off of ``n`` tokens."""
        return self.x0 + self.x1 * n

    def step(self, b: float) -> float:
        """Seconds of one step of ``b`` requests through all layers (no hand-offs)."""
        return self.mem(b) + self.comp(b) + self.comm(self.tokens(b)) + self.o

    def tpot(self, b: float) -> float:
        """Seconds per output token of a request when ``b`` requests decode per micro-batch.

        Dense cards inline ``step`` (same operations in the same order, so the same bits):
        the serving model calls this tens of times per estimate.
        """
        if self.moe:
            return self.step(b) + self.stages * self.xfer(self.tokens(b))
        n = b * self.one_plus_ratio
        return (
            (self.weights + b * self.ctx_mean * self.kv) / self.mem_rate
            + (self.two_active * n + b * self.attn_req) / self.comp_rate
            + (self.c0 + self.c1 * n)
            + self.o
        ) + self.stages * (self.x0 + self.x1 * n)

    def ttft(self, b: float) -> float:
        """Seconds to the first token at a batch of ``b`` (no queueing)."""
        if not self.chunked:
            return self.prefill_s + self.stages * self.xfer(self.input_tokens)
        return self.tpot(b) * self.chunks

    def bound_of(self, b: float) -> str:
        """What dominates one step of ``b``: "overhead", "memory" or "compute"."""
        m, c = self.mem(b), self.comp(b)
        if self.o > m + c:
            return "overhead"
        return "memory" if m >= c else "compute"

    def dense_line(self) -> tuple[float, float]:
        """``(s0, s1)`` with ``tpot(b) = s0 + s1*b`` for a dense card (docstring)."""
        p = self.stages
        s0 = self.weights / self.mem_rate + self.c0 + self.o + p * self.x0
        s1 = self.ctx_mean * self.kv / self.mem_rate + self.attn_req / self.comp_rate
        s1 += self.one_plus_ratio * (self.two_active / self.comp_rate + self.c1 + p * self.x1)
        return s0, s1


def build_roofline(
    card: ModelCard,
    acc: Accelerator,
    *,
    t: int,
    p: int,
    peak_flops: float,
    memory_efficiency: float,
    compute_efficiency: float,
    input_tokens: int,
    output_tokens: int,
    live_in: float,
    batching: str,
    internode_gbps: float,
    step_overhead_s_per_layer: float,
    step_overhead_s: float,
    expert_parallel: int,
    attention_scale: float = 1.0,
    live_out: float | None = None,
) -> Roofline:
    """The ``Roofline`` of ``t`` chips x ``p`` stages of ``acc`` serving ``card``.

    ``peak_flops`` is the derated dense peak of the precision the GEMMs run at
    (``polyfleet.perf.precision``); the efficiencies are already resolved (defaults,
    precision scale, calibration).
    """
    kv = card.kv_bytes_per_token or 0.0
    moe = moe_split(card) is not None
    mem_rate = t * (acc.hbm_tbps * 1e12) * memory_efficiency  # bytes/s actually streamed, per stage group
    comp_rate = t * peak_flops * compute_efficiency  # FLOP/s actually sustained, per stage group

    # Tensor-parallel all-reduce: comm(n) = c0 + c1*n (0 without the data it needs).
    c0 = c1 = 0.0
    if t > 1 and card.hidden is not None and card.layers is not None and acc.scaleup_gbps:
        link = link_gbps(acc, t) / 2 * 1e9  # bytes/s achieved in one direction (H100 NVL/PCIe: pairs)
        c0 = 2 * card.layers * allreduce_latency_s(acc, t)
        c1 = 2 * card.layers * (2 * (t - 1) / t) * card.hidden * 2 / link

    # Pipeline hand-off between stages: x(n) = x0 + x1*n (0 without pipeline stages).
    x0 = x1 = 0.0
    if p > 1:
        x0 = INTERNODE_LATENCY_S
        if card.hidden is not None:
            x1 = card.hidden * 2 / (internode_gbps * 1e9)

    # Chunked prefill: every step also carries P(b) = b*input/output prompt tokens.
    ratio = live_in / output_tokens if batching == "chunked" else 0.0
    two_active = 2 * (card.active_b * 1e9)
    o = (card.layers or 0) * step_overhead_s_per_layer + step_overhead_s
    # Attention FLOPs (polyfleet.perf.attention), in GEMM-rate equivalents: a decoding token
    # attends to ctx_mean tokens; a prompt token to the cached prefix and half the live prompt.
    attn = attention_flops_per_context_token(card) * attention_scale
    prompt_ctx = input_tokens - live_in / 2
    # live_out: mean output tokens of a request in flight, output/2 for equal lengths
    live_out = output_tokens / 2 if live_out is None else live_out
    attn_req = attn * (input_tokens + live_out + ratio * prompt_ctx)
    return Roofline(
        card=card,
        stages=p,
        weights=card.weight_bytes,
        kv=kv,
        two_active=two_active,
        attn_req=attn_req,
        ctx_mean=input_tokens + live_out,  # attention reads the whole context
        mem_rate=mem_rate,
        comp_rate=comp_rate,
        c0=c0,
        c1=c1,
        o=o,
        x0=x0,
        x1=x1,
        one_plus_ratio=1 + ratio,
        chunked=batching == "chunked",
        input_tokens=input_tokens,
        live_in=live_in,
        moe=moe,
        expert_parallel=expert_parallel if moe else 1,
        expert_scale=defaults.MOE_EXPERT_MEMORY_SCALE,
        prefill_s=(two_active + attn * prompt_ctx) * live_in / comp_rate + (c0 + c1 * live_in) + o,
        chunks=max(1, math.ceil(live_in / defaults.CHUNK_TOKENS)),
        live_out=live_out,
    )
