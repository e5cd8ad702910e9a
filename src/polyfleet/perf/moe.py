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
``W``.  Experts are assumed spread evenly over the chips (no load imbalance).
"""

from __future__ import annotations

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


def weight_bytes_read(card: ModelCard, batch: float) -> float:
    """Bytes of weights one decode step of ``batch`` tokens reads, ``R(b)``.

    Dense: all of ``card.weight_bytes``.  MoE: the shared parameters plus the expected
    number of distinct experts the batch routes to, ``E*(1 - (1 - k/E)^b)``.
    """
    split = moe_split(card)
    if split is None:
        return card.weight_bytes
    shared, e, n_exp, k = split
    touched = n_exp * (1 - (1 - k / n_exp) ** batch)
    return (shared + e * touched) * BYTES_PER_DTYPE[card.dtype]
