"""Build the planning MILP from candidate arrays (``docs/planning-model.md``).

One ``define_<family>`` function per constraint family, each adding a block of rows
from NumPy index arrays; no Python loop runs per variable.  ``build_milp`` calls them in
order.  Columns (see ``Milp.cols``):

====  =====================================================  =========
x     replicas of inference candidate k                       integer
u     instances rented on offer o for the horizon             integer
y     training candidate k chosen                             binary
s     share of a workload's demand bought from api cand. k    [0, 1]
z     requests/s served by replicas of inference workload w   >= 0
T     total spend over the horizon, USD                       >= 0
e     elastic slack (only when diagnosing infeasibility)      >= 0
====  =====================================================  =========
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from polyfleet.plan.candidates import Candidates
from polyfleet.plan.elastic import add_slack
from polyfleet.plan.tighten import SURVIVAL_REPLICA_ROWS_UP_TO, define_min_replicas, survival_replicas
from polyfleet.spec import ApiWorkload, InferenceWorkload, Policy, TrainingWorkload

#: relative price perturbation per rank step that breaks exact ties toward lower offer ids
TIE_BREAK = 1e-7

FAMILIES = (
    "demand",
    "packing",
    "capacity",
    "api-rate",
    "spot",
    "lock-in",
    "spend-share",
    "survival",
    "budget",
)


@dataclass
class Milp:
    """A built model: arrays ready for HiGHS plus the names needed to read it back."""

    cost: np.ndarray  # true USD per unit of each column
    objective: np.ndarray  # cost plus tie-break, or slack penalties when elastic
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray  # bool per column
    cols: dict[str, slice]
    A: sp.csr_matrix = field(repr=False)
    row_lower: np.ndarray = field(repr=False)
    row_upper: np.ndarray = field(repr=False)
    row_family: np.ndarray = field(repr=False)  # family name per row
    row_label: np.ndarray = field(repr=False)  # workload / group / provider per row
    slack_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # row of each e
    # what a rounding heuristic needs: offer and chips of each x, chips per instance of each
    # u, job of each y
    x_offer: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    x_chips: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    u_cpi: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    y_job: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    x_workload: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    x_rps: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    peak_rps: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # D per workload
    s_workload: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    u_provider: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)  # code per offer
    u_vendor: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)  # code per offer
    y_offer: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)  # offer of each y

    @property
    def n_cols(self) -> int:
        return len(self.cost)


class _Rows:
    """Accumulates row blocks as COO triplets."""

    def __init__(self) -> None:
        self.i: list[np.ndarray] = []
        self.j: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.family: list[np.ndarray] = []
        self.label: list[np.ndarray] = []
        self.n = 0

    def add(
        self,
        family: str,
        labels: np.ndarray,
        rows: np.ndarray,
        cols: np.ndarray,
        vals: np.ndarray,
        lo: np.ndarray,
        hi: np.ndarray,
    ) -> np.ndarray:
        """Add ``len(labels)`` rows; ``rows`` indexes within the block.  Returns row ids."""
        n = len(labels)
        if n == 0:
            return np.zeros(0, int)
        self.i.append(np.asarray(rows, int) + self.n)
        self.j.append(np.asarray(cols, int))
        self.v.append(np.asarray(vals, float))
        self.lo.append(np.broadcast_to(np.asarray(lo, float), n))
        self.hi.append(np.broadcast_to(np.asarray(hi, float), n))
        self.family.append(np.full(n, family, dtype=object))
        self.label.append(np.asarray(labels, dtype=object))
        ids = np.arange(self.n, self.n + n)
        self.n += n
        return ids


@dataclass
class _Ctx:
    cand: Candidates
    policy: Policy
    cols: dict[str, slice]
    cost: np.ndarray
    rows: _Rows
    elastic: str | None
    slack_rows: dict[str, np.ndarray] = field(default_factory=dict)

    def col(self, name: str, index: np.ndarray | int = 0) -> np.ndarray:
        return self.cols[name].start + np.asarray(index, int)


def _kinds(cand: Candidates) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    inf = np.array([isinstance(w, InferenceWorkload) for w in cand.workloads], bool)
    tr = np.array([isinstance(w, TrainingWorkload) for w in cand.workloads], bool)
    api = np.array([isinstance(w, ApiWorkload) for w in cand.workloads], bool)
    return inf, tr, api


def define_demand(ctx: _Ctx) -> None:
    """Every inference workload served at peak D; each api workload bought once; each job placed."""
    c = ctx.cand
    inf, tr, api = _kinds(c)
    names = np.array([w.name for w in c.workloads], dtype=object)
    w_inf = np.flatnonzero(inf)
    if len(w_inf):
        pos = np.full(len(c.workloads), -1)
        pos[w_inf] = np.arange(len(w_inf))
        is_inf_api = inf[c.api_w]
        rows = np.concatenate([np.arange(len(w_inf)), pos[c.api_w[is_inf_api]]])
        cols = np.concatenate([ctx.col("z", w_inf), ctx.col("s", np.flatnonzero(is_inf_api))])
        vals = np.concatenate([np.ones(len(w_inf)), c.peak_rps[c.api_w[is_inf_api]]])
        ids = ctx.rows.add("demand", names[w_inf], rows, cols, vals, c.peak_rps[w_inf], np.inf)
        ctx.slack_rows["demand"] = ids
        # api shares of an inference workload add up to at most its whole demand
        k = np.flatnonzero(is_inf_api)
        ctx.rows.add("demand", names[w_inf], pos[c.api_w[k]], ctx.col("s", k), np.ones(len(k)), -np.inf, 1.0)
    for kind_mask, var, owner in ((api, "s", c.api_w), (tr, "y", c.tr_w)):
        w_idx = np.flatnonzero(kind_mask)
        if not len(w_idx):
            continue
        pos = np.full(len(c.workloads), -1)
        pos[w_idx] = np.arange(len(w_idx))
        k = np.flatnonzero(kind_mask[owner])
        ids = ctx.rows.add("demand", names[w_idx], pos[owner[k]], ctx.col(var, k), np.ones(len(k)), 1.0, 1.0)
        ctx.slack_rows["demand"] = np.concatenate([ctx.slack_rows.get("demand", np.zeros(0, int)), ids])


def define_served(ctx: _Ctx) -> None:
    """z[w] = sum_o r[w,o] x[w,o]: requests/s the bought replicas serve (a definition)."""
    c = ctx.cand
    n_w = len(c.workloads)
    names = np.array([w.name for w in c.workloads], dtype=object)
    k = np.arange(len(c.inf_w))
    rows = np.concatenate([np.arange(n_w), c.inf_w])
    cols = np.concatenate([ctx.col("z", np.arange(n_w)), ctx.col("x", k)])
    vals = np.concatenate([np.ones(n_w), -c.inf_rps])
    ctx.rows.add("served", names, rows, cols, vals, 0.0, 0.0)


def define_packing(ctx: _Ctx) -> None:
    """Replicas' chips fit in the instances rented: sum_w t x <= chips_per_instance u."""
    c = ctx.cand
    n_o = len(c.offers)
    labels = np.array([o.id for o in c.offers], dtype=object)
    rows = np.concatenate([c.inf_o, np.arange(n_o)])
    cols = np.concatenate([ctx.col("x", np.arange(len(c.inf_o))), ctx.col("u", np.arange(n_o))])
    vals = np.concatenate([c.inf_chips.astype(float), -c.offer_cpi.astype(float)])
    ctx.rows.add("packing", labels, rows, cols, vals, -np.inf, 0.0)
    # No idle instance: cpi u - sum t x <= cpi - 1.  Without it a share cap could be met by
    # renting instances nobody uses (spend padding); capacity headroom must be replicas.
    cpi = c.offer_cpi.astype(float)
    ctx.rows.add("packing", labels, rows, cols, -vals, -np.inf, cpi - 1)


def define_capacity(ctx: _Ctx) -> None:
    """Instances rented plus instances held by training jobs within what the offer has."""
    c = ctx.cand
    n_o = len(c.offers)
    labels = np.array([o.id for o in c.offers], dtype=object)
    rows = np.concatenate([np.arange(n_o), c.tr_o])
    cols = np.concatenate([ctx.col("u", np.arange(n_o)), ctx.col("y", np.arange(len(c.tr_o)))])
    vals = np.concatenate([np.ones(n_o), c.tr_instances.astype(float)])
    ctx.rows.add("capacity", labels, rows, cols, vals, -np.inf, c.offer_avail.astype(float))


def define_api_rate(ctx: _Ctx) -> None:
    """Tokens/min bought from an api offer, summed over workloads, within its limit."""
    c = ctx.cand
    limits = np.array([a.max_tokens_per_minute or np.inf for a in c.api_offers])
    limited = np.flatnonzero(np.isfinite(limits))
    if not len(limited):
        return
    pos = np.full(len(c.api_offers), -1)
    pos[limited] = np.arange(len(limited))
    k = np.flatnonzero(np.isfinite(limits[c.api_a]))
    labels = np.array([c.api_offers[a].id for a in limited], dtype=object)
    ctx.rows.add("api-rate", labels, pos[c.api_a[k]], ctx.col("s", k), c.api_tpm[k], -np.inf, limits[limited])


def define_spend(ctx: _Ctx) -> None:
    """T = total spend: instances, training runs and api tokens."""
    paid = np.flatnonzero(ctx.cost)
    rows = np.zeros(len(paid) + 1, int)
    cols = np.concatenate([paid, ctx.col("T", [0])])
    vals = np.concatenate([-ctx.cost[paid], [1.0]])
    ctx.rows.add("spend", np.array(["total"], dtype=object), rows, cols, vals, 0.0, 0.0)


def define_spot(ctx: _Ctx) -> None:
    """At most m[w] of an inference workload's peak D on spot: non-spot replicas + api >= (1-m) D.

    Written as ``z[w] - sum_{o spot} r x + D sum_a s >= (1 - m) D``; rows where m >= 1 are
    dropped.  Training jobs with m < 1 have no spot candidates at all (a job is placed whole).
    """
    c = ctx.cand
    inf, _, _ = _kinds(c)
    capped = np.flatnonzero(inf & (c.spot_cap < 1))
    if not len(capped):
        return
    pos = np.full(len(c.workloads), -1)
    pos[capped] = np.arange(len(capped))
    k = np.flatnonzero((pos[c.inf_w] >= 0) & c.offer_spot[c.inf_o])
    a = np.flatnonzero(pos[c.api_w] >= 0) if len(c.api_w) else np.zeros(0, int)
    rows = np.concatenate([np.arange(len(capped)), pos[c.inf_w[k]], pos[c.api_w[a]]])
    cols = np.concatenate([ctx.col("z", capped), ctx.col("x", k), ctx.col("s", a)])
    vals = np.concatenate([np.ones(len(capped)), -c.inf_rps[k], c.peak_rps[c.api_w[a]]])
    names = np.array([c.workloads[w].name for w in capped], dtype=object)
    rhs = (1 - c.spot_cap[capped]) * c.peak_rps[capped]
    ids = ctx.rows.add("spot", names, rows, cols, vals, rhs, np.inf)
    ctx.slack_rows["spot"] = ids


def _spend_terms(ctx: _Ctx, group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(column, group value, USD per unit) for every term of spend, for provider or vendor.

    A training placement's run is spent at its offer; moving its data (egress) is paid to
    the provider the data sits at (``data_at``), and to no chip vendor.
    """
    c = ctx.cand
    attr = c.offer_provider if group == "provider" else c.offer_vendor
    api_attr = c.api_provider if group == "provider" else c.api_vendor
    n_y = len(c.tr_o)
    y_cols = ctx.col("y", np.arange(n_y))
    cols = [ctx.col("u", np.arange(len(c.offers))), y_cols, ctx.col("s", np.arange(len(c.api_w)))]
    values = [
        attr,
        attr[c.tr_o] if n_y else np.zeros(0, object),
        api_attr[c.api_a] if len(c.api_a) else np.zeros(0, object),
    ]
    usd = [ctx.cost[cols[0]], ctx.cost[y_cols] - c.tr_egress_usd, ctx.cost[cols[2]]]
    moved = np.flatnonzero(c.tr_egress_usd > 0) if n_y else np.zeros(0, int)
    if group == "provider" and len(moved):
        cols.append(y_cols[moved])
        values.append(np.array([c.workloads[w].data_at for w in c.tr_w[moved]], dtype=object))
        usd.append(c.tr_egress_usd[moved])
    col, value, amount = np.concatenate(cols), np.concatenate(values).astype(object), np.concatenate(usd)
    keep = value != ""
    return col[keep], value[keep], amount[keep]


def define_lock_in(ctx: _Ctx) -> None:
    """Dilution-proof caps: no provider / vendor v serves more than cap x D[w] of a service.

    Inference workload w: ``sum_{k of w at v} r x + D sum_{a of w at v} s <= cap D``; api
    workload: ``sum_{a of w at v} s <= cap`` (its demand share).  Training jobs are left
    out (a job runs on one offer; ``max_spend_share`` counts their spend).  Rows for a
    value whose candidates together cannot exceed the cap are dropped.
    """
    c = ctx.cand
    inf, _, api = _kinds(c)
    names = np.array([w.name for w in c.workloads], dtype=object)
    for group in ("provider", "vendor"):
        cap = getattr(ctx.policy.max_share, group)
        if cap is None or cap >= 1:
            continue
        x_val = (c.offer_provider if group == "provider" else c.offer_vendor)[c.inf_o]
        a_attr = c.api_provider if group == "provider" else c.api_vendor
        s_val = a_attr[c.api_a] if len(c.api_a) else np.zeros(0, object)
        k_x = np.flatnonzero(inf[c.inf_w])
        k_s = np.flatnonzero((inf | api)[c.api_w] & (s_val != "")) if len(c.api_w) else np.zeros(0, int)
        w_all = np.concatenate([c.inf_w[k_x], c.api_w[k_s]])
        v_all = np.concatenate([x_val[k_x], s_val[k_s]]).astype(str)
        if not len(w_all):
            continue
        v_names, v_code = np.unique(v_all, return_inverse=True)
        uniq, row = np.unique(w_all * len(v_names) + v_code, return_inverse=True)
        # most each (w, v) could serve: replicas up to their bounds, api shares up to 1
        x_most = c.inf_rps[k_x] * np.floor(
            c.offer_avail[c.inf_o[k_x]] * c.offer_cpi[c.inf_o[k_x]] / np.maximum(c.inf_chips[k_x], 1)
        )
        is_inf_s = inf[c.api_w[k_s]]
        scale_s = np.where(is_inf_s, c.peak_rps[c.api_w[k_s]], 1.0)
        most = np.bincount(row, np.concatenate([x_most, scale_s]), minlength=len(uniq))
        w_of_row = np.zeros(len(uniq), int)
        w_of_row[row] = w_all
        limit = np.where(inf[w_of_row], cap * c.peak_rps[w_of_row], cap)
        binding = most > limit * (1 + 1e-9)
        if not binding.any():
            continue
        new_id = np.full(len(uniq), -1)
        new_id[binding] = np.arange(int(binding.sum()))
        keep = binding[row]
        cols = np.concatenate([ctx.col("x", k_x), ctx.col("s", k_s)])[keep]
        vals = np.concatenate([c.inf_rps[k_x], scale_s])[keep]
        values = v_names[uniq[binding] % len(v_names)]
        labels = np.array(
            [f"{names[w]}: {group}={v}" for w, v in zip(w_of_row[binding], values, strict=True)], dtype=object
        )
        ids = ctx.rows.add("lock-in", labels, new_id[row[keep]], cols, vals, -np.inf, limit[binding])
        ctx.slack_rows["lock-in"] = np.concatenate([ctx.slack_rows.get("lock-in", np.zeros(0, int)), ids])


def define_spend_share(ctx: _Ctx) -> None:
    """For each group capped by ``max_spend_share`` and value v: spend[v] <= cap x T."""
    for group in ("provider", "vendor"):
        cap = getattr(ctx.policy.max_spend_share, group)
        if cap is None or cap >= 1:
            continue
        cols, values, usd = _spend_terms(ctx, group)
        uniq, row = np.unique(values.astype(str), return_inverse=True)
        if not len(uniq):
            continue
        n = len(uniq)
        rows = np.concatenate([row, np.arange(n)])
        all_cols = np.concatenate([cols, np.full(n, ctx.col("T", 0))])
        vals = np.concatenate([usd, np.full(n, -cap)])
        labels = np.array([f"{group}={v}" for v in uniq], dtype=object)
        ids = ctx.rows.add("spend-share", labels, rows, all_cols, vals, -np.inf, 0.0)
        ctx.slack_rows["spend-share"] = np.concatenate(
            [ctx.slack_rows.get("spend-share", np.zeros(0, int)), ids]
        )


def define_survival(ctx: _Ctx) -> None:
    """N-1: without any one provider p, what the plan can use elsewhere serves f x D.

    Counted elsewhere: replicas (spot only when ``spot_counts_for_survival``), api tokens
    bought from offers with no stated quota (``D s``), and each api offer's emergency quota
    (a constant; unlimited only with ``api_fallback: unlimited``).  Written as
    ``z[w] - sum_{o at p} r x [- spot elsewhere] + D sum_{a not at p, no quota} s
    >= f D - sum_{a not at p} quota`` so each row touches the candidates at p, w's spot
    replicas and w's unquoted api shares; rows that hold trivially (an unlimited fallback
    elsewhere, or a right-hand side <= 0) are dropped.
    """
    f = ctx.policy.survive_provider_loss
    c = ctx.cand
    if f <= 0:
        return
    inf, _, _ = _kinds(c)
    providers = np.unique(np.concatenate([c.offer_provider, c.api_provider]).astype(str))
    p_index = {p: i for i, p in enumerate(providers)}
    n_p = len(providers)
    inf_p = np.array([p_index[p] for p in c.offer_provider[c.inf_o]], int)
    api_p = np.array([p_index[p] for p in c.api_provider[c.api_a]], int) if len(c.api_a) else np.zeros(0, int)
    n_w = len(c.workloads)
    unlimited_ok = ctx.policy.api_fallback == "unlimited"
    quoted = np.isfinite(c.api_cap_rps)
    cap = np.zeros((n_w, n_p))
    np.add.at(cap, (c.api_w[quoted], api_p[quoted]), c.api_cap_rps[quoted])
    unlimited_at = np.zeros((n_w, n_p), int)
    if unlimited_ok:
        np.add.at(unlimited_at, (c.api_w, api_p), (~quoted).astype(int))
    n_unlimited = unlimited_at.sum(axis=1, keepdims=True)
    elsewhere = np.where(n_unlimited - unlimited_at > 0, np.inf, cap.sum(axis=1, keepdims=True) - cap)
    present = np.zeros((n_w, n_p), bool)
    present[c.inf_w, inf_p] = True
    present[c.api_w, api_p] = True
    rhs = f * c.peak_rps[:, None] - elsewhere
    need = present & inf[:, None] & (rhs > 0)
    ww, pp = np.nonzero(need)
    if not len(ww):
        return
    row_of = np.full((n_w, n_p), -1)
    row_of[ww, pp] = np.arange(len(ww))
    k = np.flatnonzero(need[c.inf_w, inf_p])
    rows = [np.arange(len(ww)), row_of[c.inf_w[k], inf_p[k]]]
    cols = [ctx.col("z", ww), ctx.col("x", k)]
    vals = [np.ones(len(ww)), -c.inf_rps[k]]
    if not ctx.policy.spot_counts_for_survival:
        # spot replicas at the other providers do not count either: each spot candidate
        # of w enters every row (w, p) with p != its own provider (those at p already do)
        spot = np.flatnonzero(c.offer_spot[c.inf_o])
        R = row_of[c.inf_w[spot]]  # (spot candidates, providers): row id or -1
        hit = (R >= 0) & (np.arange(n_p)[None, :] != inf_p[spot][:, None])
        i, p = np.nonzero(hit)
        rows.append(R[i, p])
        cols.append(ctx.col("x", spot[i]))
        vals.append(-c.inf_rps[spot[i]])
    if len(c.api_w) and not unlimited_ok:
        # tokens bought from an api offer with no stated quota count where it is not lost
        free = np.flatnonzero(~quoted)
        R = row_of[c.api_w[free]]
        hit = (R >= 0) & (np.arange(n_p)[None, :] != api_p[free][:, None])
        i, p = np.nonzero(hit)
        rows.append(R[i, p])
        cols.append(ctx.col("s", free[i]))
        vals.append(c.peak_rps[c.api_w[free[i]]])
    rows, cols, vals = np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)
    names = np.array([w.name for w in c.workloads], dtype=object)
    labels = np.array(
        [f"{names[w]} without {providers[p]}" for w, p in zip(ww, pp, strict=True)], dtype=object
    )
    ids = ctx.rows.add("survival", labels, rows, cols, vals, rhs[ww, pp], np.inf)
    ctx.slack_rows["survival"] = ids
    if ctx.elastic != "survival" and len(c.inf_w) <= SURVIVAL_REPLICA_ROWS_UP_TO:
        survival_replicas(ctx, ww, pp, inf_p, f)


def define_budget(ctx: _Ctx) -> None:
    """T <= budget_usd."""
    budget = ctx.policy.budget_usd
    if budget is None:
        return
    ids = ctx.rows.add(
        "budget",
        np.array(["budget"], dtype=object),
        np.zeros(1, int),
        ctx.col("T", [0]),
        np.ones(1),
        -np.inf,
        budget,
    )
    ctx.slack_rows["budget"] = ids


_DEFINE = {
    "demand": define_demand,
    "packing": define_packing,
    "capacity": define_capacity,
    "api-rate": define_api_rate,
    "spot": define_spot,
    "lock-in": define_lock_in,
    "spend-share": define_spend_share,
    "survival": define_survival,
    "budget": define_budget,
}


def _layout(cand: Candidates) -> dict[str, slice]:
    sizes = {
        "x": len(cand.inf_w),
        "u": len(cand.offers),
        "y": len(cand.tr_w),
        "s": len(cand.api_w),
        "z": len(cand.workloads),
        "n": len(cand.workloads),
        "T": 1,
    }
    cols, start = {}, 0
    for name, size in sizes.items():
        cols[name] = slice(start, start + size)
        start += size
    return cols


def _bounds(cand: Candidates, cols: dict[str, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = cols["T"].stop
    lower = np.zeros(n)
    upper = np.full(n, np.inf)
    integer = np.zeros(n, bool)
    cpi = cand.offer_cpi[cand.inf_o]
    upper[cols["x"]] = np.floor(cand.offer_avail[cand.inf_o] * cpi / np.maximum(cand.inf_chips, 1))
    upper[cols["u"]] = cand.offer_avail
    upper[cols["y"]] = 1.0
    upper[cols["s"]] = 1.0
    inf, _, _ = _kinds(cand)
    upper[cols["z"]] = np.where(inf, np.inf, 0.0)
    upper[cols["n"]] = np.where(inf, np.inf, 0.0)
    integer[cols["x"]] = integer[cols["u"]] = integer[cols["y"]] = True
    return lower, upper, integer


def build_milp(
    cand: Candidates, policy: Policy, *, families: tuple[str, ...] = FAMILIES, elastic: str | None = None
) -> Milp:
    """The MILP for ``cand`` under ``policy`` with the given constraint families.

    With ``elastic`` set to a family name, that family's rows get a non-negative slack
    column each and the objective becomes the total slack (scaled per row to a fraction),
    so the solution shows which workload, group or provider cannot be met.
    """
    cols = _layout(cand)
    lower, upper, integer = _bounds(cand, cols)
    cost = np.zeros(cols["T"].stop)
    cost[cols["u"]] = cand.offer_usd_per_instance
    cost[cols["y"]] = cand.tr_usd
    cost[cols["s"]] = cand.api_usd
    ctx = _Ctx(cand=cand, policy=policy, cols=cols, cost=cost, rows=_Rows(), elastic=elastic)
    define_served(ctx)
    define_spend(ctx)
    if "demand" in families:
        define_min_replicas(ctx)
    for family in FAMILIES:
        if family in families:
            _DEFINE[family](ctx)
    rows = ctx.rows
    n_cols = len(cost)
    A = sp.csr_matrix(
        (np.concatenate(rows.v), (np.concatenate(rows.i), np.concatenate(rows.j))), shape=(rows.n, n_cols)
    )
    row_lower, row_upper = np.concatenate(rows.lo), np.concatenate(rows.hi)
    objective = _tie_broken(cost, cols, cand)
    slack_rows = np.zeros(0, int)
    if elastic is not None:
        slack_rows = ctx.slack_rows.get(elastic, np.zeros(0, int))
        A, objective, lower, upper, integer, cost = add_slack(
            A, row_lower, row_upper, slack_rows, lower, upper, integer, cost
        )
    return Milp(
        cost=cost,
        objective=objective,
        lower=lower,
        upper=upper,
        integer=integer,
        cols=cols,
        A=A.tocsr(),
        row_lower=row_lower,
        row_upper=row_upper,
        row_family=np.concatenate(rows.family),
        row_label=np.concatenate(rows.label),
        slack_rows=slack_rows,
        x_offer=cand.inf_o,
        x_chips=cand.inf_chips,
        u_cpi=cand.offer_cpi,
        y_job=cand.tr_w,
        x_workload=cand.inf_w,
        x_rps=cand.inf_rps,
        peak_rps=cand.peak_rps,
        s_workload=cand.api_w,
        u_provider=_codes(np.array([o.provider for o in cand.offers], dtype=object)),
        u_vendor=_codes(np.asarray(cand.offer_vendor, dtype=object)),
        y_offer=cand.tr_o,
    )


def _codes(values: np.ndarray) -> np.ndarray:
    """Integer code per entry (equal values, equal codes; sorted order)."""
    return np.unique(values, return_inverse=True)[1] if len(values) else np.zeros(0, int)


def _tie_broken(cost: np.ndarray, cols: dict[str, slice], cand: Candidates) -> np.ndarray:
    """Cost with a 1e-7 relative nudge per rank so exact ties go to the lower offer id."""
    objective = cost.copy()
    # a replica costs a nudge of its chips' share of the instance, so spare chips in an
    # instance already rented are not filled with replicas nobody asked for
    per_chip = cand.offer_usd_per_instance[cand.inf_o] / cand.offer_cpi[cand.inf_o]
    objective[cols["x"]] = TIE_BREAK * per_chip * cand.inf_chips
    rank_u = np.arange(len(cand.offers)) / max(len(cand.offers), 1)
    objective[cols["u"]] *= 1 + TIE_BREAK * rank_u
    if len(cand.tr_o):
        objective[cols["y"]] *= 1 + TIE_BREAK * cand.tr_o / max(len(cand.offers), 1)
    if len(cand.api_a):
        objective[cols["s"]] *= 1 + TIE_BREAK * cand.api_a / max(len(cand.api_offers), 1)
    return objective
