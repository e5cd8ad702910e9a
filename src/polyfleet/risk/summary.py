"""Figures a person reads from a Monte Carlo run: cost quantiles, unserved demand, worst provider.

Unserved demand is reported per kind in its own unit, since requests/s, Mtok and
billion training tokens do not add up:

- inference: requests/s at peak, time-averaged over the horizon;
- api: Mtok over the horizon;
- training: billion tokens that miss the deadline.

``down_served_fraction`` is the planner's own survival rule for that provider (the
smallest share of peak any inference service keeps on the capacity the plan bought
outside it plus api quotas it may rely on; ``polyfleet.plan.survival``), before any
emergency purchase; the plan table's survival row says the same number.

Which provider hurts most comes from a **deterministic one-provider-down sweep**: each
provider down for the whole horizon, nothing else going wrong, nominal prices (the N-1
event the planner's survival policy guards against).  Providers are ranked by the mean
unserved fraction over workloads, then by extra cost.  Next to it, the Monte Carlo
figure conditional on that provider having an outage in the scenario.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polyfleet.risk.dispatch import Outcome
from polyfleet.risk.fleet import Fleet

KINDS = ("inference", "api", "training")
UNITS = {"inference": "requests_per_s", "api": "mtok", "training": "tokens_b"}


def _r(value: float, digits: int = 6) -> float:
    return float(round(float(value), digits))


def _by_kind(fleet: Fleet, unserved: np.ndarray) -> dict[str, np.ndarray]:
    """Unserved quantity per scenario ``(S,)`` per kind present in the plan."""
    kinds = np.array(fleet.kinds)
    return {
        kind: unserved[:, kinds == kind] @ fleet.demand[kinds == kind]
        for kind in KINDS
        if (kinds == kind).any()
    }


def unserved_summary(fleet: Fleet, outcome: Outcome) -> dict[str, dict[str, float]]:
    """Expected and P99 unserved demand per kind, as a fraction of that kind's demand and in its unit."""
    kinds = np.array(fleet.kinds)
    out: dict[str, dict[str, float]] = {}
    for kind, quantity in _by_kind(fleet, outcome.unserved).items():
        total = float(fleet.demand[kinds == kind].sum())
        unit = UNITS[kind]
        out[kind] = {
            "demand_" + unit: _r(total),
            "expected_fraction": _r(quantity.mean() / total),
            "p99_fraction": _r(np.quantile(quantity, 0.99) / total),
            "expected_" + unit: _r(quantity.mean()),
            "p99_" + unit: _r(np.quantile(quantity, 0.99)),
        }
    return out


def provider_sweep(fleet: Fleet, sweep: Outcome, outcome: Outcome) -> list[dict[str, Any]]:
    """One row per provider, worst first: the sweep's extra cost and unserved, and MC conditionals."""
    expected = float(outcome.cost_usd.mean())
    rows = []
    for i, provider in enumerate(fleet.providers):
        hit = outcome.outage[:, i]
        row: dict[str, Any] = {
            "provider": provider,
            "down_extra_usd": _r(sweep.cost_usd[i] - fleet.total_usd, 2),
            "down_mean_unserved_fraction": _r(sweep.unserved[i].mean()),
            "down_unserved_fraction": {
                kind: _r(q[i] / fleet.demand[np.array(fleet.kinds) == kind].sum())
                for kind, q in _by_kind(fleet, sweep.unserved).items()
            },
            "down_served_fraction": _r(
                min((d[provider]["served_fraction"] for d in fleet.survival.values()), default=1.0)
            ),
            "mc_outage_scenarios": int(hit.sum()),
            "mc_extra_usd_given_outage": _r(outcome.cost_usd[hit].mean() - expected, 2)
            if hit.any()
            else None,
            "mc_mean_unserved_fraction_given_outage": _r(outcome.unserved[hit].mean()) if hit.any() else None,
        }
        rows.append(row)
    rows.sort(key=lambda r: (-r["down_mean_unserved_fraction"], -r["down_extra_usd"], r["provider"]))
    return rows


def summarise(fleet: Fleet, outcome: Outcome, sweep: Outcome, seed: int) -> dict[str, Any]:
    """The report of ``polyfleet risk``: a JSON-ready dictionary."""
    cost = outcome.cost_usd
    n = cost.size
    providers = provider_sweep(fleet, sweep, outcome)
    workloads = [
        {
            "name": name,
            "kind": kind,
            "expected_unserved_fraction": _r(outcome.unserved[:, w].mean()),
            "p99_unserved_fraction": _r(np.quantile(outcome.unserved[:, w], 0.99)),
        }
        for w, (name, kind) in enumerate(zip(fleet.workloads, fleet.kinds, strict=True))
    ]
    return {
        "scenarios": n,
        "seed": seed,
        "horizon_months": fleet.horizon_months,
        "plan_usd": _r(fleet.total_usd, 2),
        "expected_usd": _r(cost.mean(), 2),
        "expected_usd_stderr": _r(cost.std(ddof=1) / np.sqrt(n) if n > 1 else 0.0, 2),
        "p95_usd": _r(np.quantile(cost, 0.95), 2),
        "p99_usd": _r(np.quantile(cost, 0.99), 2),
        "expected_emergency_usd": _r(outcome.emergency_usd.mean(), 2),
        "unserved": unserved_summary(fleet, outcome),
        "workloads": workloads,
        "worst_provider": providers[0]["provider"] if providers else None,
        "worst_provider_method": "deterministic sweep: one provider down for the whole horizon",
        "providers": providers,
    }
