"""Scale of ``polyfleet deal``'s decomposition: 50 scenarios x 60 months x 20 workloads x 200 offers.

A synthetic spec (no catalog): 10 providers x 5 accelerators x 4 regions = 200 offers,
20 inference workloads with measured throughput on every accelerator (so the performance
model is not what is timed), three deals (a spend commitment sized freely in a range, a capacity
block on a grid, a block with an exit), 50 sampled scenarios with demand volatility, price
declines, an uncertain arrival, outages and capacity shocks.  Months past 24 are quarters
(36 periods).  Prints the build and solve seconds, iterations, and the gap to the bound.

    .venv/bin/python bench/deals_scale.py [--scenarios 50] [--gap 0.01]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np

from polyfleet.deals.benders import Evaluations, PoolEvaluations, build_solvers, solve_saa
from polyfleet.deals.evaluate import in_sample
from polyfleet.deals.lp import scenario_lp
from polyfleet.deals.problem import build_problem
from polyfleet.spec import build_spec

PROVIDERS = [f"p{i}" for i in range(10)]
ACCS = [f"acc{i}" for i in range(5)]
REGIONS = ["r0", "r1", "r2", "r3"]


def spec_doc(scenarios: int, gap: float, workloads: int = 20) -> dict:
    rng = np.random.default_rng(0)
    card = {"hbm_gb": 80, "hbm_tbps": 3, "bf16_tflops": 1000, "stack": "cuda"}
    accs = [{"id": a, "vendor": f"v{i % 3}", **card} for i, a in enumerate(ACCS)]
    offers = []
    for p in PROVIDERS:
        for a in ACCS:
            for r in REGIONS:
                offers.append({
                    "id": f"{p}-{a}-{r}", "provider": p, "region": r, "accelerator": a,
                    "chips_per_instance": 8, "usd_per_chip_hour": round(float(rng.uniform(1.5, 4.0)), 3),
                    "available_instances": int(rng.integers(20, 80)),
                })  # fmt: skip
    offers[0]["arrival_month_probabilities"] = {3: 0.3, 6: 0.4, 12: 0.3}
    wls = []
    for w in range(workloads):
        wls.append({
            "name": f"w{w}", "kind": "inference", "model": {"name": f"m{w}", "params_b": 8},
            "requests_per_s": float(rng.uniform(5, 40)), "input_tokens": 500, "output_tokens": 200,
            "growth_per_month": 0.02, "peak_to_mean": 1.3,
            "throughput": {a: {"chips_per_replica": int(rng.choice([1, 2, 4, 8])),
                               "requests_per_s": float(rng.uniform(0.5, 3.0))} for a in ACCS},
        })  # fmt: skip
    deals = [
        {"kind": "spend", "name": "p1-5y", "provider": "p1", "discount": 0.25,
         "usd_per_year": {"min": 1.0e6, "max": 8.0e6}, "years": 5, "ramp": [0.5, 0.75, 1, 1, 1]},
        {"kind": "reservation", "name": "p2-block", "offer": "p2-acc1-r0", "instances": [8, 16, 32],
         "usd_per_instance_month": 9000.0, "months": 12, "resale_share": 0.5, "resale_recovery": 0.5},
        {"kind": "reservation", "name": "p3-3y", "offer": "p3-acc2-r1", "instances": [8, 16],
         "usd_per_instance_month": 8500.0, "months": 36, "exit": {"after_month": 12, "penalty_share": 0.4}},
    ]  # fmt: skip
    return {
        "horizon_months": 60, "periods": "monthly", "catalog": "none", "accelerators": accs,
        "offers": offers, "workloads": wls, "deals": deals,
        "policy": {"max_share": {"provider": 0.4}, "survive_provider_loss": 0.3},
        "risk": {"capacity_shock_probability_per_month": 0.01},
        "uncertainty": {
            "sampled": {"count": scenarios, "seed": 1,
                        "demand": {"drift_per_year": 0.05, "volatility_per_year": 0.3}},
            "prices": {"default": 0.12, "sd": 0.04}, "gap": gap, "quarters_after_month": 24,
        },
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", type=int, default=50)
    parser.add_argument("--workloads", type=int, default=20)
    parser.add_argument("--gap", type=float, default=0.01)
    parser.add_argument("--workers", type=int, default=2, help="processes holding the scenario LPs")
    args = parser.parse_args()
    t0 = time.perf_counter()
    spec = build_spec(spec_doc(args.scenarios, args.gap, args.workloads))
    pb = build_problem(spec)
    sc = in_sample(pb, spec.model.uncertainty, spec.model.risk)
    t1 = time.perf_counter()
    if args.workers > 1:
        ev: Evaluations = PoolEvaluations(pb, sc, args.workers)
    else:
        ev = Evaluations(build_solvers(pb, sc))
    t2 = time.perf_counter()
    res = solve_saa(pb, ev, sc.probability, gap=args.gap)
    t3 = time.perf_counter()
    if isinstance(ev, PoolEvaluations):
        ev.close()
    lp = scenario_lp(pb, sc, 0)
    out = {
        "scenarios": sc.size,
        "months": pb.months,
        "periods": len(pb.periods),
        "workloads": len(pb.workload_names),
        "offers": len(spec.catalog.offers),
        "kept_candidates": len(pb.k_w),
        "lp_rows_cols_per_scenario": list(lp.A.shape),
        "lp_nonzeros_per_scenario": int(lp.A.nnz),
        "problem_seconds": round(t1 - t0, 2),
        "lp_build_seconds": round(t2 - t1, 2),
        "workers": args.workers,
        "solve_seconds": round(t3 - t2, 2),
        "total_seconds": round(t3 - t0, 2),
        "iterations": res.iterations,
        "first_stages_evaluated": len(ev.cache),
        "recommended": {
            t.name: float(res.first[2 * d + 1]) for d, t in enumerate(pb.deals) if res.first[2 * d] > 0.5
        },
        "objective_usd": round(res.objective, 2),
        "bound_usd": round(res.bound, 2),
        "gap": round(res.gap, 6),
        "cpus": os.cpu_count(),
        "parent_cpu_seconds": round(time.process_time(), 2),
        "worker_cpu_seconds": round(
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
            + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime,
            2,
        ),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
