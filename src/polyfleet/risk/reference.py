"""The re-dispatch of :mod:`polyfleet.risk.dispatch`, written as plain loops, one scenario at a time.

Slow and obvious on purpose: the tests use it as an oracle for the vectorised
:func:`polyfleet.risk.dispatch.evaluate`, and ``bench/risk.py`` as the peer it is timed
against.  Not used by the CLI.
"""

from __future__ import annotations

import numpy as np

from polyfleet.risk.assumptions import RiskAssumptions
from polyfleet.risk.dispatch import Outcome
from polyfleet.risk.fleet import Fleet
from polyfleet.risk.scenarios import Scenarios

_EPS = 1e-9


def _avail(sc: Scenarios, s: int, bound: float, provider: int, accelerator: int) -> float:
    """Share of an allocation's capacity up in scenario ``s`` during a phase ending at ``bound``."""
    up = 1.0 - float(sc.shock[s, provider])
    if sc.outage[s, provider] >= bound - _EPS:
        up = 0.0
    if accelerator >= 0 and sc.delay[s, accelerator] >= bound - _EPS:
        up = 0.0
    return up


def evaluate_loop(fleet: Fleet, sc: Scenarios, assumptions: RiskAssumptions) -> Outcome:
    """Same contract and numbers as :func:`polyfleet.risk.dispatch.evaluate`, one scenario per loop."""
    a = assumptions
    cap_frac = np.inf if a.emergency_capacity_fraction is None else a.emergency_capacity_fraction
    n_w = len(fleet.workloads)
    lengths = sc.phase_lengths
    capacity_w = fleet.flow_capacity_by_workload
    costs, emergencies, unserved_rows = [], [], []
    for s in range(sc.size):
        cost = 0.0
        for j in range(fleet.flow_usd.size):
            g = fleet.flow_group[j]
            cost += fleet.flow_usd[j] * (sc.price[s, g] if g >= 0 else 1.0)
        for t in range(fleet.train_usd.size):
            g = fleet.train_group[t]
            cost += fleet.train_usd[t] * (sc.price[s, g] if g >= 0 else 1.0)
        emergency_usd = 0.0
        unserved = np.zeros(n_w)
        for w in range(n_w):
            if fleet.kinds[w] == "training":
                continue
            demand = fleet.demand[w]
            for k, bound in enumerate(sc.breakpoints):
                up = sum(
                    fleet.flow_capacity[j]
                    * _avail(sc, s, bound, fleet.flow_provider[j], fleet.flow_accelerator[j])
                    for j in range(fleet.flow_usd.size)
                    if fleet.flow_workload[j] == w
                )
                short = max(demand - up, 0.0)
                bought = min(short, cap_frac * demand)
                emergency_usd += (
                    lengths[k] * bought * a.emergency_price_multiplier * fleet.usd[w] / capacity_w[w]
                )
                unserved[w] += lengths[k] * (short - bought) / demand
        for t in range(fleet.train_usd.size):
            lost = sum(
                lengths[k] * (1.0 - _avail(sc, s, bound, fleet.train_provider[t], fleet.train_accelerator[t]))
                for k, bound in enumerate(sc.breakpoints)
            )
            run = fleet.train_run_hours[t]
            slack = max(fleet.train_deadline_hours[t] - run, 0.0) / run
            excess = max(lost - slack, 0.0)
            bought = min(excess, cap_frac)
            emergency_usd += a.emergency_price_multiplier * bought * fleet.train_usd[t]
            unserved[fleet.train_workload[t]] = excess - bought
        costs.append(cost + emergency_usd)
        emergencies.append(emergency_usd)
        unserved_rows.append(unserved)
    return Outcome(
        cost_usd=np.array(costs),
        emergency_usd=np.array(emergencies),
        unserved=np.array(unserved_rows).reshape(sc.size, n_w),
        outage=sc.outage > 0,
    )
