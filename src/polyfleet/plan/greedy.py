"""A greedy whole-replica plan, built without the LP: the incumbent every large solve keeps.

The LP plan path (plan/solve.py ``_lp_plan``) needs the LP relaxation before it has any
plan; on the 300-workload SkyPilot portfolio (125,108 columns) that LP alone can take the
LP's whole share of a 10 s limit on a loaded machine, and the solve then ended with no
plan at all.  This builds one in a fraction of a second from the model's arrays:

1. training jobs, largest first, each on its cheapest placement that still fits the
   offer's capacity (instances rented plus instances held by jobs);
2. api workloads on their cheapest api offer;
3. inference workloads, largest peak demand first, one replica (or api share) at a time
   until every row of the workload holds (demand, survival, spot; lock-in caps and the
   api share are kept): the candidate with the least *marginal* cost per unit of unmet
   row it covers, each row's shortfall as a fraction of its right-hand side (a replica
   that fits in free chips of an instance already rented costs nothing more; one that
   needs a new instance costs that instance; a replica larger than what is missing is
   credited with what is missing only), within the offers' capacity.

Spend-share caps (``spend[g] <= c x T``) are kept by a sufficient rule: a purchase may
raise ``spend[g]`` only up to ``c x max(bound, T)``, ``bound`` being a lower bound on any
plan's total (0 by default); since the final total is at least both, every cap holds at
the end.  Api rate limits are kept; budget rows are not reasoned about but checked at
the end like every other row: a plan that breaks any row of the model is not returned
(None), and the caller relies on the LP's plans.
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


class _Rates:
    """The api-rate rows (tokens per minute an api offer sells, shared by its buyers)."""

    def __init__(self, milp: Milp) -> None:
        rows = np.flatnonzero(milp.row_family == "api-rate")
        ss = milp.cols["s"]
        self.block = milp.A[rows][:, ss.start : ss.stop].toarray()  # few rows, few columns
        self.limit = milp.row_upper[rows].astype(float)
        self.used = np.zeros(len(rows))

    def room(self, api: np.ndarray) -> np.ndarray:
        """Largest share of each api column (indices within s) the rate rows still allow."""
        if not len(self.limit):
            return np.full(len(api), np.inf)
        coef = self.block[:, api]
        with np.errstate(divide="ignore", invalid="ignore"):
            most = np.where(coef > 0, (self.limit - self.used)[:, None] / coef, np.inf)
        return np.maximum(most.min(axis=0, initial=np.inf), 0.0)

    def use(self, i: int, share: float) -> None:
        if len(self.limit):
            self.used += self.block[:, i] * share


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

    # 2. api workloads (no replica candidates): their cheapest api offers, within rate limits
    n_w = len(milp.peak_rps)
    s_cost = cost[ss]
    has_x = np.zeros(n_w, bool)
    has_x[milp.x_workload] = True
    rates = _Rates(milp)
    for w in np.unique(milp.s_workload[~has_x[milp.s_workload]]) if len(milp.s_workload) else []:
        k = np.flatnonzero(milp.s_workload == w)
        left = 1.0
        for i in k[np.argsort(milp.objective[ss.start + k], kind="stable")]:
            share = min(left, float(rates.room(np.array([i]))[0]))
            if share <= 1e-12:
                continue
            v[ss.start + i] = share
            rates.use(i, share)
            caps.buy(caps.per_column(np.array([ss.start + i]))[:, 0] * share, float(s_cost[i] * share))
            left -= share
            if left <= 1e-12:
                break

    # 3. inference workloads, the largest peak first, one replica or api share at a time
    state = _Replicas(milp, v, room, caps, rates)
    order = np.argsort(-milp.peak_rps, kind="stable")
    order = order[has_x[order]]
    for w in order:
        if not state.place(int(w)):
            return None
    plan = derive(milp, state.v)
    return plan if feasible(milp, plan) else None


#: row families a workload's replicas and api shares must cover or stay within, read
#: through the definitions of served (z) and counted (n) replicas
_WORKLOAD_ROWS = ("demand", "survival", "spot", "lock-in", "replicas")
#: most replicas or api shares one workload's placement may add
_MAX_STEPS = 100_000


def _covering_rows(milp: Milp) -> tuple[sp.csr_matrix, np.ndarray]:
    """(matrix over the x then s columns, row indices): the workload rows with z and n
    replaced by their definitions (z = requests/s served, n = counted replicas)."""
    xs, ss, zs = milp.cols["x"], milp.cols["s"], milp.cols["z"]
    cols = np.r_[np.arange(xs.start, xs.stop), np.arange(ss.start, ss.stop)]
    A = milp.A.tocsc()
    rows = np.flatnonzero(np.isin(milp.row_family, _WORKLOAD_ROWS))
    A_i = A[rows]
    eff = A_i[:, cols]
    served = np.flatnonzero(milp.row_family == "served")
    A_s = A[served]
    eff = eff - A_i[:, zs] @ (A_s[:, zs].T @ A_s[:, cols])
    if "n" in milp.cols:
        ns = milp.cols["n"]
        defs = np.flatnonzero((milp.row_family == "replicas") & (milp.row_lower == 0) & (milp.row_upper == 0))
        A_r = A[defs]
        eff = eff - A_i[:, ns] @ (A_r[:, ns].T @ A_r[:, cols])
    return sp.csc_matrix(eff), rows


class _Replicas:
    """Replicas and api shares of inference workloads, placed one workload at a time.

    A workload's placement covers every row of its own (demand, the whole-replica rows,
    survival, spot) and stays within its lock-in caps and api share: each step adds the
    replica (or api share) with the least marginal cost per unit of unmet row it covers,
    each row's shortfall counted as a fraction of its right-hand side.
    """

    def __init__(self, milp: Milp, v: np.ndarray, room: np.ndarray, caps: _Caps, rates: _Rates) -> None:
        self.milp, self.v, self.room, self.caps, self.rates = milp, v, room, caps, rates
        us, ss = milp.cols["u"], milp.cols["s"]
        self.chips = np.zeros(us.stop - us.start)  # chips used per offer
        self.u_cost = milp.cost[us]
        self.s_cost = milp.cost[ss]
        self.per_chip = self.u_cost / np.maximum(milp.u_cpi, 1)
        self.u_spend = caps.per_column(np.arange(us.start, us.stop))
        self.eff, self.rows = _covering_rows(milp)
        self.n_x = milp.cols["x"].stop - milp.cols["x"].start

    def _columns(self, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        milp = self.milp
        ks = np.flatnonzero(milp.x_workload == w)
        api = np.flatnonzero(milp.s_workload == w) if len(milp.s_workload) else np.zeros(0, int)
        return ks, api, self.caps.per_column(milp.cols["s"].start + api)

    def place(self, w: int) -> bool:
        """Cover ``w``'s rows, one replica or api share at a time (False: no room)."""
        milp, v, caps = self.milp, self.v, self.caps
        xs, ss = milp.cols["x"], milp.cols["s"]
        ks, api, api_added = self._columns(w)
        local = np.r_[ks, self.n_x + api]
        block = self.eff[:, local]
        rows = np.unique(block.indices)
        E = block[rows].toarray()
        lo = milp.row_lower[self.rows[rows]]
        hi = milp.row_upper[self.rows[rows]]
        act = E @ np.r_[v[xs.start + ks], v[ss.start + api]]
        weight = 1.0 / np.maximum(np.abs(np.where(np.isfinite(lo), lo, 1.0)), 1e-9)
        # rows counting replicas (whole-replica rows: implied by the rate rows and whole
        # replicas) would rate a tiny replica as high as a large one: they count only
        # when nothing else is short
        counts = np.all((E == 0) | (E == 1), axis=1) & ~np.any(E[:, len(ks) :] != 0, axis=1)
        n_k = len(ks)
        o, t = milp.x_offer[ks], milp.x_chips[ks]
        u_cost, cpi = self.u_cost[o], milp.u_cpi[o]
        E_pos = np.maximum(E, 0.0)
        for _ in range(_MAX_STEPS):
            tol = 1e-9 * np.maximum(1.0, np.abs(lo))
            deficit = np.where(np.isfinite(lo), np.maximum(lo - act, 0.0), 0.0)
            if not (deficit > tol).any():
                return True
            # replicas: one more of each candidate
            short = deficit > tol
            w_rows = np.where(counts & (short & ~counts).any(), 0.0, weight)
            gain = (np.minimum(E_pos[:, :n_k], deficit[:, None]) * w_rows[:, None]).sum(axis=0)
            over = ((act[:, None] + E[:, :n_k] > hi[:, None] + tol[:, None]) & (E[:, :n_k] > 0)).any(axis=0)
            now = np.ceil(self.chips[o] / cpi - 1e-9)
            after = np.ceil((self.chips[o] + t) / cpi - 1e-9)
            new = after - now
            with np.errstate(divide="ignore"):
                score = (new * u_cost + _CHIP_TIE * self.per_chip[o] * t) / gain
            score[(gain <= 1e-12) | over | (after > self.room[o] + 1e-9)] = np.inf
            added = self.u_spend[:, o] * new[None, :]
            x_ok = caps.allows(added, new * u_cost)
            # api shares: the share that closes the row most short, within the share rows
            Ea = E[:, n_k:]
            with np.errstate(divide="ignore", invalid="ignore"):
                close = np.where(Ea > 0, deficit[:, None] / Ea, 0.0).max(axis=0, initial=0.0)
                slack = np.where((Ea > 0) & np.isfinite(hi)[:, None], (hi - act)[:, None] / Ea, np.inf)
                step = np.maximum(np.minimum(close, slack.min(axis=0, initial=np.inf)), 0.0)
                step = np.minimum(step, self.rates.room(api))
                a_gain = (np.minimum(Ea * step[None, :], deficit[:, None]) * w_rows[:, None]).sum(axis=0)
                a_score = self.s_cost[api] * step / a_gain
            a_score[(a_gain <= 1e-12) | (step <= 1e-12)] = np.inf
            a_ok = caps.allows(api_added * step[None, :], self.s_cost[api] * step)
            if not (np.isfinite(score) & x_ok).any() and not (np.isfinite(a_score) & a_ok).any():
                # nothing keeps the caps' rule (a first purchase against a total of 0 never
                # does): the cheapest, left to the final check of every row
                x_ok[:] = True
                a_ok[:] = True
            score[~x_ok] = np.inf
            a_score[~a_ok] = np.inf
            best = int(np.argmin(score)) if n_k else -1
            best_score = score[best] if n_k else np.inf
            if len(api):
                a = int(np.argmin(a_score))
                if np.isfinite(a_score[a]) and a_score[a] <= best_score:
                    v[ss.start + api[a]] += step[a]
                    self.rates.use(api[a], step[a])
                    caps.buy(api_added[:, a] * step[a], float(self.s_cost[api[a]] * step[a]))
                    act += Ea[:, a] * step[a]
                    continue
            if not np.isfinite(best_score):
                return False  # no room anywhere within the caps
            v[xs.start + ks[best]] += 1.0
            self.chips[o[best]] += t[best]
            caps.buy(added[:, best], float(new[best] * u_cost[best]))
            act += E[:, best]
        return False
