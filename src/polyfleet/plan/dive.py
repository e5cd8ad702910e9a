"""An LP dive: a whole-replica plan for models too big for HiGHS's branch and bound.

Rounding the LP relaxation in one go (rounding.py's ``rounded_start``) pays for the LP's
fractions of replicas at every offer it splits a workload over: on the 100 x 1,000
benchmark that plan is 17% above the LP bound.  A dive rounds a batch of fractional
columns at a time and lets the LP re-balance the rest around them, so a workload that
lost half a replica on one offer picks it up where a whole one is cheapest:

1. the dive works on a *restricted* model: per inference workload, the replica columns
   the LP uses plus, per provider, the one with the lowest price per request/s (a plan
   that must survive a provider's loss needs a good candidate at every provider);
2. each round rounds up the columns with the largest fractions (a quarter of those
   still fractional; training placements first, then replicas, then instances) by
   raising their lower bounds, and solves the LP again from the previous basis (about
   10 ms); the LP then sheds what other columns no longer need.  Rounding up keeps
   every covering row (demand, survival, spot); a replica whose offer has no free chip
   is rounded down instead.  Rounding to the nearer integer, or one column per round,
   gave no cheaper plan on the benchmark and failed far more often;
3. a round whose LP is infeasible (a share cap, say) is undone and retried with half
   the batch; a single column that cannot go either way ends the dive (no plan).

The result satisfies every row of the original model (checked by the caller) since
only column bounds change.  It carries no optimality claim: the caller reports its gap
against the LP bound.
"""

from __future__ import annotations

import time
from dataclasses import replace

import highspy
import numpy as np

from polyfleet.plan.build import Milp

#: share of the fractional columns rounded per round (the most decided first)
BATCH_SHARE = 0.25
#: columns closer than this to an integer count as integral
INT_TOL = 1e-6


def first_per_group(group: np.ndarray, key: np.ndarray, k: int) -> np.ndarray:
    """Mask of the ``k`` entries with the smallest ``key`` in each group (ties: lower index)."""
    order = np.lexsort((np.arange(len(group)), key, group))
    ordered = group[order]
    start = np.r_[0, np.flatnonzero(np.diff(ordered)) + 1] if len(ordered) else np.zeros(0, int)
    rank = np.arange(len(ordered)) - np.repeat(start, np.diff(np.r_[start, len(ordered)]))
    mask = np.zeros(len(group), bool)
    mask[order[rank < k]] = True
    return mask


def _per_owner_and(owner: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """One group id per (owner, code) pair."""
    return owner.astype(np.int64) * (int(codes.max(initial=0)) + 1) + codes


def keep_columns(milp: Milp, lp_values: np.ndarray, u_provider: np.ndarray) -> np.ndarray:
    """Replica columns the dive may use: the LP's support and the best per (workload,
    provider) and per (workload, chip vendor).

    ``u_provider`` codes each offer's provider.  "Best" is the lowest instance price per
    request/s of the replica (chips x price per chip / requests per s).  A plan that must
    survive a provider's loss needs a good candidate at each provider; one under a vendor
    cap, at each vendor (without it a whole-replica plan could be forced onto a vendor
    whose only kept column was dear: 2.4x the optimum in a fuzzed case).
    """
    xs, us = milp.cols["x"], milp.cols["u"]
    per_chip = milp.cost[us] / np.maximum(milp.u_cpi, 1)
    usd_per_rps = milp.x_chips * per_chip[milp.x_offer] / np.maximum(milp.x_rps, 1e-12)
    keep = first_per_group(_per_owner_and(milp.x_workload, u_provider[milp.x_offer]), usd_per_rps, 1)
    if len(milp.u_vendor) == len(u_provider):
        keep |= first_per_group(_per_owner_and(milp.x_workload, milp.u_vendor[milp.x_offer]), usd_per_rps, 1)
    return keep | (lp_values[xs] > INT_TOL)


#: cheapest placements kept per training job in the restricted model (besides the LP's)
PLACEMENTS_KEPT = 3


def keep_placements(milp: Milp, lp_values: np.ndarray) -> np.ndarray:
    """Training placements the restricted model keeps: the LP's, the cheapest few per job,
    and the cheapest per (job, provider) and per (job, vendor) (share caps may need them)."""
    ys = milp.cols["y"]
    cost = milp.objective[ys]
    keep = first_per_group(milp.y_job, cost, PLACEMENTS_KEPT) | (lp_values[ys] > INT_TOL)
    if len(milp.y_offer) == len(milp.y_job) and len(milp.u_vendor) == len(milp.u_provider):
        for codes in (milp.u_provider, milp.u_vendor):
            keep |= first_per_group(_per_owner_and(milp.y_job, codes[milp.y_offer]), cost, 1)
    return keep


def subset(milp: Milp, cols: np.ndarray) -> Milp:
    """The model over ``cols`` only (sorted column indices; every row kept).

    Each block keeps its name and order, so a plan of the subset, scattered back to
    ``cols``, is a plan of ``milp`` with the other columns at 0.  Used to dive on the
    columns the LP priced in, where re-solving the whole LP each round would be slow.
    """
    position = np.full(milp.n_cols, -1)
    position[cols] = np.arange(len(cols))
    blocks = {}
    for name, sl in milp.cols.items():
        inside = cols[(cols >= sl.start) & (cols < sl.stop)]
        start = int(position[inside[0]]) if len(inside) else int(np.searchsorted(cols, sl.start))
        blocks[name] = slice(start, start + len(inside))
    xs, ys = milp.cols["x"], milp.cols["y"]
    kx = cols[(cols >= xs.start) & (cols < xs.stop)] - xs.start
    ky = cols[(cols >= ys.start) & (cols < ys.stop)] - ys.start
    return replace(
        milp,
        cost=milp.cost[cols],
        objective=milp.objective[cols],
        lower=milp.lower[cols],
        upper=milp.upper[cols],
        integer=milp.integer[cols],
        cols=blocks,
        A=milp.A[:, cols].tocsr(),
        x_offer=milp.x_offer[kx],
        x_chips=milp.x_chips[kx],
        x_workload=milp.x_workload[kx],
        x_rps=milp.x_rps[kx],
        y_job=milp.y_job[ky],
        y_offer=milp.y_offer[ky] if len(milp.y_offer) else milp.y_offer,
    )


class _Lp:
    """A HiGHS LP whose column bounds the dive tightens and restores."""

    def __init__(self, h: highspy.Highs, lower: np.ndarray, upper: np.ndarray) -> None:
        self.h = h
        self.lower = lower.copy()
        self.upper = upper.copy()

    def set(self, cols: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
        self.lower[cols], self.upper[cols] = lower, upper
        hi = np.where(np.isinf(upper), highspy.kHighsInf, upper)
        self.h.changeColsBounds(len(cols), cols.astype(np.int32), lower.astype(float), hi.astype(float))

    def solve(self) -> np.ndarray | None:
        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        return np.asarray(self.h.getSolution().col_value)


def _fractional(milp: Milp, v: np.ndarray, lp: _Lp) -> np.ndarray:
    """Integer columns whose value is fractional, training first, then replicas, then instances."""
    frac = milp.integer & (np.abs(v - np.round(v)) > INT_TOL) & (lp.upper > lp.lower)
    for name in ("y", "x", "u"):
        sl = milp.cols[name]
        cols = sl.start + np.flatnonzero(frac[sl])
        if len(cols):
            return cols
    return np.zeros(0, int)


def _batch(
    milp: Milp, v: np.ndarray, cols: np.ndarray, size: int, free_chips: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(columns, new lower, new upper): the ``size`` most decided, each to its nearer integer.

    A training job's largest placement is set to 1 (one per job and round).
    """
    ys = milp.cols["y"]
    if cols[0] >= ys.start and cols[0] < ys.stop:
        job = milp.y_job[cols - ys.start]
        order = np.lexsort((-v[cols], job))
        first = np.ones(len(order), bool)
        first[1:] = job[order][1:] != job[order][:-1]
        chosen = cols[order[first]][:size]
        return chosen, np.ones(len(chosen)), np.ones(len(chosen))
    xs = milp.cols["x"]
    frac = v[cols] - np.floor(v[cols])
    chosen = cols[np.argsort(-frac, kind="stable")[:size]]
    is_x = (chosen >= xs.start) & (chosen < xs.stop)
    up = np.ones(len(chosen), bool)
    if free_chips is not None and is_x.any():
        # a replica rounded up at an offer with no free chip left makes the LP infeasible
        k = chosen[is_x] - xs.start
        need = np.where(up[is_x], (np.ceil(v[chosen[is_x]]) - v[chosen[is_x]]) * milp.x_chips[k], 0.0)
        offer = milp.x_offer[k]
        order = np.argsort(offer, kind="stable")
        cum = np.cumsum(need[order])
        start = np.r_[0, np.flatnonzero(np.diff(offer[order])) + 1]
        cum -= np.repeat(np.r_[0.0, cum[start[1:] - 1]], np.diff(np.r_[start, len(order)]))
        fits = np.empty(len(k), bool)
        fits[order] = cum <= free_chips[offer[order]] + 1e-6
        sub = up[is_x]
        sub &= fits
        up[is_x] = sub
    lower = np.where(up, np.ceil(v[chosen]), milp.lower[chosen])
    upper = np.where(up, milp.upper[chosen], np.floor(v[chosen]))
    return chosen, lower, upper


def _free_chips(milp: Milp, v: np.ndarray) -> np.ndarray | None:
    """Chips each offer could still give a replica at ``v``: unrented capacity plus spare chips.

    None when the model's capacity rows are not one per offer (a monthly model).
    """
    us = milp.cols["u"]
    rows = np.flatnonzero(milp.row_family == "capacity")
    if len(rows) != us.stop - us.start:
        return None
    activity = milp.A[rows] @ v
    used = np.bincount(milp.x_offer, milp.x_chips * v[milp.cols["x"]], minlength=len(rows))
    return milp.u_cpi * (milp.row_upper[rows] - activity + v[us]) - used


def dive(
    h: highspy.Highs, milp: Milp, lp_values: np.ndarray, keep_x: np.ndarray, deadline: float
) -> np.ndarray | None:
    """Round the LP in ``h`` (the model's relaxation, already solved to ``lp_values``) to a plan.

    ``keep_x`` selects the replica columns the dive may use.  Returns the column values,
    or None when the dive runs out of time or cannot round a column either way.
    """
    lp = _Lp(h, milp.lower, milp.upper)
    xs = milp.cols["x"]
    dropped = xs.start + np.flatnonzero(~keep_x)
    lp.set(dropped, np.zeros(len(dropped)), np.zeros(len(dropped)))
    v = lp.solve() if len(dropped) else lp_values
    if v is None:  # the restriction lost feasibility: dive over every column
        lp.set(dropped, milp.lower[dropped], milp.upper[dropped])
        v = lp_values
    while time.perf_counter() < deadline:
        cols = _fractional(milp, v, lp)
        if not len(cols):
            return v
        size = max(1, int(np.ceil(BATCH_SHARE * len(cols))))
        while True:
            chosen, lower, upper = _batch(milp, v, cols, size, _free_chips(milp, v))
            old_lower, old_upper = lp.lower[chosen].copy(), lp.upper[chosen].copy()
            lp.set(chosen, lower, upper)
            nxt = lp.solve()
            if nxt is not None:
                v = nxt
                break
            lp.set(chosen, old_lower, old_upper)
            if size > 1:
                size = max(1, size // 2)
                continue
            # one column: try the other direction once
            flip_lower = np.where(lower > old_lower, old_lower, np.ceil(v[chosen]))
            flip_upper = np.where(lower > old_lower, np.floor(v[chosen]), old_upper)
            lp.set(chosen, flip_lower, flip_upper)
            nxt = lp.solve()
            if nxt is None:
                return None
            v = nxt
            break
    return None


def violations(milp: Milp, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Rows below their lower bound, rows above their upper bound, and whether bounds hold."""
    activity = milp.A @ v
    tol = 1e-6 * np.maximum(1.0, np.abs(activity))
    low = activity < milp.row_lower - tol
    high = activity > milp.row_upper + tol
    bounds_ok = bool(np.all(v >= milp.lower - 1e-9) and np.all(v <= milp.upper + 1e-9))
    return low, high, bounds_ok


def feasible(milp: Milp, v: np.ndarray) -> bool:
    """Whether ``v`` keeps every row and column bound of ``milp`` (``violations`` finds none)."""
    low, high, bounds_ok = violations(milp, v)
    return bool(bounds_ok and not low.any() and not high.any())


def derive(milp: Milp, v: np.ndarray) -> np.ndarray:
    """``v`` with instances, served rates, counted replicas and total spend set from its replicas.

    Instances are the fewest that hold the replicas; the rest are definitions.
    """
    v = v.copy()
    xs, us = milp.cols["x"], milp.cols["u"]
    x = v[xs]
    chips = np.zeros(us.stop - us.start)
    np.add.at(chips, milp.x_offer, x * milp.x_chips)
    v[us] = np.ceil(chips / milp.u_cpi - 1e-9)
    # continuous columns that are definitions: z (served) and T (total spend)
    served_rows = np.flatnonzero(milp.row_family == "served")
    zs = milp.cols["z"]
    z_part = milp.A[served_rows][:, zs.start : zs.stop]
    rest = milp.A[served_rows] @ v - z_part @ v[zs]
    v[zs] = np.maximum(-rest, 0.0)
    if "n" in milp.cols:  # counted replicas per workload: its definition rows
        rep_rows = np.flatnonzero((milp.row_family == "replicas") & (milp.row_upper == 0))
        ns = milp.cols["n"]
        n_part = milp.A[rep_rows][:, ns.start : ns.stop]
        rest = milp.A[rep_rows] @ v - n_part @ v[ns]
        v[ns.start + n_part.tocoo().col] = -rest[n_part.tocoo().row]
    v[milp.cols["T"]] = milp.cost @ v
    return v


def shave(milp: Milp, v: np.ndarray, deadline: float) -> np.ndarray:
    """``v`` less every replica it can drop with all rows still holding, dearest first.

    Rounding up leaves some workloads covered more than their rows ask; one replica at a
    time, from the one whose chips cost most, is dropped (and its instance, when it was
    the last on it) while the plan stays feasible, until ``deadline``.
    """
    xs, us = milp.cols["x"], milp.cols["u"]
    per_chip = milp.cost[us] / np.maximum(milp.u_cpi, 1)
    replica_usd = milp.x_chips * per_chip[milp.x_offer]
    held = np.flatnonzero(v[xs] > 0.5)
    for k in held[np.argsort(-replica_usd[held], kind="stable")]:
        while v[xs.start + k] > 0.5 and time.perf_counter() < deadline:
            trial = v.copy()
            trial[xs.start + k] -= 1.0
            trial = derive(milp, trial)
            low, high, bounds_ok = violations(milp, trial)
            if low.any() or high.any() or not bounds_ok:
                break
            v = trial
    return v
