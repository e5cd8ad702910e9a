"""The policy constraint families: spot cap, lock-in caps, spend-share caps and survival (N-1).

Each ``define_<family>`` adds its rows to a ``BuildContext`` (``docs/planning-model.md``,
Constraints 4-5 and *Spot*); ``build.build_milp`` calls them in ``FAMILIES`` order.
"""

from __future__ import annotations

import numpy as np

from polyfleet.plan.model_rows import BuildContext, workload_kinds
from polyfleet.plan.tighten import SURVIVAL_REPLICA_ROWS_UP_TO, survival_replicas


def define_spot(ctx: BuildContext) -> None:
    """At most m[w] of an inference workload's peak D on spot: non-spot replicas + api >= (1-m) D.

    Written as ``z[w] - sum_{o spot} r x + D sum_a s >= (1 - m) D``; rows where m >= 1 are
    dropped.  Training jobs with m < 1 have no spot candidates at all (a job is placed whole).
    """
    c = ctx.cand
    inf, _, _ = workload_kinds(c)
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


def spend_terms(ctx: BuildContext, group: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def define_lock_in(ctx: BuildContext) -> None:
    """Dilution-proof caps: no provider / vendor v serves more than cap x D[w] of a service.

    Inference workload w: ``sum_{k of w at v} r x + D sum_{a of w at v} s <= cap D``; api
    workload: ``sum_{a of w at v} s <= cap`` (its demand share).  Training jobs are left
    out (a job runs on one offer; ``max_spend_share`` counts their spend).  Rows for a
    value whose candidates together cannot exceed the cap are dropped.
    """
    c = ctx.cand
    inf, _, api = workload_kinds(c)
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


def define_spend_share(ctx: BuildContext) -> None:
    """For each group capped by ``max_spend_share`` and value v: spend[v] <= cap x T."""
    for group in ("provider", "vendor"):
        cap = getattr(ctx.policy.max_spend_share, group)
        if cap is None or cap >= 1:
            continue
        cols, values, usd = spend_terms(ctx, group)
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


def define_survival(ctx: BuildContext) -> None:
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
    inf, _, _ = workload_kinds(c)
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
