"""What links the months of a monthly plan: extra columns and rows after the month blocks.

``monthly.build_monthly`` stacks one single-period block per month; the functions here add
(``docs/planning-model.md``, Monthly plans): reserved commitments ``c[o,t]`` that hold
capacity for their term, one placement per training job, porting binaries, the cost of
moving capacity, the minimum api allocation and the budget over the whole horizon.
Capacity blocks lock nothing beyond their month, so they add no link.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from polyfleet.plan.build import Milp
from polyfleet.plan.candidates import Candidates
from polyfleet.plan.terms import LOCK_MONTHS
from polyfleet.spec import Spec


class Links:
    """Extra columns (after the month blocks) and rows linking months, as COO triplets."""

    def __init__(self, first_col: int) -> None:
        self.first_col = first_col
        self.n_cols = 0
        self.cost = np.zeros(0)
        self.upper = np.zeros(0)
        self.i: list[np.ndarray] = []
        self.j: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lo: np.ndarray = np.zeros(0)
        self.hi: np.ndarray = np.zeros(0)
        self.family: list[str] = []
        self.label: list[str] = []

    def columns(self, cost: np.ndarray, upper: np.ndarray) -> np.ndarray:
        """Add integer columns; returns their global indices."""
        ids = self.first_col + self.n_cols + np.arange(len(cost))
        self.n_cols += len(cost)
        self.cost = np.concatenate([self.cost, cost])
        self.upper = np.concatenate([self.upper, upper])
        return ids

    def rows(self, family: str, labels: list[str], rows, cols, vals, lo, hi) -> None:
        n0 = len(self.family)
        self.i.append(np.asarray(rows, int) + n0)
        self.j.append(np.asarray(cols, int))
        self.v.append(np.asarray(vals, float))
        self.lo = np.concatenate([self.lo, np.broadcast_to(np.asarray(lo, float), len(labels))])
        self.hi = np.concatenate([self.hi, np.broadcast_to(np.asarray(hi, float), len(labels))])
        self.family += [family] * len(labels)
        self.label += labels

    def matrix(self) -> sp.csr_matrix:
        shape = (len(self.family), self.first_col + self.n_cols)
        if not self.i:
            return sp.csr_matrix(shape)
        return sp.csr_matrix(
            (np.concatenate(self.v), (np.concatenate(self.i), np.concatenate(self.j))), shape
        )


def reserved_mask(cand: Candidates) -> np.ndarray:
    return np.array([o.term in LOCK_MONTHS for o in cand.offers], bool)


def no_training_on_reserved(cand: Candidates, blocks: list[Milp]) -> None:
    """Training jobs run on on-demand or spot offers in monthly plans.

    A reserved offer's instances are committed whole for 12/36 months; a job's hourly run
    cost on it would buy them without any commitment, so those placements are closed.
    """
    closed = reserved_mask(cand)[cand.tr_o] if len(cand.tr_o) else np.zeros(0, bool)
    for b in blocks:
        b.upper[b.cols["y"].start + np.flatnonzero(closed)] = 0.0


def allow_idle_reserved(
    cand: Candidates, blocks: list[Milp], offsets: np.ndarray, A: sp.csr_matrix, row_upper: np.ndarray
) -> None:
    """Reserved instances may sit idle (held until the term ends): drop their no-idle rows."""
    reserved = np.flatnonzero(reserved_mask(cand))
    if not len(reserved):
        return
    row0 = 0
    for t, b in enumerate(blocks):
        u_cols = offsets[t] + b.cols["u"].start + reserved
        sub = A[row0 : row0 + b.A.shape[0]][:, u_cols]
        # a no-idle row holds +cpi x u (the packing row holds -cpi x u)
        no_idle = np.flatnonzero((b.row_family == "packing") & (np.asarray(sub.sum(axis=1)).ravel() > 0))
        row_upper[row0 + no_idle] = np.inf
        row0 += b.A.shape[0]


def add_reserved(
    cand: Candidates, blocks: list[Milp], offsets: np.ndarray, months: int, links: Links
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Commitment columns c[o,t] and the rows that make holdings follow them."""
    reserved = np.flatnonzero(reserved_mask(cand))
    if not len(reserved):
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    n_r = len(reserved)
    lock = np.array([LOCK_MONTHS[cand.offers[o].term] for o in reserved])
    oo = np.tile(reserved, months)  # month-major
    tt = np.repeat(np.arange(months), n_r)
    ll = np.tile(lock, months)
    monthly_usd = cand.offer_usd_per_instance[oo] / months
    tail_usd = monthly_usd * np.maximum(tt + ll - months, 0)
    c = links.columns(tail_usd, cand.offer_avail[oo].astype(float))
    u_col = np.array([offsets[t] + blocks[t].cols["u"].start for t in range(months)])
    u = u_col[tt] + oo  # u[o,t] column per commitment
    labels = [f"{cand.offers[o].id} month {t}" for o, t in zip(oo, tt, strict=True)]
    n = len(oo)
    # holdings are exactly the commitments still running: u[o,t] = sum_{t-L < tau <= t} c[o,tau]
    # (more instances need new commitments; when a term ends its instances go, or renew)
    tau_rows, tau_cols = [np.arange(n)], [u]
    for back in range(int(lock.max())):
        ok = (tt - back >= 0) & (back < ll)
        idx = np.flatnonzero(ok)
        tau_rows.append(idx)
        tau_cols.append(c[idx - back * n_r])
    vals = np.concatenate([np.ones(n), -np.ones(sum(len(r) for r in tau_rows[1:]))])
    links.rows("reserved", labels, np.concatenate(tau_rows), np.concatenate(tau_cols), vals, 0.0, 0.0)
    return oo, tt, tail_usd


def add_training_once(blocks: list[Milp], offsets: np.ndarray, links: Links) -> None:
    """A job is placed once: y[k, t] = y[k, 0] for every later month."""
    n_y = blocks[0].cols["y"].stop - blocks[0].cols["y"].start
    if not n_y or len(blocks) == 1:
        return
    y0 = offsets[0] + blocks[0].cols["y"].start + np.arange(n_y)
    for t in range(1, len(blocks)):
        yt = offsets[t] + blocks[t].cols["y"].start + np.arange(n_y)
        labels = [f"job {k} month {t}" for k in range(n_y)]
        rows = np.concatenate([np.arange(n_y), np.arange(n_y)])
        links.rows(
            "training", labels, rows, np.concatenate([yt, y0]), np.r_[np.ones(n_y), -np.ones(n_y)], 0, 0
        )


def add_porting(
    spec: Spec, cand: Candidates, blocks: list[Milp], offsets: np.ndarray, links: Links
) -> list[tuple[int, str, float]]:
    """Binary per (workload, stack) with a porting cost; replicas there need it bought."""
    accs = cand.accelerators
    offer_stack = np.array([accs[o.accelerator].stack for o in cand.offers], dtype=object)
    port: list[tuple[int, str, float]] = []
    for w, wl in enumerate(cand.workloads):
        for stack, usd in getattr(wl, "port_usd_by_stack", {}).items():
            if usd > 0:
                port.append((w, stack, float(usd)))
    if not port:
        return port
    v = links.columns(np.array([usd for _, _, usd in port]), np.ones(len(port)))
    for p, (w, stack, _) in enumerate(port):
        label = f"{cand.workloads[w].name} on {stack}"
        for t, b in enumerate(blocks):
            k = np.flatnonzero((cand.inf_w == w) & (offer_stack[cand.inf_o] == stack))
            x = offsets[t] + b.cols["x"].start + k
            ub = b.upper[b.cols["x"].start + k]
            rows = np.concatenate([np.arange(len(k)), np.arange(len(k))])
            links.rows("porting", [label] * len(k), rows, np.concatenate([x, np.full(len(k), v[p])]),
                       np.concatenate([np.ones(len(k)), -ub]), -np.inf, 0.0)  # fmt: skip
        k = np.flatnonzero((cand.tr_w == w) & (offer_stack[cand.tr_o] == stack))
        y = offsets[0] + blocks[0].cols["y"].start + k
        rows = np.concatenate([np.arange(len(k)), np.arange(len(k))])
        links.rows("porting", [label] * len(k), rows, np.concatenate([y, np.full(len(k), v[p])]),
                   np.concatenate([np.ones(len(k)), -np.ones(len(k))]), -np.inf, 0.0)  # fmt: skip
    return port


def add_churn(
    spec: Spec, cand: Candidates, blocks: list[Milp], offsets: np.ndarray, commit, links: Links
) -> tuple[np.ndarray, np.ndarray]:
    """Moving capacity costs: instances added to an offer after month 0 pay ``move_hours_per_chip``.

    On-demand and spot offers: ``a[o,t] >= u[o,t] - u[o,t-1]`` (t >= 1), an integer column
    costing ``move_hours_per_chip x chips_per_instance x usd_per_chip_hour``.  Reserved
    offers add instances only by commitment: their commitments after month 0 pay the same
    (added to the commitment column's cost).
    """
    months = len(blocks)
    usd = np.array(
        [spec.policy.move_hours_per_chip * o.chips_per_instance * o.usd_per_chip_hour for o in cand.offers]
    )
    if months < 2 or not usd.any():
        return np.zeros(0, int), np.zeros(0)
    c_offer, c_month, _ = commit
    if len(c_offer):  # commitment columns are the first link columns, month-major
        later = c_month >= 1
        links.cost[np.flatnonzero(later)] += usd[c_offer[later]]
    free = np.flatnonzero(~reserved_mask(cand) & (usd > 0))
    if not len(free):
        return np.zeros(0, int), np.zeros(0)
    oo = np.tile(free, months - 1)
    tt = np.repeat(np.arange(1, months), len(free))
    a = links.columns(usd[oo], cand.offer_avail[oo].astype(float))
    u_col = np.array([offsets[t] + blocks[t].cols["u"].start for t in range(months)])
    n = len(oo)
    rows = np.concatenate([np.arange(n)] * 3)
    cols = np.concatenate([a, u_col[tt] + oo, u_col[tt - 1] + oo])
    vals = np.concatenate([np.ones(n), -np.ones(n), np.ones(n)])
    labels = [f"{cand.offers[o].id} month {t}" for o, t in zip(oo, tt, strict=True)]
    links.rows("churn", labels, rows, cols, vals, 0.0, np.inf)
    return a, usd[oo]


def add_min_api_share(
    spec: Spec, cand: Candidates, blocks: list[Milp], offsets: np.ndarray, links: Links
) -> None:
    """An api allocation is 0 or at least ``min_allocation_share`` of its workload's demand.

    A binary ``b[k,t]`` per api candidate and month: ``s <= b`` and ``s >= m b``.  Without
    it the plan tops demand up with slivers (0.2%) of per-token capacity that come and go.
    """
    m = spec.policy.min_allocation_share
    n_s = len(cand.api_w)
    if m <= 0 or not n_s:
        return
    for t, blk in enumerate(blocks):
        s_cols = offsets[t] + blk.cols["s"].start + np.arange(n_s)
        b = links.columns(np.zeros(n_s), np.ones(n_s))
        labels = [f"api {k} month {t}" for k in range(n_s)]
        rows = np.concatenate([np.arange(n_s), np.arange(n_s)])
        cols = np.concatenate([s_cols, b])
        links.rows("min-share", labels, rows, cols, np.r_[np.ones(n_s), -np.ones(n_s)], -np.inf, 0.0)
        links.rows("min-share", labels, rows, cols, np.r_[np.ones(n_s), -m * np.ones(n_s)], 0.0, np.inf)


def add_budget(spec: Spec, blocks: list[Milp], offsets: np.ndarray, commit, port, links: Links) -> None:
    """Spend of every month, commitments past the horizon and porting within budget_usd."""
    budget = spec.policy.budget_usd
    if budget is None:
        return
    t_cols = np.array([offsets[t] + b.cols["T"].start for t, b in enumerate(blocks)])
    extra = links.first_col + np.arange(links.n_cols)
    cols = np.concatenate([t_cols, extra])
    vals = np.concatenate([np.ones(len(t_cols)), links.cost])
    links.rows("budget", ["budget"], np.zeros(len(cols), int), cols, vals, -np.inf, budget)
