"""A greedy whole-replica plan, built without the LP: the incumbent every large solve keeps.

The LP plan path (plan/solve.py ``_lp_plan``) needs the LP relaxation before it has any
plan; on the 300-workload SkyPilot portfolio (125,108 columns) that LP alone can take the
LP's whole share of a 10 s limit on a loaded machine, and the solve then ended with no
plan at all.  This builds one in a fraction of a second from the model's arrays:

1. training jobs, largest first, each on its cheapest placement that still fits the
   offer's capacity (instances rented plus instances held by jobs);
2. api workloads on their cheapest api offer;
3. inference workloads, largest peak demand first, one replica (or api share) at a time:
   the candidate with the least *marginal* cost per request/s it adds toward what is
   still missing (a replica that fits in free chips of an instance already rented costs
   nothing more; one that needs a new instance costs that instance; a replica larger
   than the remainder is charged for the remainder only), within the offers' capacity.

Spend-share caps (``spend[g] <= c x T``) are kept by a sufficient rule: a purchase may
raise ``spend[g]`` only up to ``c x max(bound, T)``, ``bound`` being a lower bound on any
plan's total (the LP's, or 0); since the final total is at least both, every cap holds at
the end.  Rows the greedy does not reason about (survival, lock-in, spot, budget,
api rate limits) are checked at the end like every other row: a plan that breaks any
row of the model is not returned (None), and the caller falls back to the LP's plans.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from polyfleet.plan.build import Milp
from polyfleet.plan.dive import derive, feasible

#: relative weight of a candidate's price per chip in its score, so a replica placed in
#: free chips (marginal cost 0) goes to the cheaper chips first
_CHIP_TIE = 1e-3


class _Caps:
    """The model's spend-share rows and the sufficient rule that keeps them (module docstring)."""

    def __init__(self, milp: Milp, bound: float) -> None:
        rows = np.flatnonzero(milp.row_family == "spend-share")
        t_col = milp.cols["T"].start
        block = milp.A[rows].tocsc()
        self.share = -block[:, t_col].toarray().ravel()  # c per row
        self.block = block
        self.spend = np.zeros(len(rows))
        self.total = 0.0
        self.bound = max(float(bound), 0.0)

    def per_column(self, cols: np.ndarray) -> np.ndarray:
        """Spend each column's unit adds to each row: rows x len(cols)."""
        return self.block[:, cols].toarray()

    def allows(self, added: np.ndarray, added_total: np.ndarray) -> np.ndarray:
        """Per candidate (columns of ``added``): whether buying it keeps the rule."""
        if not len(self.spend):
            return np.ones(added.shape[1], bool)
        after = self.spend[:, None] + added
        limit = self.share[:, None] * np.maximum(self.bound, self.total + added_total)[None, :]
        return np.all((added <= 1e-9) | (after <= limit * (1 + 1e-9) + 1e-6), axis=0)

    def buy(self, added: np.ndarray, added_total: float) -> None:
        self.spend += added
        self.total += added_total


def greedy_plan(milp: Milp, bound: float = 0.0) -> np.ndarray | None:
    """A plan of ``milp`` satisfying every row, or None (see the module docstring).

    ``bound`` is a lower bound on every plan's total spend (0 when none is known).  Needs
    the single-period layout (one capacity row per offer, offers known per column).
    """
    xs, us, ys, ss = (milp.cols[k] for k in ("x", "u", "y", "s"))
    n_u = us.stop - us.start
    cap_rows = np.flatnonzero(milp.row_family == "capacity")
    single = len(milp.x_offer) == xs.stop - xs.start and len(milp.y_offer) == ys.stop - ys.start
    if not single or len(cap_rows) != n_u:
        return None
    cap = milp.A[cap_rows].tocsc()
    if (cap[:, us] != sp.identity(n_u, format="csc")).nnz:
        return None  # capacity rows not one per offer, in offer order
    room = milp.row_upper[cap_rows].astype(float).copy()  # instances each offer may still give
    y_inst = np.asarray(cap[:, ys].sum(axis=0)).ravel()
    caps = _Caps(milp, bound)
    v = np.zeros(milp.n_cols)
    cost = milp.cost

    # 1. training jobs, the dearest (largest) first, each on its cheapest placement that fits
    y_cost = cost[ys]
    jobs = np.unique(milp.y_job)
    cheapest = np.full(int(jobs.max(initial=-1)) + 1, np.inf)
    np.minimum.at(cheapest, milp.y_job, y_cost)
    for job in jobs[np.argsort(-cheapest[jobs], kind="stable")]:
        k = np.flatnonzero(milp.y_job == job)
        k = k[np.lexsort((k, milp.objective[ys.start + k]))]
        fits = room[milp.y_offer[k]] >= y_inst[k] - 1e-9
        added = caps.per_column(ys.start + k)
        ok = fits & caps.allows(added, y_cost[k])
        pick = np.flatnonzero(ok if ok.any() else fits)
        if not len(pick):
            return None
        i = int(pick[0])
        v[ys.start + k[i]] = 1.0
        room[milp.y_offer[k[i]]] -= y_inst[k[i]]
        caps.buy(added[:, i], float(y_cost[k[i]]))

    # 2. api workloads (no replica candidates): their cheapest api offer, whole
    n_w = len(milp.peak_rps)
    s_cost = cost[ss]
    has_x = np.zeros(n_w, bool)
    has_x[milp.x_workload] = True
    for w in np.unique(milp.s_workload[~has_x[milp.s_workload]]) if len(milp.s_workload) else []:
        k = np.flatnonzero(milp.s_workload == w)
        i = k[np.argmin(milp.objective[ss.start + k])]
        v[ss.start + i] = 1.0
        caps.buy(caps.per_column(np.array([ss.start + i]))[:, 0], float(s_cost[i]))

    # 3. inference workloads, the largest peak first, one replica or api share at a time
    chips = np.zeros(n_u)  # chips used per offer
    u_cost = cost[us]
    per_chip = u_cost / np.maximum(milp.u_cpi, 1)
    u_spend = caps.per_column(np.arange(us.start, us.stop))
    order = np.argsort(-milp.peak_rps, kind="stable")
    for w in order[has_x[order]]:
        ks = np.flatnonzero(milp.x_workload == w)
        o, t, r = milp.x_offer[ks], milp.x_chips[ks], milp.x_rps[ks]
        api = np.flatnonzero(milp.s_workload == w) if len(milp.s_workload) else np.zeros(0, int)
        api_added = caps.per_column(ss.start + api)
        demand = float(milp.peak_rps[w])
        need = demand
        api_used = 0.0
        while need > 1e-9 * max(demand, 1.0):
            now = np.ceil(chips[o] / milp.u_cpi[o] - 1e-9)
            after = np.ceil((chips[o] + t) / milp.u_cpi[o] - 1e-9)
            new = after - now
            score = (new * u_cost[o] + _CHIP_TIE * per_chip[o] * t) / np.minimum(r, need)
            score[(after > room[o] + 1e-9) | (r <= 0)] = np.inf
            added = u_spend[:, o] * new[None, :]
            score[~caps.allows(added, new * u_cost[o])] = np.inf
            best = int(np.argmin(score)) if len(score) else -1
            share = min(need / demand, 1.0 - api_used) if demand > 0 else 0.0
            if len(api) and share > 1e-12:
                api_score = s_cost[api] / demand
                api_score[~caps.allows(api_added * share, s_cost[api] * share)] = np.inf
                a = int(np.argmin(api_score))
                if np.isfinite(api_score[a]) and (best < 0 or api_score[a] <= score[best]):
                    v[ss.start + api[a]] += share
                    api_used += share
                    caps.buy(api_added[:, a] * share, float(s_cost[api[a]] * share))
                    need -= share * demand
                    continue
            if best < 0 or not np.isfinite(score[best]):
                return None  # no room anywhere within the caps
            v[xs.start + ks[best]] += 1.0
            chips[o[best]] += t[best]
            need -= r[best]
            caps.buy(added[:, best], float(new[best] * u_cost[o[best]]))
    v = derive(milp, v)
    return v if feasible(milp, v) else None

