"""Re-dispatch bought capacity in each scenario: what is served, bought in a hurry, or lost.

All scenarios of a chunk at once, as arrays over (scenario S, phase K, allocation J):

1. **Availability** of an allocation in a phase = (1 - its provider's capacity shock)
   x (0 while its provider is down) x (0 while its accelerator is delayed).
2. **Flow workloads** (inference, api): surviving capacity
   ``cap[s,k,w] = sum_j avail[s,k,j] x capacity[j]`` serves demand D first; the
   workload's own allocations elsewhere (its headroom for survival and lock-in caps) are
   the spare capacity it can use.  Capacity of *other* workloads is not moved: replicas
   are sized for one model and SLO, and the planner rents no idle instances, so there is
   little to move and no honest way to price a redeploy.  The shortfall
   ``max(0, D - cap)`` is bought at emergency prices, up to
   ``emergency_capacity_fraction`` x D, and the rest is unserved.
3. **Training**: a job loses ``run_hours x`` (time-averaged unavailability); its slack
   to the deadline absorbs that first, the excess is bought at emergency prices (a
   fraction of the job, capped likewise) and the rest of the tokens miss the deadline.
4. **Cost** = fixed-price spend + price-moved spend + emergency spend.  Bought capacity
   is paid in full while unavailable (SLA credits and refunds ignored: conservative).
   Emergency capacity costs ``emergency_price_multiplier`` x the workload's own average
   price per unit of capacity (its usd / its bought capacity), at nominal prices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polyfleet.risk.assumptions import RiskAssumptions
from polyfleet.risk.fleet import Fleet
from polyfleet.risk.scenarios import Scenarios, active


@dataclass(frozen=True)
class Outcome:
    """Per-scenario results of one chunk (S scenarios, W workloads in plan order)."""

    cost_usd: np.ndarray  # (S,) total spend over the horizon
    emergency_usd: np.ndarray  # (S,) of which bought at emergency prices
    unserved: np.ndarray  # (S, W) fraction of each workload's demand not served (time-averaged)
    outage: np.ndarray  # (S, P) whether each provider had an outage (for conditional figures)

    @staticmethod
    def concat(parts: list[Outcome]) -> Outcome:
        """Join chunks in order."""
        return Outcome(
            *(np.concatenate([getattr(p, f) for p in parts]) for f in Outcome.__dataclass_fields__)
        )


def _availability(fleet: Fleet, sc: Scenarios) -> tuple[np.ndarray, np.ndarray]:
    """Provider factor ``(S, K, P)`` and accelerator factor ``(S, K, A + 1)`` (last column: no chip)."""
    points = sc.breakpoints
    provider = (1.0 - sc.shock)[:, None, :] * ~active(sc.outage, points)
    up = ~active(sc.delay, points)
    accelerator = np.concatenate([up, np.ones((*up.shape[:2], 1), dtype=bool)], axis=2)
    return provider, accelerator


def _emergency_cap(assumptions: RiskAssumptions) -> float:
    """Most emergency capacity, as a fraction of demand (inf: unlimited)."""
    cap = assumptions.emergency_capacity_fraction
    return np.inf if cap is None else cap


def _flow(
    fleet: Fleet, sc: Scenarios, a: RiskAssumptions, provider: np.ndarray, accel: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Time-averaged emergency and unserved demand per flow workload, ``(S, W)`` in demand units."""
    n_w = len(fleet.workloads)
    s, k = provider.shape[:2]
    if fleet.flow_workload.size == 0:
        return np.zeros((s, n_w)), np.zeros((s, n_w))
    avail = provider[:, :, fleet.flow_provider] * accel[:, :, fleet.flow_accelerator]  # (S, K, J)
    weights = np.zeros((fleet.flow_workload.size, n_w))
    weights[np.arange(fleet.flow_workload.size), fleet.flow_workload] = fleet.flow_capacity
    capacity = (avail.reshape(s * k, -1) @ weights).reshape(s, k, n_w)
    is_flow = np.array([kind != "training" for kind in fleet.kinds])
    demand = np.where(is_flow, fleet.demand, 0.0)
    short = np.maximum(demand - capacity, 0.0)
    cap = _emergency_cap(a)
    emergency = short if np.isinf(cap) else np.minimum(short, cap * demand)
    lengths = sc.phase_lengths
    return np.einsum("skw,k->sw", emergency, lengths), np.einsum("skw,k->sw", short - emergency, lengths)


def evaluate(fleet: Fleet, sc: Scenarios, assumptions: RiskAssumptions) -> Outcome:
    """Re-dispatch ``fleet`` in every scenario of ``sc``; see the module docstring for the rules."""
    a = assumptions
    provider, accel = _availability(fleet, sc)
    n_w = len(fleet.workloads)
    emergency, unserved = _flow(fleet, sc, a, provider, accel)
    capacity = fleet.flow_capacity_by_workload
    unit_price = np.divide(fleet.usd, capacity, out=np.zeros(n_w), where=capacity > 0)
    emergency_usd = a.emergency_price_multiplier * (emergency @ unit_price)
    unserved_frac = unserved / fleet.demand

    if fleet.train_workload.size:
        avail = provider[:, :, fleet.train_provider] * accel[:, :, fleet.train_accelerator]  # (S, K, T)
        lost = np.einsum("skt,k->st", 1.0 - avail, sc.phase_lengths)
        slack = np.maximum(fleet.train_deadline_hours - fleet.train_run_hours, 0.0) / fleet.train_run_hours
        excess = np.maximum(lost - slack, 0.0)  # fraction of the job that misses the deadline on its own
        bought = np.minimum(excess, _emergency_cap(a))
        emergency_usd = emergency_usd + a.emergency_price_multiplier * (bought @ fleet.train_usd)
        unserved_frac[:, fleet.train_workload] = excess - bought

    fixed = fleet.total_usd - fleet.group_usd.sum()
    cost = fixed + sc.price @ fleet.group_usd + emergency_usd
    return Outcome(cost_usd=cost, emergency_usd=emergency_usd, unserved=unserved_frac, outage=sc.outage > 0)
