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


class PlanCandidate(Candidate, Protocol):
    """What the plan policy also looks at."""

    @property
    def role(self) -> str | None: ...

    @property
    def planned_rps(self) -> float | None: ...

    @property
    def rate_rps(self) -> float: ...


def _fill(cand: PlanCandidate) -> float:
    """How full a committed backend is: its rate over its planned rate (no plan: empty)."""
    planned = cand.planned_rps
    return cand.rate_rps / planned if planned else 0.0


class FollowPlan:
    """The plan's order: committed below its planned rate, then overflow, then fallback.

    1. **committed** backends (capacity bought for the horizon, paid whether used or not)
       whose rate over the last second is below their planned rate: the least filled first;
    2. **overflow** backends (per-token capacity the plan buys beyond it): the cheapest;
    3. committed backends above their planned rate (the capacity may still take more);
    4. **fallback** backends (what survival relies on when a provider is lost): the cheapest.
    """

    def pick(self, eligible: Sequence[Candidate]) -> Candidate:
        cands: Sequence[PlanCandidate] = eligible  # type: ignore[assignment]
        committed = [c for c in cands if c.role == "committed"]
        below = [c for c in committed if c.planned_rps is None or _fill(c) < 1.0]
        if below:
            return min(below, key=_fill)
        overflow = [c for c in cands if c.role == "overflow"]
        if overflow:
            return min(overflow, key=lambda c: c.price)
        if committed:
            return min(committed, key=_fill)
        return min(cands, key=lambda c: c.price)


def make_policy(name: str, size: int) -> Policy:
    """The policy called ``name`` for a model with ``size`` backends."""
    if name == "weighted":
        return Weighted(size)
    if name == "least-cost":
        return LeastCost()
    if name == "least-loaded":
        return LeastLoaded()
    if name == "plan":
        return FollowPlan()
    raise ValueError(f"unknown routing policy {name!r}")
