"""One scenario's second-stage LP (``docs/deals.md``, The model).

Columns are added period by period; the first stage (each deal's sign and size) enters as
fixed columns at the end, so that HiGHS's reduced costs at them are the subgradient the
decomposition cuts with, and a new first stage is only a change of their bounds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from polyfleet.deals.problem import DealProblem
from polyfleet.deals.scenarios import Scenarios

#: routed list spend earns back slightly less than it costs, so that capacity a commitment
#: would pay for anyway is not bought for nothing (keeps "unused commitment" canonical)
ROUTE_TIE_BREAK = 1e-7


@dataclass
class Lp:
    """Arrays of one scenario's LP, and where to read what back."""

    cost: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    A: sp.csc_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    first: np.ndarray  # column of each first-stage value: (sign, size) per deal
    unserved: np.ndarray  # columns of unserved demand (inference rps per period, api share)
    unserved_weight: np.ndarray  # multiplies the value into requests/s-months or share-months
    #: per spend deal, per deal year: (payment column, routed-usage columns)
    shortfall: dict[int, list[tuple[int, np.ndarray]]] = field(default_factory=dict)
    #: per reservation, per period: (months, active share, replica columns, instances per replica)
    idle: dict[int, list[tuple]] = field(default_factory=dict)


class _Cols:
    def __init__(self) -> None:
        self.cost: list[np.ndarray] = []
        self.lo: list[np.ndarray] = []
        self.hi: list[np.ndarray] = []
        self.n = 0

    def add(self, cost, lo=0.0, hi=np.inf) -> np.ndarray:
        cost = np.atleast_1d(np.asarray(cost, float))
        n = len(cost)
        self.cost.append(cost)
        self.lo.append(np.broadcast_to(np.asarray(lo, float), n).copy())
        self.hi.append(np.broadcast_to(np.asarray(hi, float), n).copy())
        ids = np.arange(self.n, self.n + n)
        self.n += n
        return ids


class _Rows:
    def __init__(self) -> None:
        self.i: list[np.ndarray] = []
        self.j: list[np.ndarray] = []
        self.v: list[np.ndarray] = []
        self.lo: list[float] = []
        self.hi: list[float] = []

    def add(self, cols, vals, lo=-np.inf, hi=np.inf) -> None:
        cols = np.asarray(cols, int)
        self.i.append(np.full(len(cols), len(self.lo)))
        self.j.append(cols)
        self.v.append(np.asarray(vals, float))
        self.lo.append(float(lo))
        self.hi.append(float(hi))

    def group(self, row_of: np.ndarray, cols, vals, lo: np.ndarray, hi: np.ndarray) -> None:
        """Many rows at once: entry e goes to new row ``row_of[e]`` (0..len(lo)-1)."""
        n0 = len(self.lo)
        self.i.append(np.asarray(row_of, int) + n0)
        self.j.append(np.asarray(cols, int))
        self.v.append(np.asarray(vals, float))
        self.lo.extend(np.asarray(lo, float).tolist())
        self.hi.extend(np.asarray(hi, float).tolist())


def scenario_lp(pb: DealProblem, sc: Scenarios, s: int) -> Lp:
    """The LP of scenario ``s`` of ``sc``; the first stage is fixed at 0 until set."""
    cols, rows = _Cols(), _Rows()
    n_w, n_o = len(pb.workload_names), len(pb.o_id)
    arrival = np.where(pb.o_uncertain >= 0, sc.arrival[s][np.maximum(pb.o_uncertain, 0)], pb.o_first) \
        if sc.arrival.shape[1] else pb.o_first  # fmt: skip
    deals = pb.deals
    unserved, unserved_w = [], []
    spend_a: dict[int, list[tuple[int, int]]] = {d: [] for d, t in enumerate(deals) if t.kind == "spend"}
    block_rows: dict[int, list[tuple]] = {}
    # per-scenario deal columns first (they are referenced from period rows)
    exit_e: dict[int, int] = {}
    cancel_q: dict[int, int] = {}
    for d, t in enumerate(deals):
        if t.exit_month is not None and t.kind == "spend":
            exit_e[d] = int(cols.add(0.0, 0.0, 1.0)[0])
        if t.exit_month is not None and t.kind == "reservation":
            after = t.end_month - t.exit_month
            refund = (1 - t.penalty_share) * t.usd_per_instance_month * after
            cancel_q[d] = int(cols.add(-refund)[0])

    def ref(d: int, which: int) -> int:
        return -1 - (2 * d + which)  # negative placeholder resolved later

    prices_k = pb.k_group
    has_k = np.zeros(n_o, bool)
    has_k[pb.k_o] = True
    surv_w, surv_kr, surv_k, surv_ar, surv_a = _survival_pattern(pb)
    cap_patterns = [
        (cap, _share_pattern(pb, k_code, a_code))
        for cap, k_code, a_code in (
            (pb.capacity_provider_cap, pb.o_provider[pb.k_o], pb.a_provider),
            (pb.capacity_vendor_cap, pb.o_vendor[pb.k_o], pb.a_vendor),
        )
        if cap is not None and cap < 1
    ]
    conv_prev: dict[int, int] = {}
    for first, n in pb.periods:
        mm = np.arange(first, first + n)
        dm = sc.demand[s, mm]  # (n,)
        path = pb.w_path[:, mm] * dm[None]  # (W, n)
        peak = path.max(axis=1)
        decl = sc.decline[s]  # (G,)
        pm = ((1 - decl)[:, None] ** (mm[None] / 12.0)).mean(axis=1)  # (G,)
        phi = sc.rps_factor[s][:, mm].min(axis=1)  # (P,)
        capf = sc.cap_factor[s][:, mm].min(axis=1)
        # x: replicas
        usable = first >= arrival
        act = np.ones(n_o)
        for t in deals:
            if t.kind == "reservation":
                overlap = max(0, min(first + n, t.end_month) - max(first, t.start_month)) / n
                act[t.block] = overlap
                if t.target >= 0:
                    act[t.target] = overlap if first >= t.convert_from else 0.0
        ok = usable[pb.k_o] & (act[pb.k_o] > 0)
        k_cost = pb.k_usd_month * n * pm[prices_k]
        x = cols.add(k_cost, 0.0, np.where(ok, np.inf, 0.0))
        rate = pb.k_rps * phi[pb.o_provider[pb.k_o]]
        # api shares
        amult = (pb.w_path[pb.a_w][:, mm] * dm[None]).sum(axis=1) if len(pb.a_w) else np.zeros(0)
        if len(pb.a_w):
            base_path = pb.w_base[pb.a_w]
            a_cost = pb.a_usd_month * amult / np.maximum(base_path, 1e-12) * pm[pb.api_group]
        else:
            a_cost = np.zeros(0)
        a = cols.add(a_cost, 0.0, 1.0)
        # unserved
        un = cols.add(pb.w_penalty * n * np.where(pb.w_inf, 1.0, path.mean(axis=1)), 0.0,
                      np.where(pb.w_inf, np.inf, 1.0))  # fmt: skip
        unserved.append(un)
        unserved_w.append(np.where(pb.w_inf, n, n))
        inf = np.flatnonzero(pb.w_inf)
        api_w = np.flatnonzero(~pb.w_inf)
        d_a = np.where(pb.w_inf[pb.a_w], peak[pb.a_w], 1.0) if len(pb.a_w) else np.zeros(0)
        # demand
        wpos = np.full(n_w, -1)
        wpos[inf] = np.arange(len(inf))
        ka = np.flatnonzero(pb.w_inf[pb.a_w]) if len(pb.a_w) else np.zeros(0, int)
        rows.group(np.concatenate([wpos[pb.k_w], wpos[pb.a_w[ka]], np.arange(len(inf))]),
                   np.concatenate([x, a[ka], un[inf]]),
                   np.concatenate([rate, d_a[ka], np.ones(len(inf))]),
                   peak[inf], np.full(len(inf), np.inf))  # fmt: skip
        if len(ka):
            wi = np.unique(pb.a_w[ka])
            p2 = np.full(n_w, -1)
            p2[wi] = np.arange(len(wi))
            rows.group(p2[pb.a_w[ka]], a[ka], np.ones(len(ka)), np.full(len(wi), -np.inf), np.ones(len(wi)))
        if len(api_w):
            p3 = np.full(n_w, -1)
            p3[api_w] = np.arange(len(api_w))
            kb = np.flatnonzero(~pb.w_inf[pb.a_w])
            rows.group(np.concatenate([p3[pb.a_w[kb]], np.arange(len(api_w))]),
                       np.concatenate([a[kb], un[api_w]]), np.ones(len(kb) + len(api_w)),
                       np.ones(len(api_w)), np.ones(len(api_w)))  # fmt: skip
        # api rate limits
        lim = np.flatnonzero(np.isfinite(pb.a_limit)) if len(pb.a_w) else np.zeros(0, int)
        if len(lim):
            offers_l = np.unique(pb.a_offer[lim])
            p4 = {o: i for i, o in enumerate(offers_l)}
            gm = (pb.w_path[pb.a_w[lim]][:, mm] * dm[None]).max(axis=1) / np.maximum(
                pb.w_base[pb.a_w[lim]], 1e-12
            )
            rows.group(np.array([p4[o] for o in pb.a_offer[lim]]), a[lim], pb.a_tpm[lim] * gm,
                       np.full(len(offers_l), -np.inf),
                       np.array([pb.a_limit[pb.a_offer == o][0] for o in offers_l]))  # fmt: skip
        # capacity of catalog offers
        real = np.flatnonzero(np.isfinite(pb.o_avail) & usable & has_k)
        if len(real):
            p5 = np.full(n_o, -1)
            p5[real] = np.arange(len(real))
            kr = np.flatnonzero(p5[pb.k_o] >= 0)
            rows.group(p5[pb.k_o[kr]], x[kr], pb.k_chips[kr], np.full(len(real), -np.inf),
                       pb.o_cpi[real] * pb.o_avail[real] * capf[pb.o_provider[real]])  # fmt: skip
        # spot cap
        capped = np.flatnonzero(pb.w_inf & (pb.w_spot_cap < 1))
        if len(capped):
            p6 = np.full(n_w, -1)
            p6[capped] = np.arange(len(capped))
            kn = np.flatnonzero((p6[pb.k_w] >= 0) & ~pb.o_spot[pb.k_o])
            kaa = np.flatnonzero(p6[pb.a_w] >= 0) if len(pb.a_w) else np.zeros(0, int)
            rows.group(np.concatenate([p6[pb.k_w[kn]], p6[pb.a_w[kaa]], np.arange(len(capped))]),
                       np.concatenate([x[kn], a[kaa], un[capped]]),
                       np.concatenate([rate[kn], d_a[kaa], np.ones(len(capped))]),
                       (1 - pb.w_spot_cap[capped]) * peak[capped], np.full(len(capped), np.inf))  # fmt: skip
        # survival of any one provider's loss: one row per (workload, provider it uses)
        if pb.survive > 0 and len(surv_w):
            sl = cols.add(pb.w_penalty[surv_w] * n)
            rows.group(np.concatenate([surv_kr, surv_ar, np.arange(len(surv_w))]),
                       np.concatenate([x[surv_k], a[surv_a], sl]),
                       np.concatenate([rate[surv_k], peak[pb.a_w[surv_a]], np.ones(len(surv_w))]),
                       pb.survive * peak[surv_w], np.full(len(surv_w), np.inf))  # fmt: skip
        # lock-in caps on spend at list prices (blocks at their price)
        value_k = np.where(
            pb.k_usd_month > 0,
            k_cost,
            pb.o_block_usd_per_instance_month[pb.k_o] * pb.k_chips / pb.o_cpi[pb.k_o] * n,
        )
        families = (
            (pb.provider_cap, pb.o_provider[pb.k_o], pb.a_provider, len(pb.providers)),
            (pb.vendor_cap, pb.o_vendor[pb.k_o], pb.a_vendor, len(pb.vendors)),
        )
        for cap, k_code, a_code, n_codes in families:
            if cap is None or cap >= 1:
                continue
            for c in range(n_codes):
                if not ((k_code == c).any() or (a_code == c).any()):
                    continue
                rows.add(np.concatenate([x, a]),
                         np.concatenate([value_k * ((k_code == c) - cap), a_cost * ((a_code == c) - cap)]),
                         -np.inf, 0.0)  # fmt: skip
        # lock-in caps on each service's peak capacity: one row per (workload, provider or vendor)
        for cap, (cw, ckr, ck, car, ca) in cap_patterns:
            cols_ = np.concatenate([x[ck], a[ca]])
            vals_ = np.concatenate([rate[ck], peak[pb.a_w[ca]]])
            rows.group(np.concatenate([ckr, car]), cols_, vals_, np.full(len(cw), -np.inf), cap * peak[cw])
        # deals in this period
        for d, t in enumerate(deals):
            if not (t.start_month <= first < t.end_month):
                continue
            if t.kind == "spend":
                cov = np.zeros(n_o, bool)
                cov[: len(t.covered_offers)] = t.covered_offers
                kc = np.flatnonzero(cov[pb.k_o])
                ac = np.flatnonzero(t.covered_api[pb.a_offer]) if len(pb.a_w) else np.zeros(0, int)
                big = 2.0 * _big(pb, kc, ac, k_cost, a_cost, peak, rate)
                ad = int(cols.add(-(1.0 - ROUTE_TIE_BREAK))[0])
                spend_a[d].append((first, ad))
                rows.add(
                    np.concatenate([[ad], x[kc], a[ac]]),
                    np.concatenate([[1.0], -k_cost[kc], -a_cost[ac]]),
                    -np.inf,
                    0.0,
                )
                c_idx = [ad, ref(d, 0)]
                c_val = [1.0, -big]
                if d in exit_e and first >= t.exit_month:
                    c_idx.append(exit_e[d])
                    c_val.append(big)
                rows.add(c_idx, c_val, -np.inf, 0.0)
            else:
                kb = np.flatnonzero(pb.k_o == t.block)
                cpi = pb.o_cpi[t.block]
                idx = [*x[kb], ref(d, 1)]
                val = [*pb.k_chips[kb], -cpi * act[t.block]]
                if d in cancel_q and first >= t.exit_month:
                    idx.append(cancel_q[d])
                    val.append(cpi * act[t.block])
                resale = -1
                if t.resale_share > 0 and act[t.block] > 0:
                    resale = int(cols.add(-t.resale_recovery * t.usd_per_instance_month * n)[0])
                    idx.append(resale)
                    val.append(cpi)
                    rows.add([resale, ref(d, 1)], [1.0, -t.resale_share * act[t.block]], -np.inf, 0.0)
                conv = -1
                if t.target >= 0 and act[t.target] > 0:
                    conv = int(cols.add(0.0)[0])
                    idx.append(conv)
                    val.append(cpi)
                    kt = np.flatnonzero(pb.k_o == t.target)
                    rows.add([*x[kt], conv], [*pb.k_chips[kt], -pb.o_cpi[t.target] * t.ratio], -np.inf, 0.0)
                    if d in conv_prev:
                        rows.add([conv, conv_prev[d]], [1.0, -1.0], 0.0, np.inf)
                    conv_prev[d] = conv
                rows.add(idx, val, -np.inf, 0.0)
                block_rows.setdefault(d, []).append((n, float(act[t.block]), x[kb], pb.k_chips[kb] / cpi))
    # spend deal years: payments, take-or-pay, carry-over, exit
    shortfall: dict[int, list[tuple[int, np.ndarray]]] = {}
    for d, t in enumerate(deals):
        if t.kind == "spend":
            n_y = len(t.ramp)
            pay = cols.add(np.ones(n_y))
            cum_a: list[int] = []
            cum_pay: list[int] = []
            for y in range(n_y):
                y0 = t.start_month + y * t.year_months
                a_y = [c for m, c in spend_a[d] if y0 <= m < y0 + t.year_months]
                if t.carry_over:
                    cum_a += a_y
                    cum_pay.append(pay[y])
                    rows.add(
                        [*cum_pay, *cum_a],
                        [*np.ones(len(cum_pay)), *np.full(len(cum_a), -(1 - t.discount))],
                        0.0,
                    )
                else:
                    rows.add([pay[y], *a_y], [1.0, *np.full(len(a_y), -(1 - t.discount))], 0.0)
                idx, val = [pay[y], ref(d, 1)], [1.0, -t.ramp[y]]
                if d in exit_e and y0 >= t.exit_month:
                    w_y = int(cols.add(t.penalty_share)[0])
                    idx.append(w_y)
                    val.append(1.0)
                    rows.add([w_y, ref(d, 1)], [1.0, -t.ramp[y]], -np.inf, 0.0)
                    rows.add([w_y, exit_e[d]], [1.0, -t.ramp[y] * t.max_size], -np.inf, 0.0)
                rows.add(idx, val, 0.0)
                shortfall.setdefault(d, []).append((int(pay[y]), np.array(a_y, int)))
            if d in exit_e:
                rows.add([exit_e[d], ref(d, 0)], [1.0, -1.0], -np.inf, 0.0)
        elif d in cancel_q:
            rows.add([cancel_q[d], ref(d, 1)], [1.0, -1.0], -np.inf, 0.0)
    first_ids = cols.add(np.zeros(2 * len(deals)), 0.0, 0.0)
    # resolve placeholders
    j = np.concatenate(rows.j) if rows.j else np.zeros(0, int)
    neg = j < 0
    j[neg] = first_ids[-1 - j[neg]]
    i = np.concatenate(rows.i) if rows.i else np.zeros(0, int)
    v = np.concatenate(rows.v) if rows.v else np.zeros(0)
    A = sp.csc_matrix((v, (i, j)), shape=(len(rows.lo), cols.n))
    A.sum_duplicates()
    return Lp(
        cost=np.concatenate(cols.cost),
        lower=np.concatenate(cols.lo),
        upper=np.concatenate(cols.hi),
        A=A,
        row_lower=np.array(rows.lo),
        row_upper=np.array(rows.hi),
        first=first_ids,
        unserved=np.concatenate(unserved),
        unserved_weight=np.concatenate(unserved_w).astype(float),
        shortfall=shortfall,
        idle=block_rows,
    )


def _survival_pattern(pb: DealProblem) -> tuple[np.ndarray, ...]:
    """Rows (workload, provider) of survival and the entries in them: every counted replica
    candidate and api share of the workload away from that provider."""
    counted = np.ones(len(pb.k_w), bool) if pb.spot_counts else ~pb.o_spot[pb.k_o]
    kp = pb.o_provider[pb.k_o]
    inf_a = pb.w_inf[pb.a_w] if len(pb.a_w) else np.zeros(0, bool)
    pairs = sorted(
        {(int(w), int(p)) for w, p in zip(pb.k_w[counted], kp[counted], strict=True)}
        | {(int(w), int(p)) for w, p in zip(pb.a_w[inf_a], pb.a_provider[inf_a], strict=True)}
    )
    w_of = np.array([w for w, _ in pairs], int)
    p_of = np.array([p for _, p in pairs], int)
    r_of_w: dict[int, np.ndarray] = {int(w): np.flatnonzero(w_of == w) for w in np.unique(w_of)}
    kr, kk, ar, aa = [], [], [], []
    for k in np.flatnonzero(counted):
        rs = r_of_w[int(pb.k_w[k])]
        rs = rs[p_of[rs] != kp[k]]
        kr.append(rs)
        kk.append(np.full(len(rs), k))
    for j in np.flatnonzero(inf_a):
        rs = r_of_w[int(pb.a_w[j])]
        rs = rs[p_of[rs] != pb.a_provider[j]]
        ar.append(rs)
        aa.append(np.full(len(rs), j))

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts).astype(int) if parts else np.zeros(0, int)

    return w_of, cat(kr), cat(kk), cat(ar), cat(aa)


def _share_pattern(pb: DealProblem, k_code: np.ndarray, a_code: np.ndarray) -> tuple[np.ndarray, ...]:
    """Rows (inference workload, group) of a capacity-share cap and the entries in them."""
    inf_k = pb.w_inf[pb.k_w]
    inf_a = pb.w_inf[pb.a_w] if len(pb.a_w) else np.zeros(0, bool)
    pairs = sorted(
        {(int(w), int(c)) for w, c in zip(pb.k_w[inf_k], k_code[inf_k], strict=True)}
        | {(int(w), int(c)) for w, c in zip(pb.a_w[inf_a], a_code[inf_a], strict=True)}
    )
    index = {pair: r for r, pair in enumerate(pairs)}
    k = np.flatnonzero(inf_k)
    j = np.flatnonzero(inf_a)
    kr = np.array([index[(int(pb.k_w[i]), int(k_code[i]))] for i in k], int)
    ar = np.array([index[(int(pb.a_w[i]), int(a_code[i]))] for i in j], int)
    return np.array([w for w, _ in pairs], int), kr, k, ar, j


def _big(pb: DealProblem, kc, ac, k_cost, a_cost, peak, rate) -> float:
    """Most list spend covered usage can reach in the period (big-M of the sign column)."""
    total = float(a_cost[ac].sum()) if len(ac) else 0.0
    for w in np.unique(pb.k_w[kc]):
        ks = kc[pb.k_w[kc] == w]
        per_rps = k_cost[ks] / np.maximum(rate[ks], 1e-12)
        total += float(per_rps.max() * peak[w])
    return max(total, 1.0)
