"""Weights a mixture-of-experts model reads per decode step (the inference model's ``R(b)``).

A dense card (no ``experts``, or ``experts_per_token`` missing or >= ``experts``) reads
all its weights every step: ``R(b) = W``.  A MoE card with ``E`` experts, ``k`` per
token, ``N = params_b`` total and ``Na = active_params_b`` active parameters (billions)
is split as::

    Na = S + k*e,  N = S + E*e   =>   e = (N - Na)/(E - k)   parameters per expert
                                      S = Na - k*e           shared (non-expert) parameters

(``e`` is the sum over layers of one expert's parameters; shared experts, attention and
embeddings are in ``S``).  Routing ``b`` tokens independently and uniformly, one expert
is untouched by all of them with probability ``(1 - k/E)^b``, so a step reads::

    R(b) = (S + e*E*(1 - (1 - k/E)^b)) * 1e9 * bytes(dtype)

``R(1) = Na`` worth of bytes and ``R(b) -> W`` as ``b`` grows.  Compute still counts the
active parameters only (``2*A`` FLOP per token) and memory capacity still holds all of
``W``.

Expert kernels.  Grouped GEMMs read expert weights at a smaller share of bandwidth than
dense GEMMs (``defaults.MOE_EXPERT_MEMORY_SCALE = s``), so the inference model charges
the expert part as ``e*E*q/s`` bytes at the dense rate (``q = 1 - (1 - k/E)^b``).

Load imbalance.  With tensor-parallel experts every chip holds a slice of every expert:
no imbalance.  With expert parallelism over ``g`` chips (``E/g`` whole experts each) the
step waits for the chip whose experts the batch touches most.  The touched experts on
one chip are approximately ``Binomial(E/g, q)``; the expected maximum over ``g`` chips is
taken as mean + ``sqrt(2 ln g)`` standard deviations (the Gaussian extreme-value rate)::

    imbalance(b, g) = 1 + sqrt(2 ln g) * sqrt((1 - q) / ((E/g) * q))    (1 when g = 1)

capped at ``g`` (one chip cannot hold more than all of the touched experts).
"""

from __future__ import annotations

import math

from polyfleet.catalog.models import BYTES_PER_DTYPE, ModelCard


def moe_split(card: ModelCard) -> tuple[float, float, int, int] | None:
    """``(S, e, E, k)`` in parameters for a mixture-of-experts card, None when dense.

    ``e = (N - Na)/(E - k)`` parameters per expert and ``S = Na - k*e`` shared ones (see the
    module docstring).  A card without both expert counts, with ``k >= E``, without
    ``active_params_b`` or with active >= total is dense.
    """
    n_exp, k = card.experts, card.experts_per_token
    total, active = card.params_b * 1e9, card.active_b * 1e9
    if n_exp is None or k is None or k >= n_exp or active >= total:
        return None
    e = (total - active) / (n_exp - k)
    return max(active - k * e, 0.0), e, n_exp, k


def weight_bytes_read(
    card: ModelCard, batch: float, *, expert_scale: float = 1.0, imbalance: float = 1.0
) -> float:
    """Bytes of weights one decode step of ``batch`` tokens reads, ``R(b)``.

    Dense: all of ``card.weight_bytes``.  MoE: the shared parameters plus the expected
    number of distinct experts the batch routes to, ``E*(1 - (1 - k/E)^b)``; the expert
    part is multiplied by ``imbalance / expert_scale`` (bytes at the dense rate, see the
    module docstring; both 1 give the raw bytes).
    """
    split = moe_split(card)
    if split is None:
        return card.weight_bytes
    shared, e, n_exp, k = split
    touched = n_exp * (1 - (1 - k / n_exp) ** batch)
    return (shared + e * touched * imbalance / expert_scale) * BYTES_PER_DTYPE[card.dtype]


def expert_imbalance(card: ModelCard, batch: float, expert_parallel: int) -> float:
    """Step-time factor of expert load imbalance over ``expert_parallel`` chips (module docstring)."""
    split = moe_split(card)
    if split is None or expert_parallel <= 1:
        return 1.0
    _, _, n_exp, k = split
    q = 1 - (1 - k / n_exp) ** batch
    per_chip = n_exp / expert_parallel
    if q >= 1 or per_chip <= 0:
        return 1.0
    spread = math.sqrt(2 * math.log(expert_parallel)) * math.sqrt((1 - q) / (per_chip * q))
    return min(1 + spread, float(expert_parallel))
