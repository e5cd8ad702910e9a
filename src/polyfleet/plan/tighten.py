"""Rows implied by demand, survival and whole replicas that tighten the LP relaxation.

They change no plan (each follows from integrality), only the LP bound HiGHS starts from
and the gap a time-limited plan reports (``docs/planning-model.md``, "Whole replicas").
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from polyfleet.plan.model_rows import BuildContext as _Ctx

#: the survival replica rows (a valid inequality) halve exact solves of small models but
#: grow large ones ~40% in nonzeros, which HiGHS's root then runs past the time limit on
SURVIVAL_REPLICA_ROWS_UP_TO = 2000


def define_min_replicas(ctx: _Ctx) -> None:
    """Whole replicas: sum_k x[w,k] >= ceil(D[w] / max_k r[w,k]) for workloads with no api offer.

    Implied by demand and integrality, so it changes no plan; it only lifts the LP
    relaxation, which otherwise buys a fifth of a replica for a workload that needs one
    (the bound behind the gap a time-limited plan reports, and the rounding's start).
    With api shares the ceiling is not linear in the share, so those workloads are left out.
    """
    c = ctx.cand
    if ctx.elastic == "demand" or not len(c.inf_w):
        return
    n_w = len(c.workloads)
    r_max = np.zeros(n_w)
    np.maximum.at(r_max, c.inf_w, c.inf_rps)
    has_api = np.zeros(n_w, bool)
    has_api[c.api_w] = True
    need = np.where(r_max > 0, np.ceil(c.peak_rps / np.where(r_max > 0, r_max, 1.0) - 1e-9), 0.0)
    ws = np.flatnonzero((need > 0) & ~has_api)
    if not len(ws):
        return
    pos = np.full(n_w, -1)
    pos[ws] = np.arange(len(ws))
    k = np.flatnonzero(pos[c.inf_w] >= 0)
    names = np.array([c.workloads[w].name for w in ws], dtype=object)
    ctx.rows.add("demand", names, pos[c.inf_w[k]], ctx.col("x", k), np.ones(len(k)), need[ws], np.inf)


def survival_replicas(ctx: _Ctx, ww: np.ndarray, pp: np.ndarray, inf_p: np.ndarray, f: float) -> None:
    """Whole replicas after a provider loss (valid inequality, workloads without api offers).

    Without p, counted replicas elsewhere serve f D, so there are at least
    ``ceil(f D / best rate elsewhere)`` of them: ``n[w] - sum_{k at p} x[w,k] >= that``,
    with ``n[w]`` the workload's counted replicas (spot only when spot counts).
    """
    c = ctx.cand
    n_w = len(c.workloads)
    n_p = int(inf_p.max()) + 1 if len(inf_p) else 0
    counted = np.ones(len(c.inf_w), bool) if ctx.policy.spot_counts_for_survival else ~c.offer_spot[c.inf_o]
    has_api = np.zeros(n_w, bool)
    has_api[c.api_w] = True
    keep = ~has_api[ww] & (pp < n_p)
    ww, pp = ww[keep], pp[keep]
    if not len(ww):
        return
    best = np.zeros((n_w, n_p))
    k = np.flatnonzero(counted)
    np.maximum.at(best, (c.inf_w[k], inf_p[k]), c.inf_rps[k])
    top = best.max(axis=1)
    arg = best.argmax(axis=1)
    second = np.sort(best, axis=1)[:, -2] if n_p > 1 else np.zeros(n_w)
    elsewhere = np.where(arg[ww] == pp, second[ww], top[ww])
    ok = elsewhere > 0
    ww, pp, elsewhere = ww[ok], pp[ok], elsewhere[ok]
    need = np.ceil(f * c.peak_rps[ww] / elsewhere - 1e-9)
    # n[w] = sum of counted replicas (a definition row per workload that has such rows)
    ws = np.unique(ww)
    pos = np.full(n_w, -1)
    pos[ws] = np.arange(len(ws))
    kk = k[pos[c.inf_w[k]] >= 0]
    rows = np.concatenate([np.arange(len(ws)), pos[c.inf_w[kk]]])
    cols = np.concatenate([ctx.col("n", ws), ctx.col("x", kk)])
    vals = np.concatenate([np.ones(len(ws)), -np.ones(len(kk))])
    names = np.array([c.workloads[w].name for w in ws], dtype=object)
    ctx.rows.add("replicas", names, rows, cols, vals, 0.0, 0.0)
    # n[w] - sum_{k at p, counted} x >= need
    row_of = np.full((n_w, n_p), -1)
    row_of[ww, pp] = np.arange(len(ww))
    at = kk[row_of[c.inf_w[kk], inf_p[kk]] >= 0]
    rows = np.concatenate([np.arange(len(ww)), row_of[c.inf_w[at], inf_p[at]]])
    cols = np.concatenate([ctx.col("n", ww), ctx.col("x", at)])
    vals = np.concatenate([np.ones(len(ww)), -np.ones(len(at))])
    labels = np.array(
        [f"{c.workloads[w].name} without #{p}" for w, p in zip(ww, pp, strict=True)], dtype=object
    )
    ctx.rows.add("replicas", labels, rows, cols, vals, need, np.inf)
