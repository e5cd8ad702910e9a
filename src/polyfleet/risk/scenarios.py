"""Random scenarios: which provider fails, loses capacity, which chip is late, how prices move.

A scenario is a set of arrays over a ``scenario`` axis (length S), drawn from an explicit
``numpy.random.Generator`` so a seed reproduces it.  Time inside the horizon is not
simulated step by step: every event starts at the beginning of the horizon and lasts a
fraction of it (aligned starts maximise the overlap of events, the conservative reading).
The horizon therefore splits into a few **phases** at the distinct event lengths
(``breakpoints``); in phase k an event is active when its length reaches ``breakpoints[k]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyfleet.risk.assumptions import RiskAssumptions
from polyfleet.risk.fleet import HOURS_PER_MONTH, Fleet

_EPS = 1e-9


@dataclass(frozen=True)
class Scenarios:
    """S scenarios as arrays (P providers, A accelerators, G price groups, K phases).

    ``outage`` and ``delay`` hold the fraction of the horizon the event lasts (0: no event).
    """

    outage: np.ndarray  # (S, P) fraction of the horizon the provider is down
    shock: np.ndarray  # (S, P) fraction of the provider's capacity lost for the whole horizon
    delay: np.ndarray  # (S, A) fraction of the horizon the accelerator's capacity is missing
    price: np.ndarray  # (S, G) price multiplier per (provider, term) group, mean 1
    breakpoints: np.ndarray  # (K,) phase ends as fractions of the horizon, the last is 1

    @property
    def size(self) -> int:
        """Number of scenarios S."""
        return int(self.price.shape[0])

    @property
    def phase_lengths(self) -> np.ndarray:
        """Length of each phase as a fraction of the horizon, shape ``(K,)``; sums to 1."""
        return np.diff(self.breakpoints, prepend=0.0)


def per_horizon(probability_per_month: float, horizon_months: float) -> float:
    """Chance of at least one event in the horizon, events independent month to month."""
    return float(1.0 - (1.0 - probability_per_month) ** horizon_months)


def breakpoints(assumptions: RiskAssumptions, horizon_months: float) -> np.ndarray:
    """Phase ends: the outage length, each whole-month delay length and 1 (fractions, sorted)."""
    horizon_h = horizon_months * HOURS_PER_MONTH
    outage = assumptions.outage_duration_days * 24.0 / horizon_h
    delays = np.arange(1, assumptions.chip_delay_max_months + 1) * HOURS_PER_MONTH / horizon_h
    points = np.minimum(np.concatenate([[outage], delays, [1.0]]), 1.0)
    return np.unique(np.round(points, 12))


def draw_scenarios(
    rng: np.random.Generator, fleet: Fleet, assumptions: RiskAssumptions, size: int
) -> Scenarios:
    """Draw ``size`` independent scenarios for ``fleet``.

    The draws are made in a fixed order (outages, shocks, shock sizes, delays, delay
    months, prices), so one generator state gives one set of scenarios.

    - outage: per provider, Bernoulli(1 - (1 - p_month)^months), lasting
      ``outage_duration_days``;
    - capacity shock: per provider, Bernoulli likewise, losing a Beta(a, b) fraction of
      capacity for the whole horizon;
    - chip delay: per accelerator, Bernoulli(``chip_delay_probability`` or its override),
      missing for 1..``chip_delay_max_months`` whole months (uniform, capped at the horizon);
    - price: per (provider, term) group, lognormal with mean 1 and sigma =
      volatility x sqrt(months), spot and on-demand with their own volatility.
    """
    a = assumptions
    months = fleet.horizon_months
    n_p, n_a, n_g = len(fleet.providers), len(fleet.accelerators), len(fleet.price_groups)
    points = breakpoints(a, months)
    horizon_h = months * HOURS_PER_MONTH

    out_hit = rng.random((size, n_p)) < per_horizon(a.outage_probability_per_month, months)
    outage = out_hit * min(1.0, a.outage_duration_days * 24.0 / horizon_h)

    shock_hit = rng.random((size, n_p)) < per_horizon(a.capacity_shock_probability_per_month, months)
    shock = shock_hit * rng.beta(*a.capacity_shock_fraction_beta, size=(size, n_p))

    p_delay = np.array(
        [
            a.chip_delay_probability_by_accelerator.get(acc, a.chip_delay_probability)
            for acc in fleet.accelerators
        ]
    )
    delay_hit = rng.random((size, n_a)) < p_delay
    delay_months = rng.integers(1, a.chip_delay_max_months + 1, size=(size, n_a))
    delay = delay_hit * np.minimum(1.0, delay_months * HOURS_PER_MONTH / horizon_h)

    sigma = np.array(
        [
            a.spot_price_volatility_per_sqrt_month
            if term == "spot"
            else a.on_demand_price_volatility_per_sqrt_month
            for _, term in fleet.price_groups
        ]
    ) * np.sqrt(months)
    price = np.exp(sigma * rng.standard_normal((size, n_g)) - 0.5 * sigma**2)
    return Scenarios(outage=outage, shock=shock, delay=delay, price=price, breakpoints=points)


def provider_down(fleet: Fleet, assumptions: RiskAssumptions) -> Scenarios:
    """One scenario per provider: that provider down for the whole horizon, nothing else.

    The deterministic N-1 sweep (nominal prices, no shocks or delays): scenario i is
    ``fleet.providers[i]`` failing.
    """
    n_p, n_a, n_g = len(fleet.providers), len(fleet.accelerators), len(fleet.price_groups)
    return Scenarios(
        outage=np.eye(n_p),
        shock=np.zeros((n_p, n_p)),
        delay=np.zeros((n_p, n_a)),
        price=np.ones((n_p, n_g)),
        breakpoints=breakpoints(assumptions, fleet.horizon_months),
    )


def active(lengths: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Whether an event of each length is on in each phase: ``(S, X)`` lengths -> ``(S, K, X)`` booleans."""
    return lengths[:, None, :] >= points[None, :, None] - _EPS
