"""Monthly plans: every month of the horizon in one MILP (``docs/planning-model.md``, Monthly plans).

Each month is the single-period model of that month (``build_milp`` on candidates whose
demand, capacity, prices and training load are the month's), and the months are stacked
block-diagonally.  What ties months together is added as extra columns and rows:

* training jobs: one placement for the whole horizon (``y`` equal in every month);
* reserved offers (``reserved-1y``/``-3y``): ``c[o,t]`` instances committed in month t are
  held (and paid) for 12/36 months, so holdings can only fall as commitments expire;
  months past the horizon are charged to the plan (the contract obliges them);
  capacity blocks (``capacity-block``) lock nothing beyond the month they are booked for:
  each month's instances are that month's booking (listed in ``commitments``);
* porting: a binary per (workload, stack) with a one-off cost, needed before any replica
  of the workload runs on that stack;
* the budget, on the whole horizon.

Lock-in caps and survival hold every month (they are rows of each month's block).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from polyfleet.plan.build import Milp, build_milp
from polyfleet.plan.candidates import HOURS_PER_MONTH, Candidates
from polyfleet.plan.diagnose import diagnose
from polyfleet.plan.result import Infeasibility, Plan, read_plan
from polyfleet.plan.solve import Solution, SolveOptions, Status, solve_milp
from polyfleet.plan.terms import BLOCK_TERM, LOCK_MONTHS
from polyfleet.spec import ApiWorkload, InferenceWorkload, Spec

#: offer fields a horizon purchase row repeats from its monthly rows
_OFFER_KEYS = ("offer", "provider", "vendor", "accelerator", "region", "term")


@dataclass
class MonthlyMilp:
    """The stacked model and what is needed to read each month back."""

    milp: Milp
    months: list[Candidates]
    blocks: list[Milp]
    offsets: np.ndarray  # first column of each month's block
    commit_offer: np.ndarray  # offer index of each commitment column (month-major)
    commit_month: np.ndarray
    commit_tail_usd: np.ndarray  # USD per committed instance for months past the horizon
    port: list[tuple[int, str, float]]  # (workload, stack, usd) per porting column
    churn_cols: np.ndarray  # column of each churn variable a[o,t] (instances added in month t)
    churn_usd: np.ndarray  # USD per instance added
    first_month: np.ndarray  # first usable month per offer
    growth: np.ndarray  # demand multiplier per (workload, month)


def growth(spec: Spec, cand: Candidates, months: int) -> np.ndarray:
    """Demand multiplier per (workload, month) relative to the spec's stated rate."""
    g = np.ones((len(cand.workloads), months))
    t = np.arange(months)
    for w, wl in enumerate(cand.workloads):
        if isinstance(wl, InferenceWorkload) and wl.requests_per_s_by_month is not None:
            g[w] = np.asarray(wl.requests_per_s_by_month) / wl.requests_per_s
        elif isinstance(wl, InferenceWorkload | ApiWorkload):
            g[w] = (1 + wl.growth_per_month) ** t
    return g


def _month(cand: Candidates, t: int, months: int, g: np.ndarray, first: np.ndarray) -> Candidates:
    """Candidates of month t: that month's demand, capacity, one month of prices, training load."""
    run_months = np.maximum(np.ceil(cand.tr_hours / HOURS_PER_MONTH), 1)
    left = np.maximum(cand.tr_hours - HOURS_PER_MONTH * t, 0)
    # a run longer than the horizon is charged whole: its last month takes the remainder
    in_month = left if t == months - 1 else np.minimum(left, HOURS_PER_MONTH)
    share = np.divide(in_month, cand.tr_hours, out=np.zeros_like(in_month), where=cand.tr_hours > 0)
    return replace(
        cand,
        peak_rps=cand.peak_rps * g[:, t],
        offer_usd_per_instance=cand.offer_usd_per_instance / months,
        offer_avail=np.where(t >= first, cand.offer_avail, 0),
        api_usd=cand.api_usd / months * g[cand.api_w, t],
        api_tpm=cand.api_tpm * g[cand.api_w, t],
        tr_instances=np.where(t < run_months, cand.tr_instances, 0),
        # the run is paid by its hours in each month; moving its data once, in month 0
        tr_usd=(cand.tr_usd - cand.tr_egress_usd) * share + cand.tr_egress_usd * (t == 0),
        tr_egress_usd=cand.tr_egress_usd * (t == 0),
    )


def build_monthly(spec: Spec, cand: Candidates) -> MonthlyMilp:
    """Stack one block per month and add the rows that link months (see the module docstring)."""
    months = int(spec.horizon_months)
    g = growth(spec, cand, months)
    q = spec.policy.plan_arrival_quantile
    first = np.array([o.first_month(q) for o in cand.offers], int)
    policy = spec.policy.model_copy(update={"budget_usd": None})
    month_cands = [_month(cand, t, months, g, first) for t in range(months)]
    blocks = [build_milp(c, policy) for c in month_cands]
    _no_training_on_reserved(cand, blocks)
    sizes = np.array([b.n_cols for b in blocks])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_month_cols = int(sizes.sum())

    row_upper = np.concatenate([b.row_upper for b in blocks])
    A = sp.block_diag([b.A for b in blocks], format="csr")
    _allow_idle_reserved(cand, blocks, offsets, A, row_upper)

    links = _Links(n_month_cols)
    commit = _reserved(cand, blocks, offsets, months, links)
    _training_once(blocks, offsets, links)
    port = _porting(spec, cand, blocks, offsets, links)
    churn_cols, churn_usd = _churn(spec, cand, blocks, offsets, commit, links)
    _min_api_share(spec, cand, blocks, offsets, links)
    _budget(spec, blocks, offsets, commit, port, links)

    n_extra = links.n_cols
    A = sp.vstack([sp.hstack([A, sp.csr_matrix((A.shape[0], n_extra))]), links.matrix()], format="csr")
    cost = np.concatenate([*(b.cost for b in blocks), links.cost])
    milp = Milp(
        cost=cost,
        objective=np.concatenate([*(b.objective for b in blocks), links.cost]),
        lower=np.concatenate([*(b.lower for b in blocks), np.zeros(n_extra)]),
        upper=np.concatenate([*(b.upper for b in blocks), links.upper]),
        integer=np.concatenate([*(b.integer for b in blocks), np.ones(n_extra, bool)]),
        cols={"all": slice(0, len(cost))},
        A=A,
        row_lower=np.concatenate([*(b.row_lower for b in blocks), links.lo]),
        row_upper=np.concatenate([row_upper, links.hi]),
        row_family=np.concatenate([*(b.row_family for b in blocks), np.array(links.family, dtype=object)]),
        row_label=np.concatenate([*(b.row_label for b in blocks), np.array(links.label, dtype=object)]),
    )
    return MonthlyMilp(
        milp,
        month_cands,
        blocks,
        offsets,
        *commit,
        port=port,
        churn_cols=churn_cols,
        churn_usd=churn_usd,
        first_month=first,
        growth=g,
    )


class _Links:
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


def _reserved_mask(cand: Candidates) -> np.ndarray:
    return np.array([o.term in LOCK_MONTHS for o in cand.offers], bool)


def _no_training_on_reserved(cand: Candidates, blocks: list[Milp]) -> None:
    """Training jobs run on on-demand or spot offers in monthly plans.

    A reserved offer's instances are committed whole for 12/36 months; a job's hourly run
    cost on it would buy them without any commitment, so those placements are closed.
    """
    closed = _reserved_mask(cand)[cand.tr_o] if len(cand.tr_o) else np.zeros(0, bool)
    for b in blocks:
        b.upper[b.cols["y"].start + np.flatnonzero(closed)] = 0.0


def _allow_idle_reserved(
    cand: Candidates, blocks: list[Milp], offsets: np.ndarray, A: sp.csr_matrix, row_upper: np.ndarray
) -> None:
    """Reserved instances may sit idle (held until the term ends): drop their no-idle rows."""
    reserved = np.flatnonzero(_reserved_mask(cand))
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


def _reserved(
    cand: Candidates, blocks: list[Milp], offsets: np.ndarray, months: int, links: _Links
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Commitment columns c[o,t] and the rows that make holdings follow them."""
    reserved = np.flatnonzero(_reserved_mask(cand))
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


def _training_once(blocks: list[Milp], offsets: np.ndarray, links: _Links) -> None:
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


def _porting(
    spec: Spec, cand: Candidates, blocks: list[Milp], offsets: np.ndarray, links: _Links
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


def _churn(
    spec: Spec, cand: Candidates, blocks: list[Milp], offsets: np.ndarray, commit, links: _Links
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
    free = np.flatnonzero(~_reserved_mask(cand) & (usd > 0))
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


def _min_api_share(
    spec: Spec, cand: Candidates, blocks: list[Milp], offsets: np.ndarray, links: _Links
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


def _budget(spec: Spec, blocks: list[Milp], offsets: np.ndarray, commit, port, links: _Links) -> None:
    """Spend of every month, commitments past the horizon and porting within budget_usd."""
    budget = spec.policy.budget_usd
    if budget is None:
        return
    t_cols = np.array([offsets[t] + b.cols["T"].start for t, b in enumerate(blocks)])
    extra = links.first_col + np.arange(links.n_cols)
    cols = np.concatenate([t_cols, extra])
    vals = np.concatenate([np.ones(len(t_cols)), links.cost])
    links.rows("budget", ["budget"], np.zeros(len(cols), int), cols, vals, -np.inf, budget)


def plan_monthly(spec: Spec, cand: Candidates, options: SolveOptions) -> Plan:
    """Solve every month at once; a ``Plan`` whose ``months`` hold each month's plan."""
    start = time.perf_counter()
    model = build_monthly(spec, cand)
    build_seconds = time.perf_counter() - start
    sol = solve_milp(model.milp, replace(options, rounding_start_above=math.inf))
    months = int(spec.horizon_months)
    if sol.status in (Status.INFEASIBLE, Status.UNKNOWN):
        info = (
            Infeasibility("time-limit", "", f"no plan within the time limit ({options.time_limit_s:g} s)")
            if sol.status == Status.UNKNOWN
            else _diagnose(spec, model, options)
        )
        return Plan(status=sol.status, horizon_months=months, solve_seconds=sol.seconds,
                    build_seconds=build_seconds, infeasibility=info)  # fmt: skip
    month_plans = []
    for t, (c, b) in enumerate(zip(model.months, model.blocks, strict=True)):
        values = sol.values[model.offsets[t] : model.offsets[t] + b.n_cols]
        month_sol = Solution(sol.status, values, float("nan"), sol.gap, 0.0)
        month_plan = read_plan(c, b, month_sol, spec.policy, 1.0).to_dict()
        month_plan.pop("commitments", None)  # the horizon's commitments are listed once, below
        for w, workload in enumerate(month_plan["workloads"]):  # the month's demand, not the base
            demand = workload["demand"]
            for key in ("requests_per_s", "mtok_in_per_month", "mtok_out_per_month"):
                if key in demand:
                    demand[key] = round(demand[key] * float(model.growth[w, t]), 6)
        month_plans.append(month_plan)
    first = int(model.offsets[-1] + model.blocks[-1].n_cols)  # the first link column
    n_c, n_p = len(model.commit_offer), len(model.port)
    commits = np.rint(sol.values[first : first + n_c]).astype(int)
    ported = np.rint(sol.values[first + n_c : first + n_c + n_p]).astype(int)
    moved = np.rint(sol.values[model.churn_cols]).astype(int) if len(model.churn_cols) else np.zeros(0, int)
    return _assemble(spec, model, sol, month_plans, commits, ported, build_seconds, moved)


def _diagnose(spec: Spec, model: MonthlyMilp, options: SolveOptions) -> Infeasibility:
    """The first month infeasible on its own, else the links between months."""
    policy = spec.policy.model_copy(update={"budget_usd": None})
    for t, (c, b) in enumerate(zip(model.months, model.blocks, strict=True)):
        if solve_milp(b, options).status == Status.INFEASIBLE:
            from polyfleet.plan.build import FAMILIES

            info = diagnose(c, policy, FAMILIES, options)
            return Infeasibility(info.family, info.subject, f"month {t}: {info.message}")
    names = ", ".join(w.name for w in model.months[0].workloads)
    return Infeasibility(
        "months",
        names,
        f"every month can be planned alone, but not all together for workloads {names}: reserved "
        "commitments, one placement per training job, porting or the budget over the whole "
        "horizon cannot all be met",
    )


def _assemble(
    spec: Spec,
    model: MonthlyMilp,
    sol: Solution,
    month_plans: list[dict[str, Any]],
    commits: np.ndarray,
    ported: np.ndarray,
    build_seconds: float,
    moved: np.ndarray,
) -> Plan:
    """Horizon totals, per-offer instances by month, and the migration schedule."""
    months = len(month_plans)
    cand = model.months[0]
    tail = float(commits @ model.commit_tail_usd)
    port_usd = float(sum(usd for (_, _, usd), on in zip(model.port, ported, strict=True) if on))
    # moving capacity: instances added after month 0 (on-demand/spot) and later commitments
    later = model.commit_month >= 1
    move_rate = np.array(
        [spec.policy.move_hours_per_chip * o.chips_per_instance * o.usd_per_chip_hour for o in cand.offers]
    )
    move_usd = float(moved @ model.churn_usd) + float(commits[later] @ move_rate[model.commit_offer[later]])
    total = sum(p["total_usd"] for p in month_plans) + tail + port_usd + move_usd
    by_offer: dict[str, dict[str, Any]] = {}
    for t, p in enumerate(month_plans):
        for purchase in p["purchases"]:
            row = by_offer.setdefault(
                purchase["offer"],
                {k: purchase[k] for k in _OFFER_KEYS if k in purchase}
                | {"instances_by_month": [0] * months, "usd": 0.0},
            )
            row["instances_by_month"][t] = purchase.get("instances", 0)
            row["usd"] = round(row["usd"] + purchase["usd"], 2)
    commitments = [
        {"offer": cand.offers[o].id, "month": int(t), "instances": int(n),
         "term": cand.offers[o].term, "usd_after_horizon": round(float(n * tail_usd), 2)}
        for o, t, n, tail_usd in zip(model.commit_offer, model.commit_month, commits,
                                     model.commit_tail_usd, strict=True) if n > 0
    ]  # fmt: skip
    # capacity blocks: each month's instances are booked for that month, no lock beyond it
    commitments += [
        {"offer": row["offer"], "month": t, "instances": int(n), "term": BLOCK_TERM, "usd_after_horizon": 0.0}
        for row in by_offer.values() if row.get("term") == BLOCK_TERM
        for t, n in enumerate(row["instances_by_month"]) if n > 0
    ]  # fmt: skip
    for c in commitments:  # months past the horizon are the reserved offer's spend too
        row = by_offer.get(c["offer"])
        if row is not None:
            row["usd"] = round(row["usd"] + c["usd_after_horizon"], 2)
    porting = [
        {"workload": cand.workloads[w].name, "stack": stack, "usd": usd}
        for (w, stack, usd), on in zip(model.port, ported, strict=True)
        if on
    ]
    spend: dict[str, float] = {}
    for row in by_offer.values():
        spend[row["provider"]] = spend.get(row["provider"], 0.0) + row["usd"]
    provider_total = sum(spend.values())
    purchases = list(by_offer.values()) + [
        {"offer": f"port {p['workload']} to {p['stack']}", "provider": "", "vendor": "", "accelerator": None,
         "term": "one-off", "instances_by_month": [], "usd": p["usd"]}
        for p in porting
    ]  # fmt: skip
    if move_usd > 0:  # moving capacity between months (docs: Monthly plans), paid to no provider
        purchases.append({"offer": "moves", "provider": "", "vendor": "", "accelerator": None,
                          "term": "one-off", "instances_by_month": [],
                          "usd": round(move_usd, 2)})  # fmt: skip
    result = Plan(
        status=sol.status,
        horizon_months=months,
        total_usd=total,
        solve_seconds=sol.seconds,
        build_seconds=build_seconds,
        gap=sol.gap,
        limit=sol.limit,
        purchases=purchases,
        workloads=[],
        shares={
            "provider": {k: round(v / provider_total, 6) for k, v in sorted(spend.items())}
            if provider_total
            else {}
        },
        survival={},
        policy=month_plans[0]["policy"],
    )
    result.monthly = {
        "months": month_plans,
        "schedule": schedule(month_plans),
        "commitments": commitments,
        "porting": [
            {"workload": cand.workloads[w].name, "stack": stack, "usd": usd}
            for (w, stack, usd), on in zip(model.port, ported, strict=True)
            if on
        ],
        "commitment_usd_after_horizon": round(tail, 2),
        "move_usd": round(move_usd, 2),
        "first_usable_month": {cand.offers[o].id: int(m) for o, m in enumerate(model.first_month) if m > 0},
    }
    return result


def schedule(month_plans: list[dict[str, Any]]) -> list[str]:
    """What changes month to month, per workload: the migration story in words."""
    lines: list[str] = []
    before: dict[str, dict[str, int | float]] = {}
    for t, p in enumerate(month_plans):
        for w in p["workloads"]:
            now = {a["offer"]: (a["replicas"] or round(a["share"], 3)) for a in w["allocations"]}
            now = {offer: n for offer, n in now.items() if n}  # shares that round to 0 are noise
            old = before.get(w["name"], {})
            if now != old:
                added = [f"+{o} ({n})" for o, n in now.items() if o not in old]
                dropped = [f"-{o}" for o in old if o not in now]
                changed = [f"{o} {old[o]}->{n}" for o, n in now.items() if o in old and old[o] != n]
                lines.append(f"month {t}: {w['name']}: " + ", ".join(added + changed + dropped))
            before[w["name"]] = now
    return lines
