"""Routing policies: which of a model's available backends takes the next attempt.

Pure: a policy sees candidates (index, weight, price, load) and returns one; it never
touches the network, so it is tested with plain objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class Candidate(Protocol):
    """What a policy may look at."""

    index: int

    @property
    def weight(self) -> float: ...

    @property
    def price(self) -> float: ...

    @property
    def load(self) -> float: ...


class Policy(Protocol):
    """Pick one of ``eligible`` (never empty)."""

    def pick(self, eligible: Sequence[Candidate]) -> Candidate: ...


class Weighted:
    """Smooth weighted round-robin (nginx): exact proportions, evenly interleaved.

    Each pick adds every eligible candidate's weight to its running score, takes the
    highest and subtracts the eligible total from it.  A candidate left out of a pick
    (unhealthy, at a limit) keeps its score, so traffic returns to it when it is back.
    When every eligible weight is zero (only fallbacks left), the first one is taken.
    """

    def __init__(self, size: int):
        self.current = [0.0] * size

    def pick(self, eligible: Sequence[Candidate]) -> Candidate:
        current = self.current
        total = 0.0
        best = eligible[0]
        for cand in eligible:
            current[cand.index] += cand.weight
            total += cand.weight
            if current[cand.index] > current[best.index]:
                best = cand
        current[best.index] -= total
        return best


class LeastCost:
    """The cheapest eligible backend (blended $/Mtok in + out); ties go to the first."""

    def pick(self, eligible: Sequence[Candidate]) -> Candidate:
        return min(eligible, key=lambda c: c.price)


class LeastLoaded:
    """The eligible backend with the fewest requests in flight per unit of concurrency."""

    def pick(self, eligible: Sequence[Candidate]) -> Candidate:
        return min(eligible, key=lambda c: c.load)


def make_policy(name: str, size: int) -> Policy:
    """The policy called ``name`` for a model with ``size`` backends."""
    if name == "weighted":
        return Weighted(size)
    if name == "least-cost":
        return LeastCost()
    if name == "least-loaded":
        return LeastLoaded()
    raise ValueError(f"unknown routing policy {name!r}")
