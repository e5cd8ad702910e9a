"""Planner scale benchmark: synthetic fleets, each planning stage timed separately.

Run from the repository root::

    .venv/bin/python bench/plan_scale.py [--sizes 10x100,100x1000,300x5000] [--seed 0]
                                         [--time-limit 60] [--threads 1] [--no-loop]

For each size (workloads x offers) it generates a fleet with a seeded NumPy Generator
(``catalog: none``; 12 synthetic accelerators over 5 vendors/stacks, offers over 8
providers; inference workloads with ``throughput`` overrides per accelerator id so the
performance model is not timed, a few training jobs, two api workloads) and times
``build_candidates``, ``build_milp``, ``solve_milp`` and ``read_plan`` one by one.

For the 100x1000 size it also builds the same MILP with a naive per-variable Python loop
(rows as dicts, the way PuLP-style code would) and prints the speed-up of the vectorised
build over it, after asserting that both produce the same matrix, bounds and objective.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from polyfleet.plan.build import TIE_BREAK, Milp, build_milp
from polyfleet.plan.candidates import Candidates, build_candidates
from polyfleet.plan.result import read_plan
from polyfleet.plan.solve import SolveOptions, solve_milp
from polyfleet.spec import InferenceWorkload, Policy, Spec, TrainingWorkload, build_spec

# --- synthetic fleet ----------------------------------------------------------------------

#: (vendor, stack, how many accelerator models)
VENDORS = (
    ("nvidia", "cuda", 4),
    ("amd", "rocm", 2),
    ("google", "xla", 2),
    ("aws", "neuron", 2),
    ("intel", "synapse", 2),
)
STACKS = [stack for _, stack, _ in VENDORS]
PROVIDERS = [f"prov-{c}" for c in "abcdefgh"]
CPI = (1, 2, 4, 8)
POLICY = {"max_spend_share": {"provider": 0.35, "vendor": 0.6}, "survive_provider_loss": 0.5}


def _models(rng: np.random.Generator) -> list[dict[str, Any]]:
    out = []
    for i, params in enumerate((7, 13, 34, 70)):
        layers = int(rng.integers(28, 81))
        out.append(
            {
                "name": f"model-{i}",
                "params_b": float(params),
                "layers": layers,
                "hidden": 4096,
                "heads": 32,
                "kv_heads": 8,
                "head_dim": 128,
            }
        )
    return out


def generate(n_workloads: int, n_offers: int, rng: np.random.Generator) -> dict[str, Any]:
    """A spec document (the dict ``build_spec`` takes) of the given size."""
    accelerators = []
    for vendor, stack, count in VENDORS:
        for i in range(count):
            accelerators.append(
                {
                    "id": f"{vendor}-x{i}",
                    "vendor": vendor,
                    "stack": stack,
                    "bf16_tflops": float(rng.uniform(200, 1200)),
                    "hbm_gb": float(rng.choice([64, 80, 96, 128, 192])),
                    "hbm_tbps": float(rng.uniform(1.5, 8.0)),
                }
            )
    acc_ids = [a["id"] for a in accelerators]
    acc_stack = {a["id"]: a["stack"] for a in accelerators}
    acc_base = {a["id"]: float(rng.uniform(1.0, 8.0)) for a in accelerators}  # USD/chip-hour

    offers = []
    for j in range(n_offers):
        acc = acc_ids[int(rng.integers(len(acc_ids)))]
        cpi = int(rng.choice(CPI))
        offers.append(
            {
                "id": f"o{j:05d}",
                "provider": PROVIDERS[int(rng.integers(len(PROVIDERS)))],
                "region": f"r{int(rng.integers(6))}",
                "accelerator": acc,
                "chips_per_instance": cpi,
                "usd_per_chip_hour": round(acc_base[acc] * float(rng.lognormal(0.0, 0.25)), 4),
                "available_instances": int(rng.integers(2, 65) * 8 // cpi),
            }
        )

    models = _models(rng)
    n_api = 2 if n_workloads >= 5 else 0
    n_train = max(1, n_workloads // 30)
    n_inf = n_workloads - n_api - n_train
    workloads: list[dict[str, Any]] = []
    for i in range(n_inf):
        stacks = sorted(rng.choice(STACKS, size=int(rng.integers(2, 4)), replace=False).tolist())
        throughput = {}
        for acc in acc_ids:
            chips = int(rng.choice([1, 1, 2, 4]))
            throughput[acc] = {
                "chips_per_replica": chips,
                "requests_per_s": round(float(rng.uniform(0.5, 4.0)) * chips, 3),
            }
        workloads.append(
            {
                "name": f"inf-{i:04d}",
                "kind": "inference",
                "model": models[int(rng.integers(len(models)))]["name"],
                "requests_per_s": round(float(rng.uniform(5, 60)), 2),
                "peak_to_mean": round(float(rng.uniform(1.0, 2.0)), 2),
                "input_tokens": int(rng.integers(200, 4000)),
                "output_tokens": int(rng.integers(50, 1000)),
                "stacks": stacks,
                "throughput": throughput,
                "allow_api": False,
            }
        )
    for i in range(n_train):
        workloads.append(
            {
                "name": f"train-{i:03d}",
                "kind": "training",
                "model": models[int(rng.integers(2))]["name"],
                "tokens_b": round(float(rng.uniform(20, 120)), 1),
                "deadline_days": round(float(rng.uniform(10, 30)), 1),
                "stacks": sorted(rng.choice(STACKS, size=3, replace=False).tolist()),
            }
        )
    api_offers = []
    for i in range(n_api):
        for p in rng.choice(PROVIDERS, size=4, replace=False).tolist():
            api_offers.append(
                {
                    "id": f"api-{i}-{p}",
                    "provider": p,
                    "model": f"api-model-{i}",
                    "usd_per_mtok_in": round(float(rng.uniform(0.5, 3.0)), 3),
                    "usd_per_mtok_out": round(float(rng.uniform(2.0, 12.0)), 3),
                    "max_tokens_per_minute": 30000.0 if rng.random() < 0.5 else None,
                    "vendor": str(rng.choice(["", "nvidia", "google"])),
                }
            )
        workloads.append(
            {
                "name": f"api-{i}",
                "kind": "api",
                "model": f"api-model-{i}",
                "mtok_in_per_month": round(float(rng.uniform(200, 2000)), 1),
                "mtok_out_per_month": round(float(rng.uniform(50, 500)), 1),
            }
        )
    _cover_offers(offers, workloads[:n_inf], acc_stack, rng)
    return {
        "horizon_months": 1.0,
        "catalog": "none",
        "accelerators": accelerators,
        "offers": offers,
        "api_offers": api_offers,
        "models": models,
        "policy": POLICY,
        "workloads": workloads,
    }


def _cover_offers(offers: list[dict], inference: list[dict], acc_stack: dict, rng) -> None:
    """polyfleet rejects an inline offer no workload can use: patch one workload per orphan."""
    for o in offers:
        acc, cpi = o["accelerator"], o["chips_per_instance"]
        if any(
            acc_stack[acc] in w["stacks"] and w["throughput"][acc]["chips_per_replica"] <= cpi
            for w in inference
        ):
            continue
        w = inference[int(rng.integers(len(inference)))]
        if acc_stack[acc] not in w["stacks"]:
            w["stacks"] = sorted([*w["stacks"], acc_stack[acc]])
        w["throughput"][acc]["chips_per_replica"] = 1


# --- naive per-variable build (the comparison peer) ---------------------------------------


@dataclass
class LoopModel:
    A: sp.csr_matrix
    row_lower: np.ndarray
    row_upper: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray
    objective: np.ndarray


def loop_build(cand: Candidates, policy: Policy) -> LoopModel:
    """The same MILP as ``build_milp``, one Python statement per variable and coefficient.

    Rows are dicts {column: coefficient} appended one by one, like a PuLP/Pyomo-style
    model (without their expression objects, so this is a lower bound on their cost).
    """
    inf_w, inf_o = cand.inf_w.tolist(), cand.inf_o.tolist()
    inf_chips, inf_rps = cand.inf_chips.tolist(), cand.inf_rps.tolist()
    tr_w, tr_o, tr_inst = cand.tr_w.tolist(), cand.tr_o.tolist(), cand.tr_instances.tolist()
    tr_usd = cand.tr_usd.tolist()
    api_w, api_a = cand.api_w.tolist(), cand.api_a.tolist()
    api_usd, api_tpm = cand.api_usd.tolist(), cand.api_tpm.tolist()
    api_cap = cand.api_cap_rps.tolist()
    o_prov, o_vend = cand.offer_provider.tolist(), cand.offer_vendor.tolist()
    o_cpi, o_avail = cand.offer_cpi.tolist(), cand.offer_avail.tolist()
    o_usd = cand.offer_usd_per_instance.tolist()
    a_prov = [a.provider for a in cand.api_offers]
    a_vend = [a.vendor for a in cand.api_offers]
    peak = cand.peak_rps.tolist()
    wls = cand.workloads
    n_x, n_u, n_y, n_s, n_w = len(inf_w), len(cand.offers), len(tr_w), len(api_w), len(wls)
    X, U, Y, S, Z = 0, n_x, n_x + n_u, n_x + n_u + n_y, n_x + n_u + n_y + n_s
    N = Z + n_w  # replicas counted for survival (rows only on models of <= 2,000 replica columns)
    T = N + n_w
    n = T + 1
    inf = math.inf

    cost = [0.0] * n
    lower, upper, integer = [0.0] * n, [inf] * n, [False] * n
    for k in range(n_x):
        o = inf_o[k]
        upper[X + k] = float(math.floor(o_avail[o] * o_cpi[o] / max(inf_chips[k], 1)))
        integer[X + k] = True
    for o in range(n_u):
        cost[U + o] = o_usd[o]
        upper[U + o] = float(o_avail[o])
        integer[U + o] = True
    for k in range(n_y):
        cost[Y + k] = tr_usd[k]
        upper[Y + k] = 1.0
        integer[Y + k] = True
    for k in range(n_s):
        cost[S + k] = api_usd[k]
        upper[S + k] = 1.0
    for w in range(n_w):
        upper[Z + w] = inf if isinstance(wls[w], InferenceWorkload) else 0.0
        upper[N + w] = upper[Z + w]
    objective = list(cost)
    for k in range(n_x):  # replica nudge: its chips' share of the instance price
        o = inf_o[k]
        objective[X + k] = TIE_BREAK * (o_usd[o] / o_cpi[o]) * inf_chips[k]
    for o in range(n_u):
        objective[U + o] = cost[U + o] * (1 + TIE_BREAK * (o / max(n_u, 1)))
    for k in range(n_y):
        objective[Y + k] = cost[Y + k] * (1 + TIE_BREAK * (tr_o[k] / max(n_u, 1)))
    for k in range(n_s):
        objective[S + k] = cost[S + k] * (1 + TIE_BREAK * (api_a[k] / max(len(cand.api_offers), 1)))

    rows: list[dict[int, float]] = []
    lo: list[float] = []
    hi: list[float] = []

    def add(row: dict[int, float], low: float, high: float) -> None:
        rows.append(row)
        lo.append(low)
        hi.append(high)

    x_of_w: list[list[int]] = [[] for _ in range(n_w)]
    for k in range(n_x):
        x_of_w[inf_w[k]].append(k)
    x_of_o: list[list[int]] = [[] for _ in range(n_u)]
    for k in range(n_x):
        x_of_o[inf_o[k]].append(k)
    s_of_w: list[list[int]] = [[] for _ in range(n_w)]
    for k in range(n_s):
        s_of_w[api_w[k]].append(k)
    is_inf = [isinstance(w, InferenceWorkload) for w in wls]
    is_tr = [isinstance(w, TrainingWorkload) for w in wls]

    # served: z[w] - sum r x = 0
    for w in range(n_w):
        row = {Z + w: 1.0}
        for k in x_of_w[w]:
            row[X + k] = -inf_rps[k]
        add(row, 0.0, 0.0)
    # spend: T - sum cost col = 0
    row = {}
    for j in range(n):
        if cost[j] != 0:
            row[j] = -cost[j]
    row[T] = 1.0
    add(row, 0.0, 0.0)
    # whole replicas: sum_k x[w,k] >= ceil(D / best replica rate), workloads with no api offer
    for w in range(n_w):
        rates = [inf_rps[k] for k in x_of_w[w]]
        if not rates or s_of_w[w] or max(rates) <= 0:
            continue
        need = math.ceil(peak[w] / max(rates) - 1e-9)
        if need > 0:
            add({X + k: 1.0 for k in x_of_w[w]}, float(need), inf)
    # demand
    for w in range(n_w):
        if is_inf[w]:
            row = {Z + w: 1.0}
            for k in s_of_w[w]:
                row[S + k] = peak[w]
            add(row, peak[w], inf)
    for w in range(n_w):
        if is_inf[w]:
            add({S + k: 1.0 for k in s_of_w[w]}, -inf, 1.0)
    for w in range(n_w):
        if not is_inf[w] and not is_tr[w]:
            add({S + k: 1.0 for k in s_of_w[w]}, 1.0, 1.0)
    for w in range(n_w):
        if is_tr[w]:
            add({Y + k: 1.0 for k in range(n_y) if tr_w[k] == w}, 1.0, 1.0)
    # packing: sum t x - cpi u <= 0 and cpi u - sum t x <= cpi - 1
    for o in range(n_u):
        row = {}
        for k in x_of_o[o]:
            row[X + k] = float(inf_chips[k])
        row[U + o] = -float(o_cpi[o])
        add(row, -inf, 0.0)
    for o in range(n_u):
        row = {}
        for k in x_of_o[o]:
            row[X + k] = -float(inf_chips[k])
        row[U + o] = float(o_cpi[o])
        add(row, -inf, float(o_cpi[o] - 1))
    # capacity: u + sum instances y <= available
    for o in range(n_u):
        row = {U + o: 1.0}
        for k in range(n_y):
            if tr_o[k] == o:
                row[Y + k] = float(tr_inst[k])
        add(row, -inf, float(o_avail[o]))
    # api-rate
    for a, offer in enumerate(cand.api_offers):
        if offer.max_tokens_per_minute:
            add(
                {S + k: api_tpm[k] for k in range(n_s) if api_a[k] == a},
                -inf,
                float(offer.max_tokens_per_minute),
            )
    # lock-in: spend of group value v <= cap T
    for group, attr, api_attr in (("provider", o_prov, a_prov), ("vendor", o_vend, a_vend)):
        cap = getattr(policy.max_spend_share, group)
        if cap is None or cap >= 1:
            continue
        members: dict[str, dict[int, float]] = {}
        for o in range(n_u):
            if attr[o] != "":
                members.setdefault(attr[o], {})[U + o] = cost[U + o]
        for k in range(n_y):
            if attr[tr_o[k]] != "":
                members.setdefault(attr[tr_o[k]], {})[Y + k] = cost[Y + k]
        for k in range(n_s):
            if api_attr[api_a[k]] != "":
                members.setdefault(api_attr[api_a[k]], {})[S + k] = cost[S + k]
        for value in sorted(members):
            row = dict(members[value])
            row[T] = -cap
            add(row, -inf, 0.0)
    # survival: without provider p, z[w] - sum_{o at p} r x >= f D - api capacity elsewhere
    f = policy.survive_provider_loss
    if f > 0:
        providers = sorted(set(o_prov) | set(a_prov))
        for w in range(n_w):
            if not is_inf[w]:
                continue
            for p in providers:
                at_p = [k for k in x_of_w[w] if o_prov[inf_o[k]] == p]
                api_at_p = [k for k in s_of_w[w] if a_prov[api_a[k]] == p]
                if not at_p and not api_at_p:
                    continue
                others = [api_cap[k] for k in s_of_w[w] if a_prov[api_a[k]] != p]
                if any(math.isinf(c) for c in others):
                    elsewhere = inf
                elif any(math.isinf(api_cap[k]) for k in api_at_p):
                    elsewhere = 0.0  # build_milp's nan_to_num: finite caps elsewhere ignored
                else:
                    elsewhere = sum(others)
                rhs = f * peak[w] - elsewhere
                if rhs <= 0:
                    continue
                row = {Z + w: 1.0}
                for k in at_p:
                    row[X + k] = -inf_rps[k]
                add(row, rhs, inf)
    budget = policy.budget_usd
    if budget is not None:
        add({T: 1.0}, -inf, budget)

    ii: list[int] = []
    jj: list[int] = []
    vv: list[float] = []
    for i, row in enumerate(rows):
        for j, v in row.items():
            ii.append(i)
            jj.append(j)
            vv.append(v)
    A = sp.csr_matrix((vv, (ii, jj)), shape=(len(rows), n))
    return LoopModel(
        A,
        np.array(lo),
        np.array(hi),
        np.array(lower),
        np.array(upper),
        np.array(integer),
        np.array(objective),
    )


def assert_same(milp: Milp, peer: LoopModel) -> str:
    """Both builds give the same model: matrix (exactly), row/column bounds, objective."""
    A, B = milp.A.tocsr(), peer.A.tocsr()
    A.sum_duplicates()
    B.sum_duplicates()
    assert A.shape == B.shape, f"shape {A.shape} != {B.shape}"
    assert A.nnz == B.nnz, f"nnz {A.nnz} != {B.nnz}"
    assert (A != B).nnz == 0, "matrices differ"
    for name in ("row_lower", "row_upper", "lower", "upper", "objective"):
        a, b = getattr(milp, name), getattr(peer, name)
        assert np.allclose(a, b, rtol=1e-12, atol=0.0, equal_nan=False), f"{name} differs"
    assert np.array_equal(milp.integer, peer.integer), "integrality differs"
    return f"identical: {A.shape[0]} rows x {A.shape[1]} cols, nnz {A.nnz}"


# --- the benchmark ------------------------------------------------------------------------


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        w, o = part.lower().split("x")
        out.append((int(w), int(o)))
    return out


def run_size(n_w: int, n_o: int, args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng([args.seed, n_w, n_o])
    doc = generate(n_w, n_o, rng)
    t0 = time.perf_counter()
    spec: Spec = build_spec(doc)
    t_spec = time.perf_counter() - t0

    t0 = time.perf_counter()
    cand = build_candidates(spec)
    t_cand = time.perf_counter() - t0
    t0 = time.perf_counter()
    milp = build_milp(cand, spec.policy)
    t_build = time.perf_counter() - t0
    options = SolveOptions(mip_rel_gap=args.gap, time_limit_s=args.time_limit, threads=args.threads)
    t0 = time.perf_counter()
    sol = solve_milp(milp, options)
    t_solve = time.perf_counter() - t0
    t0 = time.perf_counter()
    read_plan(cand, milp, sol, spec.policy, spec.horizon_months)
    t_read = time.perf_counter() - t0

    n_inf = sum(isinstance(w, InferenceWorkload) for w in spec.workloads)
    total = t_cand + t_build + t_solve + t_read
    row = {
        "size": f"{n_w}x{n_o}",
        "vars": milp.n_cols,
        "ints": int(milp.integer.sum()),
        "rows": milp.A.shape[0],
        "nnz": milp.A.nnz,
        "cand": t_cand,
        "build": t_build,
        "solve": t_solve,
        "highs": sol.seconds,
        "read": t_read,
        "total": total,
        "spec": t_spec,
        "status": str(sol.status),
        "gap": sol.gap,
        "objective": sol.objective,
        "eligible": len(cand.inf_w) / max(n_inf * n_o, 1),
        "offers_used": len(cand.offers),
    }
    if (n_w, n_o) == (100, 1000) and not args.no_loop:
        row["peer"] = _compare_loop(cand, spec.policy, args.repeat)
    return row


def _best_of(fn, repeat: int) -> tuple[float, Any]:
    best, out = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _compare_loop(cand: Candidates, policy: Policy, repeat: int) -> dict[str, Any]:
    """Vectorised vs loop build, side by side, best of ``repeat`` each (same candidates)."""
    t_vec, milp = _best_of(lambda: build_milp(cand, policy), repeat)
    t_loop, peer = _best_of(lambda: loop_build(cand, policy), repeat)
    same = assert_same(milp, peer)
    return {"vec": t_vec, "loop": t_loop, "same": same}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10x100,100x1000,300x5000", help="comma-separated WORKLOADSxOFFERS"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gap", type=float, default=1e-6, help="relative MIP gap")
    parser.add_argument("--time-limit", type=float, default=60.0, help="HiGHS limit per solve, s")
    parser.add_argument("--threads", type=int, default=1, help="HiGHS threads")
    parser.add_argument("--repeat", type=int, default=3, help="best-of for the build comparison")
    parser.add_argument("--no-loop", action="store_true", help="skip the loop-build comparison")
    args = parser.parse_args(argv)

    results = []
    for n_w, n_o in _parse_sizes(args.sizes):
        print(f"running {n_w}x{n_o} ...", file=sys.stderr, flush=True)
        results.append(run_size(n_w, n_o, args))

    print(
        f"\nseed {args.seed}, mip_rel_gap {args.gap:g}, time limit {args.time_limit:g} s, "
        f"threads {args.threads}\n"
    )
    print(
        "| size | #vars | #int vars | #rows | nnz | candidates s | build s | solve s | total s "
        "| status | gap | build share |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|")
    for r in results:
        print(
            f"| {r['size']} | {r['vars']:,} | {r['ints']:,} | {r['rows']:,} | {r['nnz']:,} "
            f"| {r['cand']:.3f} | {r['build']:.3f} | {r['solve']:.3f} | {r['total']:.3f} "
            f"| {r['status']} | {r['gap']:.2e} | {r['build'] / r['total']:.1%} |"
        )
    print(
        "\n| size | spec validate s | HiGHS run s | solve_milp overhead s | read-back s "
        "| eligible pairs | offers used | objective USD |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['size']} | {r['spec']:.3f} | {r['highs']:.3f} | {r['solve'] - r['highs']:.3f} "
            f"| {r['read']:.3f} | {r['eligible']:.0%} | {r['offers_used']:,} "
            f"| {r['objective']:,.0f} |"
        )
    for r in results:
        if "peer" in r:
            p = r["peer"]
            print(
                f"\n{r['size']} build, best of {args.repeat}: vectorised build_milp "
                f"{p['vec'] * 1e3:.1f} ms, per-variable loop {p['loop'] * 1e3:.1f} ms, "
                f"speed-up {p['loop'] / p['vec']:.1f}x ({p['same']})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
