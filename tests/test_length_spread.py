"""Request-length spread in the fleet spec: ``input_tokens_cv`` and ``output_tokens_cv``.

The perf model's rules (length-biased live KV, M/G/1 prefill wait) are hand-checked in
``tests/test_perf_effects.py`` and through ``polyfleet perf`` in ``tests/test_perf_cli.py``;
here: the spec fields' validation, their defaults, and that the planner's replicas use them.

Toy chip (conftest ``toy_acc``): 100 TFLOPS bf16, 10 GB, 1 TB/s.  Toy card: 4B bf16 dense,
8e9 weight bytes, KV 10 layers x 5 heads x 100 x 2 (K, V) x 2 B = 20,000 B/token.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import SVC, run_cli
from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf.configs import best_inference_perf
from polyfleet.plan.candidates import build_candidates
from polyfleet.spec import build_spec

CARD = {"name": "toy", "params_b": 4.0, "layers": 10, "kv_heads": 5, "head_dim": 100, "dtype": "bf16"}
ACC = {
    "id": "toy",
    "vendor": "nvidia",
    "bf16_tflops": 100.0,
    "hbm_gb": 10.0,
    "hbm_tbps": 1.0,
    "stack": "cuda",
}
OFFER = {
    "id": "toy-1",
    "provider": "own",
    "accelerator": "toy",
    "chips_per_instance": 1,
    "usd_per_chip_hour": 1.0,
    "available_instances": 1000,
}


def spec(**fields: Any) -> Any:
    workload = {
        "name": "svc",
        "kind": "inference",
        "model": "toy",
        "requests_per_s": 5,
        "input_tokens": 1000,
        "output_tokens": 200,
        "precisions": ["bf16"],
        "slo": {"tpot_ms": 1000},  # loose: a target, so the replica is sized under load (p99)
        **fields,
    }
    data = {
        "catalog": "none",
        "models": [CARD],
        "accelerators": [ACC],
        "offers": [OFFER],
        "workloads": [workload],
    }
    return build_spec(data)


def test_defaults_are_the_perf_models_so_old_specs_plan_as_before() -> None:
    w = spec().workloads[0]
    assert (w.input_tokens_cv, w.output_tokens_cv) == (1.0, 0.0)
    same = build_candidates(spec(input_tokens_cv=1.0, output_tokens_cv=0.0))
    default = build_candidates(spec())
    assert list(default.inf_rps) == list(same.inf_rps) and list(default.inf_config) == list(same.inf_config)


def test_output_tokens_cv_shrinks_the_planned_batch_by_the_length_biased_kv() -> None:
    # KV room 0.9*10e9 - 8e9 = 1e9 B.  Under load a request holds 1000 + 200*(1 + cv^2)/2
    # tokens: cv 0 -> 1100 * 20,000 = 22e6 B -> 45 requests; cv 1 -> 1200 -> 24e6 B -> 41.
    equal = build_candidates(spec())
    spread = build_candidates(spec(output_tokens_cv=1.0))
    assert equal.inf_config[0].endswith("b=45") and int(1e9 // 22e6) == 45
    assert spread.inf_config[0].endswith("b=41") and int(1e9 // 24e6) == 41
    assert spread.inf_rps[0] < equal.inf_rps[0]


def test_input_tokens_cv_reaches_the_replica_the_planner_buys() -> None:
    # A TTFT target that binds: equal prompts (cv 0) halve the M/M/1 prefill wait, so one
    # replica takes more load; the planner's figure is the perf model's with the field.
    ttft = {"slo": {"ttft_ms": 400}}
    mm1 = build_candidates(spec(**ttft))
    equal = build_candidates(spec(input_tokens_cv=0.0, **ttft))
    direct = best_inference_perf(
        ModelCard(**CARD), Accelerator(**ACC), input_tokens=1000, output_tokens=200, ttft_ms=400,
        chips_per_node=1, percentile=0.99, dtypes=["bf16"], input_tokens_cv=0.0, demand_rps=5.0,
    )  # fmt: skip
    assert direct.limit == "slo: ttft"
    assert equal.inf_rps[0] == pytest.approx(direct.replica_requests_per_s, rel=1e-12)
    assert equal.inf_rps[0] > 1.1 * mm1.inf_rps[0]


@pytest.mark.parametrize(
    ("line", "field", "expected"),
    [
        ("input_tokens_cv: -0.5", "input_tokens_cv", "greater than or equal to 0"),
        ("output_tokens_cv: 12", "output_tokens_cv", "less than or equal to 10"),
        ("output_tokens_cv: wide", "output_tokens_cv", "valid number"),
    ],
)
def test_bad_cv_is_one_line_naming_file_line_field(
    tmp_path: Path, line: str, field: str, expected: str
) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(SVC + f"    {line}\n", encoding="utf-8")
    result = run_cli("plan", path)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and result.stdout == ""
    (message,) = result.stderr.strip().splitlines()
    assert f"{path}:8:" in message and f" workloads[0].{field}:" in message and expected in message
