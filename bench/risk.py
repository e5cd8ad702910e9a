"""Time ``polyfleet risk``'s Monte Carlo: 100,000 scenarios of a synthetic 50-workload plan.

The plan is generated (seeded) in the shape ``polyfleet plan --format json`` writes: 7
providers, 12 accelerators, 35 inference workloads on 2-5 allocations each (some per
token), 10 api workloads on 1-3 hosts, 5 training jobs.  The vectorised engine is timed
on all scenarios (best of ``--repeat``); the peer, in the same process, is the
per-scenario Python loop of the same re-dispatch (``polyfleet.risk.reference``) on a
subset, checked to give the same numbers, and the per-scenario ratio is printed.

    .venv/bin/python bench/risk.py                  # 100,000 scenarios, 50 workloads
    .venv/bin/python bench/risk.py --scenarios 20000 --loop-scenarios 200
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from polyfleet.risk import RiskAssumptions, analyse, draw_scenarios, evaluate, fleet_from_plan, monte_carlo
from polyfleet.risk.engine import CHUNK_SCENARIOS
from polyfleet.risk.reference import evaluate_loop

PROVIDERS = ("aws", "azure", "gcp", "lambda", "nebius", "oci", "runpod")
ACCELERATORS = tuple(f"chip-{i}" for i in range(12))
TERMS = ("spot", "on-demand", "reserved-1y")


def synthetic_plan(workloads: int = 50, seed: int = 0) -> dict[str, Any]:
    """A plan dictionary with ``workloads`` workloads: 70% inference, 20% api, 10% training."""
    rng = np.random.default_rng(seed)
    n_train = max(1, workloads // 10)
    n_api = max(1, workloads // 5)
    out = []
    for w in range(workloads):
        kind = "training" if w < n_train else "api" if w < n_train + n_api else "inference"
        if kind == "training":
            run = float(rng.uniform(300, 700))
            allocs = [
                {
                    "provider": str(rng.choice(PROVIDERS)),
                    "accelerator": str(rng.choice(ACCELERATORS)),
                    "term": str(rng.choice(TERMS)),
                    "run_hours": run,
                    "usd": float(rng.uniform(1e5, 5e5)),
                }
            ]
            demand = {"tokens_b": float(rng.uniform(100, 2000)), "deadline_days": 30.0}
        elif kind == "api":
            hosts = rng.choice(PROVIDERS, size=int(rng.integers(1, 4)), replace=False)
            shares = rng.dirichlet(np.ones(hosts.size))
            allocs = [
                {"provider": str(p), "accelerator": None, "share": float(s), "usd": float(s * 1e5)}
                for p, s in zip(hosts, shares, strict=True)
            ]
            demand = {"mtok_in_per_month": float(rng.uniform(1e3, 1e5)), "mtok_out_per_month": 1000.0}
        else:
            peak = float(rng.uniform(10, 500))
            n = int(rng.integers(2, 6))
            caps = rng.dirichlet(np.ones(n)) * peak * rng.uniform(1.0, 1.6)
            allocs = [
                {
                    "provider": str(rng.choice(PROVIDERS)),
                    "accelerator": str(rng.choice(ACCELERATORS)),
                    "term": str(rng.choice(TERMS)),
                    "requests_per_s": float(c),
                    "usd": float(c * rng.uniform(200, 800)),
                }
                for c in caps
            ]
            if rng.random() < 0.3:
                allocs.append(
                    {"provider": "anthropic", "accelerator": None, "share": 0.2, "usd": float(peak * 100)}
                )
            demand = {"requests_per_s": peak / 1.5, "peak_requests_per_s": peak}
        out.append(
            {
                "name": f"w{w}",
                "kind": kind,
                "demand": demand,
                "usd": sum(a["usd"] for a in allocs),
                "allocations": allocs,
            }
        )
    return {"status": "optimal", "horizon_months": 1.0, "workloads": out}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=100_000)
    parser.add_argument("--workloads", type=int, default=50)
    parser.add_argument("--loop-scenarios", type=int, default=500, help="scenarios for the Python-loop peer")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    fleet = fleet_from_plan(synthetic_plan(args.workloads, args.seed))
    a = RiskAssumptions()
    print(
        f"plan: {len(fleet.workloads)} workloads, {fleet.flow_usd.size + fleet.train_usd.size} allocations, "
        f"{len(fleet.providers)} providers, {len(fleet.accelerators)} accelerators, "
        f"{len(fleet.price_groups)} price groups; chunks of {CHUNK_SCENARIOS} scenarios"
    )

    best = np.inf
    for _ in range(args.repeat):
        start = time.perf_counter()
        outcome = monte_carlo(fleet, a, args.scenarios, seed=args.seed)
        best = min(best, time.perf_counter() - start)
    print(
        f"vectorised: {args.scenarios:,} scenarios in {best:.3f} s (best of {args.repeat}), "
        f"{best / args.scenarios * 1e6:.2f} us/scenario; expected ${outcome.cost_usd.mean():,.0f}, "
        f"P95 ${np.quantile(outcome.cost_usd, 0.95):,.0f}"
    )

    start = time.perf_counter()
    analyse(fleet, a, args.scenarios, seed=args.seed)  # what `polyfleet risk` computes: + sweep, quantiles
    report_s = time.perf_counter() - start

    sc = draw_scenarios(np.random.default_rng(args.seed), fleet, a, args.loop_scenarios)
    start = time.perf_counter()
    fast = evaluate(fleet, sc, a)
    fast_s = time.perf_counter() - start
    start = time.perf_counter()
    slow = evaluate_loop(fleet, sc, a)
    loop_s = time.perf_counter() - start
    same = np.allclose(fast.cost_usd, slow.cost_usd, rtol=1e-10) and np.allclose(
        fast.unserved, slow.unserved, atol=1e-10
    )
    per_loop = loop_s / args.loop_scenarios
    per_fast = best / args.scenarios
    print(
        f"peer (per-scenario Python loop, same re-dispatch): {args.loop_scenarios:,} scenarios "
        f"in {loop_s:.3f} s, "
        f"{per_loop * 1e6:,.0f} us/scenario; same numbers: {same}"
    )
    print(
        f"ratio: {per_loop / per_fast:,.0f}x per scenario (loop / vectorised run); "
        f"the loop would take {per_loop * args.scenarios:,.0f} s for {args.scenarios:,} "
        f"(vectorised on the same {args.loop_scenarios} scenarios, draws excluded: {fast_s:.4f} s)"
    )
    target = "met" if best < 10 else "NOT met"
    print(
        f"target 100,000 x 50 workloads < 10 s: {target} "
        f"({best:.2f} s for {args.scenarios:,} x {args.workloads}; full report {report_s:.2f} s)"
    )


if __name__ == "__main__":
    main()
