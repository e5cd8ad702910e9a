"""The solver wrapper: the rounded LP start is feasible, used, and never changes the answer."""

from __future__ import annotations

import numpy as np
import pytest

from polyfleet.plan import build_candidates, build_milp
from polyfleet.plan.solve import SolveOptions, Status, _rounded_start, solve_milp
from polyfleet.spec import build_spec


def _spec(f: float = 0.5, cap: float = 0.7):
    accs = [
        {"id": f"a{i}", "vendor": v, "hbm_gb": 80, "hbm_tbps": 3, "bf16_tflops": 900, "stack": s}
        for i, (v, s) in enumerate([("nvidia", "cuda"), ("amd", "rocm"), ("nvidia", "cuda")])
    ]
    offers = [
        {
            "id": f"o{j}",
            "provider": f"p{j % 3}",
            "accelerator": f"a{j % 3}",
            "chips_per_instance": 8,
            "usd_per_chip_hour": 1.0 + 0.1 * j,
            "available_instances": 6,
        }
        for j in range(6)
    ]
    workloads = [
        {
            "name": f"w{i}",
            "kind": "inference",
            "model": {"name": "m", "params_b": 1, "layers": 2, "kv_heads": 1, "head_dim": 8},
            "requests_per_s": 7 + 3 * i,
            "input_tokens": 10,
            "output_tokens": 10,
            "allow_api": False,
            "throughput": {
                f"a{k}": {"chips_per_replica": 1 + (i + k) % 2, "requests_per_s": 1.5 + k} for k in range(3)
            },
        }
        for i in range(4)
    ]
    return build_spec(
        {
            "catalog": "none",
            "accelerators": accs,
            "offers": offers,
            "workloads": workloads,
            "policy": {"max_share": {"provider": cap}, "survive_provider_loss": f},
        }
    )


def test_rounded_start_satisfies_every_row():
    spec = _spec()
    milp = build_milp(build_candidates(spec), spec.policy)
    v = _rounded_start(milp, SolveOptions())
    assert v is not None
    activity = milp.A @ v
    assert np.all(activity >= milp.row_lower - 1e-6) and np.all(activity <= milp.row_upper + 1e-6)
    ints = milp.integer
    assert np.allclose(v[ints], np.round(v[ints]))


def test_rounded_start_does_not_change_the_optimum():
    spec = _spec()
    milp = build_milp(build_candidates(spec), spec.policy)
    plain = solve_milp(milp, SolveOptions(rounding_start_above=10**9))
    started = solve_milp(milp, SolveOptions(rounding_start_above=0))
    assert plain.status == started.status == Status.OPTIMAL
    assert started.rounded_start and not plain.rounded_start
    assert started.objective == pytest.approx(plain.objective, rel=1e-6)
