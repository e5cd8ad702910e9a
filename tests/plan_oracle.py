"""An independent formulation of docs/planning-model.md (single period) for random specs.

Written from the document, not from ``polyfleet.plan``: columns and rows built by hand
from the spec dictionary (replicas, instances, placements, api shares; demand, packing
with no idle instance, capacity, api rates, spot, lock-in caps on peak capacity,
spend-share caps, survival with api quotas and fallbacks, budget) and solved by
``scipy.optimize.milp``.  ``random_fleet`` draws the specs: offers of every term
(spot, reserved, capacity blocks), api offers with and without quotas, fallback quotas
and context limits, length histograms, training jobs with egress, api workloads.
The session-23 fuzz ran 6,000 such specs against ``polyfleet.plan`` with no
disagreement; ``tests/test_fuzz_plans.py`` keeps a few seeds.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

H_M = 730.0
CARD = {"name": "m", "params_b": 1, "layers": 2, "kv_heads": 1, "head_dim": 8}
TFLOPS = 1000.0


def random_fleet(rng: random.Random) -> dict[str, Any]:
    providers = [f"p{i}" for i in range(rng.randint(2, 4))]
    accs, offers = [], []
    for j in range(rng.randint(3, 8)):
        cpi = rng.choice([1, 2, 4, 8])
        accs.append(
            {
                "id": f"acc-o{j}",
                "vendor": rng.choice(["va", "vb", "vc"]),
                "hbm_gb": 80,
                "hbm_tbps": 3,
                "bf16_tflops": TFLOPS,
                "stack": "cuda",
            }
        )
        offers.append(
            {
                "id": f"o{j}",
                "provider": rng.choice(providers),
                "accelerator": f"acc-o{j}",
                "chips_per_instance": cpi,
                "usd_per_chip_hour": rng.randint(2, 16) / 4,
                "available_instances": rng.randint(1, 16),
                "term": rng.choice(
                    ["on-demand", "on-demand", "spot", "reserved-1y", "reserved-3y", "capacity-block"]
                ),
            }
        )
    apis = []
    for i in range(rng.randint(0, 3)):
        a = {
            "id": f"a{i}",
            "provider": rng.choice([*providers, "papi"]),
            "model": "m",
            "usd_per_mtok_in": rng.randint(2, 16) / 4,
            "usd_per_mtok_out": rng.randint(2, 16) / 4,
        }
        if rng.random() < 0.6:
            a["max_tokens_per_minute"] = rng.randint(1, 20) * 6000
            if rng.random() < 0.3:
                a["fallback_tokens_per_minute"] = rng.randint(1, 20) * 6000
        elif rng.random() < 0.3:
            a["fallback_tokens_per_minute"] = rng.randint(1, 20) * 6000
        if rng.random() < 0.4:
            a["vendor"] = rng.choice(["va", "vb"])
        if rng.random() < 0.25:
            a["context_tokens"] = rng.choice([250, 400, 650])
        apis.append(a)
    wls: list[dict[str, Any]] = []
    for w in range(rng.randint(1, 3)):
        tp = {}
        for j, o in enumerate(offers):
            cpi = o["chips_per_instance"]
            t = rng.randint(1, cpi)
            if w > 0 and j > 0 and rng.random() < 0.15:
                t = cpi + 1
            tp[f"acc-o{j}"] = {"chips_per_replica": t, "requests_per_s": rng.randint(1, 12) / 2}
        wl = {
            "name": f"w{w}",
            "kind": "inference",
            "model": CARD,
            "requests_per_s": rng.randint(1, 12),
            "peak_to_mean": rng.choice([1.0, 1.5]),
            "input_tokens": rng.choice([100, 500]),
            "output_tokens": rng.choice([100, 200]),
            "throughput": tp,
            "allow_api": w == 0 or rng.random() < 0.5,
        }
        if rng.random() < 0.2:
            wl["max_spot_share"] = rng.choice([0.0, 0.5])
        if rng.random() < 0.3:
            del wl["input_tokens"], wl["output_tokens"]
            wl["lengths"] = [
                {
                    "input_tokens": rng.choice([50, 120, 333, 500]),
                    "output_tokens": rng.choice([7, 100, 150]),
                    "weight": rng.choice([1, 2, 0.5]),
                }
                for _ in range(rng.randint(1, 3))
            ]
        wls.append(wl)
    egress = []
    for k in range(rng.choice([0, 0, 1, 2])):
        tw = {
            "name": f"train{k}",
            "kind": "training",
            "model": {"params_b": 1},
            "tokens_b": rng.randint(1, 20),
            "deadline_days": rng.choice([0.5, 1, 2, 5]),
            "mfu": 0.5,
        }
        if rng.random() < 0.4:
            src = rng.choice(providers)
            tw["data_gb"] = rng.randint(100, 5000)
            tw["data_at"] = src
            if not any(e["provider"] == src for e in egress):
                egress.append({"provider": src, "usd_per_gb": rng.choice([0.02, 0.09])})
        if rng.random() < 0.15:
            tw["max_spot_share"] = 0.5
        wls.append(tw)
    if len({a["provider"] for a in apis}) >= 2 and rng.random() < 0.5:
        wls.append(
            {
                "name": "api",
                "kind": "api",
                "model": "m",
                "mtok_in_per_month": rng.randint(1, 50),
                "mtok_out_per_month": rng.randint(0, 50),
            }
        )
    pol: dict[str, Any] = {
        "max_share": {
            "provider": rng.choice([None, None, None, 0.5, 0.7, 0.9, 1.0]),
            "vendor": rng.choice([None, None, None, 0.7, 0.9]),
        },
        "max_spend_share": {
            "provider": rng.choice([None, None, None, 0.5, 0.7]),
            "vendor": rng.choice([None, None, None, 0.6, 0.8]),
        },
        "survive_provider_loss": rng.choice([0.0, 0.0, 0.3, 0.5, 0.8, 1.0]),
        "api_fallback": rng.choice(["quota", "unlimited"]),
        "spot_counts_for_survival": rng.random() < 0.5,
    }
    if rng.random() < 0.3:
        pol["max_spot_share"] = rng.choice([0.0, 0.3, 0.6])
    if rng.random() < 0.3:
        pol["budget_usd"] = rng.randint(1000, 150000)
    spec = {
        "catalog": "none",
        "horizon_months": rng.choice([1, 1, 1, 3, 0.5, 2.5]),
        "accelerators": accs,
        "offers": offers,
        "api_offers": apis,
        "workloads": wls,
        "policy": pol,
    }
    if egress:
        spec["egress"] = egress
    return spec


def training(o: dict, acc: dict, tw: dict) -> tuple[int, float] | None:
    """(chips n, run hours h) from the doc: F = 6 P T; n = deadline chips to whole instances."""
    F = 6 * tw["model"]["params_b"] * 1e9 * tw["tokens_b"] * 1e9
    sus = acc["bf16_tflops"] * 1e12 * tw["mfu"]
    chips = math.ceil(F / (sus * tw["deadline_days"] * 86400) - 1e-9)
    cpi = o["chips_per_instance"]
    n = max(1, math.ceil(chips / cpi)) * cpi
    if n > o["available_instances"] * cpi:
        return None
    return n, F / (n * sus * 3600)


def means(w: dict) -> tuple[float, float, int]:
    """(mean input, mean output, longest request) tokens, exact (lengths: weighted)."""
    if "lengths" in w:
        tot = sum(b["weight"] for b in w["lengths"])
        i = sum(b["weight"] * b["input_tokens"] for b in w["lengths"]) / tot
        o = sum(b["weight"] * b["output_tokens"] for b in w["lengths"]) / tot
        return i, o, max(b["input_tokens"] + b["output_tokens"] for b in w["lengths"])
    return w["input_tokens"], w["output_tokens"], w["input_tokens"] + w["output_tokens"]


def fits(a: dict, w: dict) -> bool:
    return a.get("context_tokens") is None or means(w)[2] <= a["context_tokens"]


def solve(d: dict[str, Any]) -> tuple[str, float | None]:
    H = d["horizon_months"]
    pol = d["policy"]
    offers = {o["id"]: o for o in d["offers"]}
    accs = {a["id"]: a for a in d["accelerators"]}
    apis = {a["id"]: a for a in d["api_offers"]}
    egress = {e["provider"]: e["usd_per_gb"] for e in d.get("egress", [])}
    providers = sorted({o["provider"] for o in offers.values()} | {a["provider"] for a in apis.values()})
    cols: list[tuple] = []  # (kind, ...)
    lb, ub, integ, cost = [], [], [], []
    spend_p: list[dict[str, float]] = []  # per col: provider->coef
    spend_v: list[dict[str, float]] = []

    def add(key, lo, hi, isint, c, sp, sv):
        cols.append(key)
        lb.append(lo)
        ub.append(hi)
        integ.append(isint)
        cost.append(c)
        spend_p.append(sp)
        spend_v.append(sv)
        return len(cols) - 1

    u = {}
    for oid, o in offers.items():
        c = o["chips_per_instance"] * o["usd_per_chip_hour"] * H_M * H
        u[oid] = add(
            ("u", oid),
            0,
            o["available_instances"],
            1,
            c,
            {o["provider"]: c},
            {accs[o["accelerator"]]["vendor"]: c},
        )
    x, y, s = {}, {}, {}
    mspot = pol.get("max_spot_share", 1.0)
    for w in d["workloads"]:
        if w["kind"] == "inference":
            for oid, o in offers.items():
                m = w["throughput"][o["accelerator"]]
                if m["chips_per_replica"] <= o["chips_per_instance"]:
                    hi = o["available_instances"] * o["chips_per_instance"] // m["chips_per_replica"]
                    x[w["name"], oid] = add(("x", w["name"], oid), 0, hi, 1, 0.0, {}, {})
            if w["allow_api"]:
                R = w["requests_per_s"]
                mi, mo, _ = means(w)
                for aid, a in apis.items():
                    if not fits(a, w):
                        continue
                    upr = (mi * a["usd_per_mtok_in"] + mo * a["usd_per_mtok_out"]) / 1e6
                    c = R * upr * 3600 * H_M * H
                    s[w["name"], aid] = add(
                        ("s", w["name"], aid),
                        0,
                        1,
                        0,
                        c,
                        {a["provider"]: c},
                        {a["vendor"]: c} if a.get("vendor") else {},
                    )
        elif w["kind"] == "training":
            m_w = w.get("max_spot_share", mspot)
            for oid, o in offers.items():
                if o["term"] == "spot" and m_w < 1:
                    continue
                t = training(o, accs[o["accelerator"]], w)
                if t is None:
                    continue
                n, h = t
                if o["term"] == "capacity-block":
                    run = n * o["usd_per_chip_hour"] * 24 * max(1, math.ceil(h / 24 - 1e-9))
                else:
                    run = n * o["usd_per_chip_hour"] * h
                eg = 0.0
                if w.get("data_at") and o["provider"] != w["data_at"]:
                    eg = w["data_gb"] * egress[w["data_at"]]
                sp = {o["provider"]: run}
                if eg:
                    sp[w["data_at"]] = sp.get(w["data_at"], 0) + eg
                y[w["name"], oid] = add(
                    ("y", w["name"], oid, n), 0, 1, 1, run + eg, sp, {accs[o["accelerator"]]["vendor"]: run}
                )
        else:
            for aid, a in apis.items():
                c = (
                    w["mtok_in_per_month"] * a["usd_per_mtok_in"]
                    + w["mtok_out_per_month"] * a["usd_per_mtok_out"]
                ) * H
                s[w["name"], aid] = add(
                    ("s", w["name"], aid),
                    0,
                    1,
                    0,
                    c,
                    {a["provider"]: c},
                    {a["vendor"]: c} if a.get("vendor") else {},
                )
    n = len(cols)
    rows, rlo, rhi = [], [], []

    def row(coefs: dict[int, float], lo: float, hi: float):
        r = np.zeros(n)
        for k, v in coefs.items():
            r[k] += v
        rows.append(r)
        rlo.append(lo)
        rhi.append(hi)

    def tpm(w):
        if w["kind"] == "inference":
            return w["requests_per_s"] * w["peak_to_mean"] * (means(w)[0] + means(w)[1]) * 60
        return (w["mtok_in_per_month"] + w["mtok_out_per_month"]) * 1e6 / (730 * 60)

    for w in d["workloads"]:
        nm = w["name"]
        if w["kind"] == "inference":
            D = w["requests_per_s"] * w["peak_to_mean"]
            rate = {
                oid: w["throughput"][offers[oid]["accelerator"]]["requests_per_s"]
                for (wn, oid) in x
                if wn == nm
            }
            z = {x[nm, oid]: r for oid, r in rate.items()}
            sa = {s[nm, aid]: D for (wn, aid) in s if wn == nm}
            row({**z, **sa}, D, np.inf)
            if sa:
                row({k: 1.0 for k in sa}, -np.inf, 1.0)
            m_w = w.get("max_spot_share", mspot)
            if m_w < 1:
                co = {x[nm, oid]: r for oid, r in rate.items() if offers[oid]["term"] != "spot"}
                co.update(sa)
                row(co, (1 - m_w) * D, np.inf)
            for g in ("provider", "vendor"):
                c = (pol.get("max_share") or {}).get(g)
                if c is None or c >= 1:
                    continue
                vals = {}
                for oid, r in rate.items():
                    v = (
                        offers[oid]["provider"]
                        if g == "provider"
                        else accs[offers[oid]["accelerator"]]["vendor"]
                    )
                    vals.setdefault(v, {})[x[nm, oid]] = r
                for (wn, aid), k in s.items():
                    if wn != nm:
                        continue
                    v = apis[aid]["provider"] if g == "provider" else apis[aid].get("vendor")
                    if v:
                        vals.setdefault(v, {})[k] = D
                for co in vals.values():
                    row(co, -np.inf, c * D)
            f = pol["survive_provider_loss"]
            if f > 0:
                tok = means(w)[0] + means(w)[1]
                for p in providers:
                    co, rhs, drop = {}, f * D, False
                    for oid, r in rate.items():
                        o = offers[oid]
                        if o["provider"] == p:
                            continue
                        if o["term"] == "spot" and not pol["spot_counts_for_survival"]:
                            continue
                        co[x[nm, oid]] = r
                    if w["allow_api"]:
                        for aid, a in apis.items():
                            if a["provider"] == p or not fits(a, w):
                                continue
                            q = a.get("fallback_tokens_per_minute", a.get("max_tokens_per_minute"))
                            if q is not None:
                                rhs -= q / (60 * tok)
                            elif pol["api_fallback"] == "unlimited":
                                drop = True
                            else:
                                co[s[nm, aid]] = D
                    if not drop:
                        row(co, rhs, np.inf)
        elif w["kind"] == "training":
            row({k: 1.0 for (wn, _), k in y.items() if wn == nm}, 1, 1)
        else:
            sa = {k: 1.0 for (wn, _), k in s.items() if wn == nm}
            row(sa, 1, 1)
            for g in ("provider", "vendor"):
                c = (pol.get("max_share") or {}).get(g)
                if c is None or c >= 1:
                    continue
                vals = {}
                for (wn, aid), k in s.items():
                    if wn != nm:
                        continue
                    v = apis[aid]["provider"] if g == "provider" else apis[aid].get("vendor")
                    if v:
                        vals.setdefault(v, {})[k] = 1.0
                for co in vals.values():
                    row(co, -np.inf, c)
    # packing and capacity
    for oid, o in offers.items():
        cpi = o["chips_per_instance"]
        co = {u[oid]: -cpi}
        for (wn, oo), k in x.items():
            if oo == oid:
                w = next(w for w in d["workloads"] if w["name"] == wn)
                co[k] = w["throughput"][o["accelerator"]]["chips_per_replica"]
        row(co, -np.inf, 0)
        row({k: -v for k, v in co.items()}, -np.inf, cpi - 1)
        cap = {u[oid]: 1.0}
        for key, k in y.items():
            if key[1] == oid:
                cap[k] = cols[k][3] / cpi
        row(cap, -np.inf, o["available_instances"])
    for aid, a in apis.items():
        lim = a.get("max_tokens_per_minute")
        if lim is None:
            continue
        co = {}
        for (wn, aa), k in s.items():
            if aa == aid:
                co[k] = tpm(next(w for w in d["workloads"] if w["name"] == wn))
        if co:
            row(co, -np.inf, lim)
    costv = np.array(cost)
    for g, sp in (("provider", spend_p), ("vendor", spend_v)):
        c = (pol.get("max_spend_share") or {}).get(g)
        if c is None or c >= 1:
            continue
        vals = sorted({v for dd in sp for v in dd})
        for v in vals:
            r = -c * costv.copy()
            for k, dd in enumerate(sp):
                r[k] += dd.get(v, 0.0)
            rows.append(r)
            rlo.append(-np.inf)
            rhi.append(0.0)
    if pol.get("budget_usd") is not None:
        rows.append(costv.copy())
        rlo.append(-np.inf)
        rhi.append(pol["budget_usd"])
    if n == 0:
        return "infeasible", None
    A = np.array(rows)
    res = milp(
        costv,
        constraints=LinearConstraint(A, rlo, rhi),
        integrality=np.array(integ),
        bounds=Bounds(lb, ub),
        options={"mip_rel_gap": 1e-9, "time_limit": 60},
    )
    if res.status == 2:
        return "infeasible", None
    if res.x is None:
        return f"scipy-status-{res.status}", None
    return "optimal", float(costv @ res.x)
