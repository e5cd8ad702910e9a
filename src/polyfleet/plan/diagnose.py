"""Say why a plan is infeasible: which constraint family, and which workload, group or provider.

Families are added in order (demand with packing and capacity, then spot, survival,
lock-in (capacity caps), spend-share, budget).  The first family whose addition makes
the model infeasible is solved again with an elastic slack on each of its rows; the rows
that need slack name the culprits.
"""

from __future__ import annotations

import numpy as np

from polyfleet.plan.build import build_milp
from polyfleet.plan.candidates import Candidates
from polyfleet.plan.result import Infeasibility
from polyfleet.plan.solve import SolveOptions, Status, solve_milp
from polyfleet.spec import Policy

_BASE = ("demand", "packing", "capacity", "api-rate")
_ORDER = ("spot", "survival", "lock-in", "spend-share", "budget")


def _culprit(
    cand: Candidates, policy: Policy, families: tuple[str, ...], family: str, options: SolveOptions
) -> Infeasibility:
    milp = build_milp(cand, policy, families=families, elastic=family)
    sol = solve_milp(milp, options)
    if sol.status == Status.INFEASIBLE:
        return Infeasibility(family, "", f"{family} constraints cannot be met")
    slack = sol.values[milp.n_cols - len(milp.slack_rows) :]
    worst = int(np.argmax(slack))
    row = milp.slack_rows[worst]
    label = str(milp.row_label[row])
    missing = float(slack[worst])
    total_usd = float(sol.values[milp.cols["T"]][0])
    if family == "demand":
        message = (
            f"workload {label!r} cannot be met within the offers' capacity: "
            f"at most {100 * (1 - missing):.1f}% of its demand can be bought"
        )
    elif family == "spot":
        m = float(cand.spot_cap[[w.name for w in cand.workloads].index(label)])
        message = (
            f"workload {label!r} may take at most {100 * m:.0f}% of its peak from spot; the rest "
            f"needs non-spot capacity or api offers, which can serve only "
            f"{100 * (1 - m) * (1 - missing):.1f}% of its peak"
        )
    elif family == "survival":
        name, _, provider = label.partition(" without ")
        f = policy.survive_provider_loss
        message = (
            f"workload {name!r} cannot keep {100 * f:.0f}% of its peak if provider "
            f"{provider!r} fails: at most {100 * f * (1 - missing):.1f}% remains elsewhere"
        )
        label = f"{name}/{provider}"
    elif family == "lock-in":
        name, _, rest = label.partition(": ")
        group, _, value = rest.partition("=")
        cap = getattr(policy.max_share, group)
        what = "peak" if cand.peak_rps[[w.name for w in cand.workloads].index(name)] > 0 else "demand"
        message = (
            f"workload {name!r} needs {group} {value!r} to serve at least "
            f"{100 * cap * (1 + missing):.1f}% of its {what} but max_share.{group} is "
            f"{100 * cap:.0f}%: the other {group}s' offers cannot carry the rest"
        )
    elif family == "spend-share":
        group, _, value = label.partition("=")
        cap = getattr(policy.max_spend_share, group)
        share = (cap * total_usd + missing) / total_usd if total_usd > 0 else 1.0
        message = (
            f"{group} {value!r} needs at least {100 * share:.1f}% of spend but the cap is {100 * cap:.0f}%"
        )
    else:
        message = (
            f"the cheapest plan meeting the other constraints costs ${total_usd:,.0f}, "
            f"over the budget of ${policy.budget_usd:,.0f}"
        )
    return Infeasibility(family, label, message)


def diagnose(
    cand: Candidates, policy: Policy, families: tuple[str, ...], options: SolveOptions
) -> Infeasibility:
    """Find the first family that breaks feasibility and name who cannot be satisfied."""
    active = tuple(f for f in _BASE if f in families)
    if solve_milp(build_milp(cand, policy, families=active), options).status == Status.INFEASIBLE:
        return _culprit(cand, policy, active, "demand", options)
    for family in _ORDER:
        if family not in families:
            continue
        active = (*active, family)
        if solve_milp(build_milp(cand, policy, families=active), options).status == Status.INFEASIBLE:
            return _culprit(cand, policy, active, family, options)
    return Infeasibility("solver", "", "HiGHS reported no feasible plan (time limit?)")
