"""Scenarios for deals: demand paths, price declines, chip arrivals, outages and shortfalls.

A ``Scenarios`` holds S scenarios as arrays over the months of the horizon; it is drawn
from an explicit ``numpy.random.Generator`` (sampled) or read from the named list.  The
outage and capacity-shock events reuse ``polyfleet risk``'s shock model and its
assumptions (the spec's ``risk:`` section): a provider down at least once in a month with
``outage_probability_per_month`` for ``outage_duration_days``; a capacity shock with
``capacity_shock_probability_per_month`` over the horizon losing a Beta(a, b) share of the
provider's capacity from a uniform month on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from polyfleet.deals.spec import NamedScenario, PriceModel, Sampled
from polyfleet.risk.assumptions import RiskAssumptions
from polyfleet.risk.scenarios import per_horizon

DAYS_PER_MONTH = 30.4


@dataclass
class Scenarios:
    """S scenarios (M months, P providers, G price groups, U uncertain offers)."""

    probability: np.ndarray  # (S,) sums to 1
    demand: np.ndarray  # (S, M) demand multiplier on top of the workloads' own paths
    decline: np.ndarray  # (S, G) list-price decline per year per price group
    arrival: np.ndarray  # (S, U) first usable month of each uncertain offer
    rps_factor: np.ndarray  # (S, P, M) share of a month a provider's replicas serve (outages)
    cap_factor: np.ndarray  # (S, P, M) share of a provider's capacity left (shocks)
    families: dict[str, np.ndarray] = field(default_factory=dict)  # label -> (S,) membership

    @property
    def size(self) -> int:
        return len(self.probability)

    def take(self, index: np.ndarray | list[int]) -> Scenarios:
        """The scenarios at ``index`` (probabilities renormalised)."""
        index = np.asarray(index, int)
        p = self.probability[index]
        return Scenarios(
            p / p.sum(),
            self.demand[index],
            self.decline[index],
            self.arrival[index],
            self.rps_factor[index],
            self.cap_factor[index],
            {k: v[index] for k, v in self.families.items()},
        )

    def mean(self) -> Scenarios:
        """The mean scenario (for the expected-value problem): each array's weighted mean."""
        p = self.probability

        def avg(a: np.ndarray) -> np.ndarray:
            return np.tensordot(p, a, axes=1)[None]

        arrival = np.rint(avg(self.arrival.astype(float))).astype(int)
        return Scenarios(np.ones(1), avg(self.demand), avg(self.decline), arrival,
                         avg(self.rps_factor), avg(self.cap_factor), {})  # fmt: skip

    @staticmethod
    def concat(parts: list[Scenarios]) -> Scenarios:
        """Join chunks (probabilities re-weighted equally per scenario)."""
        n = sum(p.size for p in parts)
        labels = sorted({k for p in parts for k in p.families})
        return Scenarios(
            np.full(n, 1.0 / n),
            np.concatenate([p.demand for p in parts]),
            np.concatenate([p.decline for p in parts]),
            np.concatenate([p.arrival for p in parts]),
            np.concatenate([p.rps_factor for p in parts]),
            np.concatenate([p.cap_factor for p in parts]),
            {k: np.concatenate([p.families.get(k, np.zeros(p.size, bool)) for p in parts]) for k in labels},
        )


@dataclass(frozen=True)
class Axes:
    """What the scenario arrays are indexed by (from the problem)."""

    months: int
    providers: list[str]
    groups: list[str]  # price groups: accelerator ids, then "api"
    uncertain: list[str]  # offer ids whose arrival month is uncertain
    arrival_pmf: list[dict[int, float]]  # per uncertain offer
    fixed_arrival: list[int]  # per uncertain offer: the month used when not sampled
    shock_families: list[str] = field(default_factory=list)  # providers whose shocks get a family


def base_declines(prices: PriceModel, groups: list[str]) -> np.ndarray:
    """(G,) declines per year of each price group."""
    return np.array(
        [
            (prices.api if prices.api is not None else prices.default)
            if g == "api"
            else prices.by_accelerator.get(g, prices.default)
            for g in groups
        ]
    )


def draw(
    rng: np.random.Generator,
    axes: Axes,
    sampled: Sampled,
    prices: PriceModel,
    risk: RiskAssumptions,
    size: int,
) -> Scenarios:
    """``size`` sampled scenarios, drawn in a fixed order (demand, prices, arrivals, shocks)."""
    m, n_p = axes.months, len(axes.providers)
    t = np.arange(m) / 12.0
    mu, vol = sampled.demand.drift_per_year, sampled.demand.volatility_per_year
    steps = rng.standard_normal((size, m)) * vol * np.sqrt(1 / 12)
    walk = np.cumsum(steps, axis=1) - steps[:, :1]  # month 0 is today's demand
    demand = np.exp((mu - 0.5 * vol**2) * t[None] + walk)
    base = base_declines(prices, axes.groups)
    decline = np.clip(base[None] + prices.sd * rng.standard_normal((size, len(base))), 0.0, 0.95)
    arrival = np.zeros((size, len(axes.uncertain)), int)
    for u, pmf in enumerate(axes.arrival_pmf):
        months = np.array(list(pmf), int)
        probs = np.array(list(pmf.values()), float)
        arrival[:, u] = rng.choice(months, size=size, p=probs / probs.sum())
    rps = np.ones((size, n_p, m))
    cap = np.ones((size, n_p, m))
    shock_hit = np.zeros((size, n_p), bool)
    if sampled.shocks:
        out = rng.random((size, n_p, m)) < risk.outage_probability_per_month
        rps -= out * min(1.0, risk.outage_duration_days / DAYS_PER_MONTH)
        shock_hit = rng.random((size, n_p)) < per_horizon(risk.capacity_shock_probability_per_month, m)
        lost = rng.beta(*risk.capacity_shock_fraction_beta, size=(size, n_p))
        start = rng.integers(0, m, size=(size, n_p))
        on = np.arange(m)[None, None, :] >= start[:, :, None]
        cap -= (shock_hit * lost)[:, :, None] * on
    families = _families(demand, arrival, axes, sampled, shock_hit)
    if sampled.shocks:
        p_shock = per_horizon(risk.capacity_shock_probability_per_month, m)
        if not 0.05 <= p_shock <= 0.6:
            families = {k: v for k, v in families.items() if not k.startswith("capacity shock")}
    return Scenarios(np.full(size, 1.0 / size), demand, decline, arrival, rps, cap, families)


def _families(
    demand: np.ndarray, arrival: np.ndarray, axes: Axes, sampled: Sampled, shock: np.ndarray
) -> dict[str, np.ndarray]:
    """Scenario families for regret, on thresholds of the model (the same in every chunk).

    Demand: terciles of the final month's log-normal multiplier; each uncertain offer:
    arriving by the median month of its distribution or after; a capacity shock at a
    provider a deal or an uncertain offer names, where such shocks are neither rare nor
    near-certain (5% to 60% of scenarios).
    """
    years = (demand.shape[1] - 1) / 12.0
    mu, vol = sampled.demand.drift_per_year, sampled.demand.volatility_per_year
    final = np.log(demand[:, -1])
    center, spread = (mu - 0.5 * vol**2) * years, vol * np.sqrt(years)
    z = 0.43072729929545756  # standard normal tercile
    lo, hi = center - z * spread, center + z * spread
    fam: dict[str, np.ndarray] = {}
    if spread > 0:
        fam["demand: slowest third"] = final <= lo
        fam["demand: middle third"] = (final > lo) & (final < hi)
        fam["demand: fastest third"] = final >= hi
    for u, offer in enumerate(axes.uncertain):
        pmf = axes.arrival_pmf[u]
        if len(pmf) > 1:
            cum = np.cumsum(list(pmf.values()))
            middle = list(pmf)[int(np.searchsorted(cum, 0.5 - 1e-9))]
            fam[f"{offer} arrives by month {middle}"] = arrival[:, u] <= middle
            fam[f"{offer} arrives after month {middle}"] = arrival[:, u] > middle
    for p, provider in enumerate(axes.providers):
        if provider in axes.shock_families:
            fam[f"capacity shock at {provider}"] = shock[:, p]
    return fam


def named(axes: Axes, scenarios: list[NamedScenario], prices: PriceModel) -> Scenarios:
    """The scenarios listed by hand, with their probabilities."""
    m, n_p = axes.months, len(axes.providers)
    t = np.arange(m) / 12.0
    s = len(scenarios)
    demand = np.array([(1 + sc.demand_growth_per_year) ** t for sc in scenarios])
    base = base_declines(prices, axes.groups)
    decline = np.array(
        [np.full(len(base), sc.price_decline_per_year) if sc.price_decline_per_year is not None else base
         for sc in scenarios]
    ).reshape(s, len(base))  # fmt: skip
    arrival = np.array(
        [
            [sc.arrival_month.get(o, axes.fixed_arrival[u]) for u, o in enumerate(axes.uncertain)]
            for sc in scenarios
        ],
        int,
    ).reshape(s, len(axes.uncertain))
    cap = np.ones((s, n_p, m))
    for i, sc in enumerate(scenarios):
        for provider, share in sc.capacity_loss.items():
            cap[i, axes.providers.index(provider)] = 1 - share
    families: dict[str, np.ndarray] = {}
    for i, sc in enumerate(scenarios):
        label = sc.family or sc.name
        families.setdefault(label, np.zeros(s, bool))[i] = True
    prob = np.array([sc.probability for sc in scenarios])
    return Scenarios(prob / prob.sum(), demand, decline, arrival, np.ones((s, n_p, m)), cap, families)
