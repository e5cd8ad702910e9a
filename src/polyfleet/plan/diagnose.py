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
    if sol.status == Status.INFEASIBLE or sol.values is None or not np.isfinite(sol.values).all():
        if family == "demand":
            return _demand_bound(cand)
        name = next((w.name for w in cand.workloads), "")
        return Infeasibility(family, name, f"{family} constraints cannot be met (first workload {name!r})")
    slack = sol.values[milp.n_cols - len(milp.slack_rows) :]
    worst = int(np.argmax(slack))
    row = milp.slack_rows[worst]
    label = str(milp.row_label[row])
    missing = float(slack[worst])
    total_usd = float(sol.values[milp.cols["T"]][0])
    if family == "demand":
        closest = _demand_bound(cand, label)
        message = (
            f"workload {label!r} cannot be met within the offers' capacity: "
            f"at most {100 * (1 - missing):.1f}% of its demand can be bought"
            + (f" ({closest.message.split(' (', 1)[1]}" if " (closest" in closest.message else "")
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


def _demand_bound(cand: Candidates, only: str | None = None) -> Infeasibility:
    """The workload furthest from its demand on every offer's whole capacity, and its closest offer.

    A bound that needs no solve (the elastic model can fail numerically on absurd demand,
    e.g. 1e15 requests/s): each inference workload's replicas on every instance of every
    candidate offer, plus its whole demand per token when an api offer sells its model.
    The closest offer is the one that alone serves the most of it.
    """
    worst: tuple[float, str, str] | None = None
    for w, wl in enumerate(cand.workloads):
        if only is not None and wl.name != only:
            continue
        peak = float(cand.peak_rps[w])
        if peak <= 0 or (cand.api_w == w).any():
            continue
        k = np.flatnonzero(cand.inf_w == w)
        if not len(k):
            continue
        most = cand.inf_rps[k] * np.floor(
            cand.offer_avail[cand.inf_o[k]] * cand.offer_cpi[cand.inf_o[k]] / np.maximum(cand.inf_chips[k], 1)
        )
        served = float(most.sum()) / peak
        best = int(k[np.argmax(most)])
        detail = (
            f"closest: {cand.offers[cand.inf_o[best]].id} serves {float(most.max()):,.4g} of "
            f"{peak:,.4g} requests/s on all {int(cand.offer_avail[cand.inf_o[best]])} instances"
        )
        if worst is None or served < worst[0]:
            worst = (served, wl.name, detail)
    if worst is None:
        name = only or next((w.name for w in cand.workloads), "")
        return Infeasibility("demand", name, f"workload {name!r} cannot be met within the offers' capacity")
    served, name, detail = worst
    if served >= 1.0:  # capacity is there: the solver failed on the numbers, not the demand
        return Infeasibility(
            "demand",
            name,
            f"workload {name!r}: no plan found although its offers could serve its whole peak "
            f"({detail}); the spec's numbers may be out of the solver's range",
        )
    return Infeasibility(
        "demand",
        name,
        f"workload {name!r} cannot be met within the offers' capacity: at most "
        f"{100 * min(served, 1.0):.4g}% of its peak can be bought ({detail})",
    )


def caps_precheck(cand: Candidates, policy: Policy) -> Infeasibility | None:
    """A capacity cap whole replicas cannot meet, found without a solve (or None).

    Under ``max_share`` c a value v can serve at most c x D of workload w, and only when
    some replica of w at v serves at most c x D (a whole replica above it cannot be
    placed there); an api offer at v can serve up to c x D (shares are continuous).  When
    these upper bounds add up to less than D, no plan exists, though the LP relaxation has
    one: say so at once rather than search for a plan until the time limit.
    """
    for group in ("provider", "vendor"):
        cap = getattr(policy.max_share, group)
        if cap is None or cap >= 1:
            continue
        x_val = (cand.offer_provider if group == "provider" else cand.offer_vendor)[cand.inf_o]
        a_val = cand.api_provider if group == "provider" else cand.api_vendor
        for w, wl in enumerate(cand.workloads):
            peak = float(cand.peak_rps[w])
            if peak <= 0:
                continue
            limit = cap * peak * (1 + 1e-9)
            k = np.flatnonzero(cand.inf_w == w)
            fits = {str(v) for v in x_val[k][cand.inf_rps[k] <= limit]}
            api_vals = {str(a_val[a]) for a in cand.api_a[cand.api_w == w] if a_val[a]}
            # an api offer naming no vendor is not capped by the vendor cap: no bound
            if group == "vendor" and any(not a_val[a] for a in cand.api_a[cand.api_w == w]):
                continue
            values = fits | api_vals
            if len(values) * cap * peak >= peak * (1 - 1e-9):
                continue
            smallest = int(k[np.argmin(cand.inf_rps[k])]) if len(k) else -1
            detail = (
                f"; its smallest replica serves {cand.inf_rps[smallest]:g} of {peak:g} requests/s "
                f"({cand.offers[cand.inf_o[smallest]].id})"
                if smallest >= 0
                else ""
            )
            return Infeasibility(
                "lock-in",
                wl.name,
                f"workload {wl.name!r} cannot keep every {group} within max_share.{group} "
                f"{100 * cap:.0f}% of its peak: only {len(values)} {group}(s) can hold a share "
                f"that small, at most {100 * len(values) * cap:.0f}% of its peak{detail}",
            )
    return None


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
    names = ", ".join(w.name for w in cand.workloads)
    return Infeasibility(
        "solver", names, f"HiGHS reported no feasible plan for workloads {names} (time limit?)"
    )
