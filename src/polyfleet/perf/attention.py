"""Attention FLOPs: the compute a token spends on its context, which ``2*A`` does not count.

``2*A`` FLOP per token counts the weight GEMMs.  Attention adds, per new token and per
token of context it attends to, in every attention layer (2 FLOP per multiply-add)::

    gqa / mha   4 * heads * head_dim          scores q.k (head_dim MACs) + output p.v (head_dim)
    mla         4 * heads * kv_latent_dim     absorbed form: scores and output both run over
                                              the shared latent (DeepSeek-V2/V3: 576 = 512 latent
                                              + 64 rope; output over the 512, taken as 576: 6% high)
    hybrid      as gqa, on ``full_attention_layers`` only (linear layers: O(1) per token)

A decoding token attends to its whole context (``ctx_mean`` in the roofline); a prompt
token of a causal prefill to the tokens before it (half the prompt on average, plus any
cached prefix).  For grouped-query attention these FLOPs are small next to the KV bytes
the same kernel reads (about 16 FLOP per byte at fp8 KV): a few percent of a step.
Latent attention (128 query heads over one shared latent) does ~250 FLOP per byte and is
as costly as the weight GEMMs at a few thousand tokens of context: DeepSeek-R1's
reasoning outputs (3,886 tokens on average in MLPerf) spend about as much compute on
attention as on the 37B active parameters.

Attention runs at the KV cache's precision (FlashAttention/FlashMLA read K and V as
stored: bf16, or fp8 where the cache is fp8), not at the weights' (fp4 weights do not
make attention fp4).  The roofline charges everything at the GEMM rate, so attention
FLOPs are converted to GEMM-rate equivalents by ``attention_rate_scale``: the ratio of
the sustained GEMM rate to the sustained attention-precision rate (each precision's
peak times its ``defaults.PRECISION_COMPUTE_SCALE``).  The roofline adds them to the
step's compute (memory, compute and communication do not overlap in the model).
"""

from __future__ import annotations

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf import defaults
from polyfleet.perf.precision import PrecisionError, compute_peak


def attention_flops_per_context_token(card: ModelCard) -> float:
    """FLOPs one new token spends per token of context, over all attention layers (0 when unknown)."""
    heads, layers = card.heads, card.layers
    if heads is None or layers is None:
        return 0.0
    if card.attention == "mla":
        if card.kv_latent_dim is None:
            return 0.0
        return 4.0 * layers * heads * card.kv_latent_dim
    if card.head_dim is None:
        return 0.0
    if card.attention == "hybrid":
        if card.full_attention_layers is None:
            return 0.0
        layers = card.full_attention_layers
    return 4.0 * layers * heads * card.head_dim


def kv_compute_dtype(card: ModelCard) -> str:
    """The precision attention runs at: the KV cache's (fp8 for fp4/int4 weights, as stored)."""
    if card.kv_dtype is not None:
        return card.kv_dtype
    return "fp8" if card.dtype in ("fp4", "int4") else card.dtype


def attention_rate_scale(acc: Accelerator, card: ModelCard, gemm_dtype: str) -> float:
    """Seconds of one attention FLOP in GEMM FLOPs: sustained GEMM rate / sustained attention rate.

    Each rate is the chip's peak at that precision times its ``PRECISION_COMPUTE_SCALE``
    (the clock derate cancels).  1 when attention runs at the GEMM precision, or when the
    chip publishes no peak for it (then nothing better is known).
    """
    scale = defaults.PRECISION_COMPUTE_SCALE
    try:
        gemm = compute_peak(acc, gemm_dtype, gemm_dtype)
        attn = compute_peak(acc, kv_compute_dtype(card))
    except PrecisionError:
        return 1.0
    if attn.dtype == gemm.dtype:
        return 1.0
    return (gemm.tflops * scale.get(gemm.dtype, 1.0)) / (attn.tflops * scale.get(attn.dtype, 1.0))
