"""Plans the independent-solver fuzz (random specs against a scipy.milp formulation of
docs/planning-model.md) found wrong, each pinned with a hand-computed figure."""

from __future__ import annotations

from typing import Any

import pytest

from polyfleet.plan import plan
from polyfleet.spec import build_spec

CARD = {"name": "m", "params_b": 1, "layers": 2, "kv_heads": 1, "head_dim": 8}


def _accelerator(acc_id: str, stack: str) -> dict[str, Any]:
    return {"id": acc_id, "vendor": "va", "hbm_gb": 80, "hbm_tbps": 3, "bf16_tflops": 1000, "stack": stack}


def test_a_monthly_training_job_only_reserved_offers_could_take_is_named():
    """Monthly plans place no training on reserved offers; the only other offer arrives after
    the horizon.  The month-0 diagnosis rebuilt the month without that rule, found every
    family feasible and blamed the solver ("HiGHS reported no feasible plan ... (time
    limit?)", family ``solver``); it now names the job."""
    spec = build_spec(
        {
            "catalog": "none",
            "periods": "monthly",
            "horizon_months": 1,
            "accelerators": [_accelerator("acc-a", "rocm"), _accelerator("acc-b", "cuda")],
            "offers": [
                {"id": "late", "provider": "p2", "accelerator": "acc-a", "chips_per_instance": 4,
                 "usd_per_chip_hour": 1.0, "available_instances": 1, "available_from_month": 1},
                {"id": "r3", "provider": "p0", "accelerator": "acc-b", "chips_per_instance": 4,
                 "usd_per_chip_hour": 2.5, "available_instances": 5, "term": "reserved-3y"},
            ],
            "workloads": [
                {"name": "chat", "kind": "inference", "model": CARD, "requests_per_s": 1,
                 "input_tokens": 100, "output_tokens": 100,
                 "throughput": {"acc-b": {"chips_per_replica": 1, "requests_per_s": 2}}},
                {"name": "t0", "kind": "training", "model": {"params_b": 1}, "tokens_b": 22,
                 "deadline_days": 5, "mfu": 0.5},
            ],
        }
    )  # fmt: skip
    out = plan(spec).to_dict()
    assert out["status"] == "infeasible"
    assert (out["infeasible"]["family"], out["infeasible"]["subject"]) == ("demand", "t0")
    assert out["infeasible"]["message"].startswith("month 0: workload 't0' cannot be met")


def test_no_plan_has_no_gap():
    """An infeasible (or unknown) plan said ``gap: 0.0``, which reads as a proven optimum."""
    spec = build_spec(
        {
            "catalog": "none",
            "accelerators": [_accelerator("acc-a", "cuda")],
            "offers": [{"id": "o", "provider": "p", "accelerator": "acc-a", "chips_per_instance": 1,
                        "usd_per_chip_hour": 1.0, "available_instances": 1}],
            "workloads": [{"name": "chat", "kind": "inference", "model": CARD, "requests_per_s": 5,
                           "input_tokens": 100, "output_tokens": 100,
                           "throughput": {"acc-a": {"chips_per_replica": 1, "requests_per_s": 2}}}],
        }
    )  # fmt: skip
    out = plan(spec).to_dict()  # 5 requests/s, one 2-requests/s replica at most
    assert (out["status"], out["infeasible"]["family"], out["gap"]) == ("infeasible", "demand", None)


#: random specs (``plan_oracle.random_fleet``) whose optimum both solvers prove: together they
#: cover every term, capacity blocks booked by training, egress, length histograms, api
#: quotas, fallback quotas and context limits, caps on capacity and spend, survival, spot
#: caps, budgets and horizons other than one month
ORACLE_SEEDS = [376, 145, 393, 95, 383, 341, 268, 234, 366, 361]


@pytest.mark.parametrize("seed", ORACLE_SEEDS)
def test_random_fleets_cost_what_an_independent_milp_of_the_doc_says(seed):
    """polyfleet.plan against scipy.optimize.milp on a formulation written from
    docs/planning-model.md alone (tests/plan_oracle.py)."""
    import json
    import random

    from plan_oracle import random_fleet, solve

    data = random_fleet(random.Random(seed))
    out = plan(build_spec(json.loads(json.dumps(data)))).to_dict()
    status, usd = solve(data)
    assert (out["status"], status) == ("optimal", "optimal")
    assert out["total_usd"] == pytest.approx(usd, abs=0.02 + 2e-6 * usd)
