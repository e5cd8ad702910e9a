"""The core constraint families: demand, packing, capacity, api rate limits, spend and budget.

Each ``define_<family>`` adds its rows to a ``BuildContext`` (``docs/planning-model.md``,
Constraints 1-3 and 6); ``build.build_milp`` calls them in ``FAMILIES`` order.
"""

from __future__ import annotations

import numpy as np

from polyfleet.plan.model_rows import BuildContext, workload_kinds


def define_demand(ctx: BuildContext) -> None:
    """Every inference workload served at peak D; each api workload bought once; each job placed."""
    c = ctx.cand
    inf, tr, api = workload_kinds(c)
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


def define_served(ctx: BuildContext) -> None:
    """z[w] = sum_o r[w,o] x[w,o]: requests/s the bought replicas serve (a definition)."""
    c = ctx.cand
    n_w = len(c.workloads)
    names = np.array([w.name for w in c.workloads], dtype=object)
    k = np.arange(len(c.inf_w))
    rows = np.concatenate([np.arange(n_w), c.inf_w])
    cols = np.concatenate([ctx.col("z", np.arange(n_w)), ctx.col("x", k)])
    vals = np.concatenate([np.ones(n_w), -c.inf_rps])
    ctx.rows.add("served", names, rows, cols, vals, 0.0, 0.0)


def define_packing(ctx: BuildContext) -> None:
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


def define_capacity(ctx: BuildContext) -> None:
    """Instances rented plus instances held by training jobs within what the offer has."""
    c = ctx.cand
    n_o = len(c.offers)
    labels = np.array([o.id for o in c.offers], dtype=object)
    rows = np.concatenate([np.arange(n_o), c.tr_o])
    cols = np.concatenate([ctx.col("u", np.arange(n_o)), ctx.col("y", np.arange(len(c.tr_o)))])
    vals = np.concatenate([np.ones(n_o), c.tr_instances.astype(float)])
    ctx.rows.add("capacity", labels, rows, cols, vals, -np.inf, c.offer_avail.astype(float))


def define_api_rate(ctx: BuildContext) -> None:
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


def define_spend(ctx: BuildContext) -> None:
    """T = total spend: instances, training runs and api tokens."""
    paid = np.flatnonzero(ctx.cost)
    rows = np.zeros(len(paid) + 1, int)
    cols = np.concatenate([paid, ctx.col("T", [0])])
    vals = np.concatenate([-ctx.cost[paid], [1.0]])
    ctx.rows.add("spend", np.array(["total"], dtype=object), rows, cols, vals, 0.0, 0.0)


def define_budget(ctx: BuildContext) -> None:
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
