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
#: passes of re-insertion after the first placement (each stops the search when no cheaper)
REINSERT_PASSES = 1


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
    state = _Replicas(milp, v, room, caps)
    order = np.argsort(-milp.peak_rps, kind="stable")
    order = order[has_x[order]]
    for w in order:
        if not state.place(int(w)):
            return None
    best = derive(milp, state.v)
    if not feasible(milp, best):
        return None
    # re-insertion: each workload taken out and placed again among everything else, so
    # one placed early can use the free chips of instances rented after it
    for _ in range(REINSERT_PASSES):
        for w in order:
            state.remove(int(w))
            if not state.place(int(w)):
                return best
        trial = derive(milp, state.v)
        if not milp.objective @ trial < milp.objective @ best * (1 - 1e-9) or not feasible(milp, trial):
            break
        best = trial
    return best


class _Replicas:
    """Replicas and api shares of inference workloads, placed and removed one workload at a time."""

    def __init__(self, milp: Milp, v: np.ndarray, room: np.ndarray, caps: _Caps) -> None:
        self.milp, self.v, self.room, self.caps = milp, v, room, caps
        us, ss = milp.cols["u"], milp.cols["s"]
        self.chips = np.zeros(us.stop - us.start)  # chips used per offer
        self.u_cost = milp.cost[us]
        self.s_cost = milp.cost[ss]
        self.per_chip = self.u_cost / np.maximum(milp.u_cpi, 1)
        self.u_spend = caps.per_column(np.arange(us.start, us.stop))

    def _columns(self, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        milp = self.milp
        ks = np.flatnonzero(milp.x_workload == w)
        api = np.flatnonzero(milp.s_workload == w) if len(milp.s_workload) else np.zeros(0, int)
        return ks, api, self.caps.per_column(milp.cols["s"].start + api)

    def _instances(self, o: np.ndarray, chips: np.ndarray) -> np.ndarray:
        return np.ceil(chips / self.milp.u_cpi[o] - 1e-9)

    def remove(self, w: int) -> None:
        """Take ``w``'s replicas and api shares out (instances no longer needed are given back)."""
        milp, v = self.milp, self.v
        xs, ss = milp.cols["x"], milp.cols["s"]
        ks, api, api_added = self._columns(w)
        for k in ks[v[xs.start + ks] > 0.5]:
            o = np.array([milp.x_offer[k]])
            chips = self.chips[o] - milp.x_chips[k] * v[xs.start + k]
            drop = self._instances(o, self.chips[o]) - self._instances(o, chips)
            self.chips[o] = chips
            self.caps.buy(-self.u_spend[:, o[0]] * drop[0], -float(drop[0] * self.u_cost[o[0]]))
            v[xs.start + k] = 0.0
        for i, a in enumerate(api):
            share = v[ss.start + a]
            if share > 0:
                self.caps.buy(-api_added[:, i] * share, -float(self.s_cost[a] * share))
                v[ss.start + a] = 0.0

    def place(self, w: int) -> bool:
        """Cover ``w``'s peak demand, one replica or api share at a time (False: no room)."""
        milp, v, caps = self.milp, self.v, self.caps
        xs, ss = milp.cols["x"], milp.cols["s"]
        ks, api, api_added = self._columns(w)
        o, t, r = milp.x_offer[ks], milp.x_chips[ks], milp.x_rps[ks]
        u_cost, cpi = self.u_cost[o], milp.u_cpi[o]
        demand = float(milp.peak_rps[w])
        need, api_used = demand, 0.0
        while need > 1e-9 * max(demand, 1.0):
            now = np.ceil(self.chips[o] / cpi - 1e-9)
            after = np.ceil((self.chips[o] + t) / cpi - 1e-9)
            new = after - now
            score = (new * u_cost + _CHIP_TIE * self.per_chip[o] * t) / np.minimum(r, need)
            score[(after > self.room[o] + 1e-9) | (r <= 0)] = np.inf
            added = self.u_spend[:, o] * new[None, :]
            score[~caps.allows(added, new * u_cost)] = np.inf
            best = int(np.argmin(score)) if len(score) else -1
            share = min(need / demand, 1.0 - api_used) if demand > 0 else 0.0
            if len(api) and share > 1e-12:
                api_score = self.s_cost[api] / demand
                api_score[~caps.allows(api_added * share, self.s_cost[api] * share)] = np.inf
                a = int(np.argmin(api_score))
                if np.isfinite(api_score[a]) and (best < 0 or api_score[a] <= score[best]):
                    v[ss.start + api[a]] += share
                    api_used += share
                    caps.buy(api_added[:, a] * share, float(self.s_cost[api[a]] * share))
                    need -= share * demand
                    continue
            if best < 0 or not np.isfinite(score[best]):
                return False  # no room anywhere within the caps
            v[xs.start + ks[best]] += 1.0
            self.chips[o[best]] += t[best]
            need -= r[best]
            caps.buy(added[:, best], float(new[best] * u_cost[best]))
        return True
