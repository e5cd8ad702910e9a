"""``polyfleet perf`` flags of issue 14 and ``polyfleet perf configs``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import run_cli
from polyfleet.catalog.io import load_bundled
from polyfleet.errors import SpecError
from polyfleet.perf import inference_perf
from polyfleet.perf.configs import best_inference_perf
from polyfleet.perf.measurements import read_measurements

BASE = ["perf", "--model", "llama-3.3-70b", "--accelerator", "nvidia-h100-sxm", "--dtype", "fp8"]


def test_fixed_configuration_from_the_cli_is_the_python_function() -> None:
    result = run_cli(*BASE, "--tp", "4", "--batch", "64", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    cat = load_bundled()
    card = cat.models["llama-3.3-70b"].model_copy(update={"dtype": "fp8"})
    perf = inference_perf(
        card, cat.accelerators["nvidia-h100-sxm"], input_tokens=1000, output_tokens=200,
        tensor_parallel=4, batch=64, min_batch=64,
    )  # fmt: skip
    assert data["configuration"] == "TP4 PP1 fp8 b=64" == perf.configuration
    assert data["limit"] == "batch" and data["tensor_parallel"] == 4 and data["max_batch"] == 64
    assert data["tpot_ms"] == pytest.approx(perf.tpot_ms) and data["tpot_mean_ms"] == data["tpot_ms"]
    assert data["output_tokens_per_s_per_chip"] == pytest.approx(perf.output_tokens_per_s_per_chip)


def test_default_is_the_best_configuration_at_p99() -> None:
    result = run_cli(*BASE, "--tpot-ms", "50", "--ttft-ms", "2000", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    cat = load_bundled()
    card = cat.models["llama-3.3-70b"].model_copy(update={"dtype": "fp8"})
    best = best_inference_perf(
        card, cat.accelerators["nvidia-h100-sxm"], input_tokens=1000, output_tokens=200, tpot_ms=50,
        ttft_ms=2000, chips_per_node=8, percentile=0.99,
    )  # fmt: skip
    assert data["percentile"] == 0.99 and data["configuration"] == best.configuration
    assert data["tensor_parallel"] > 1  # not the smallest group that holds 70 GB of fp8 weights
    assert data["tpot_ms"] <= 50 and data["tpot_mean_ms"] <= data["tpot_ms"]
    assert data["ttft_ms"] <= 2000 and data["ttft_mean_ms"] <= data["ttft_ms"]
    p50 = json.loads(run_cli(*BASE, "--tpot-ms", "50", "--percentile", "50", "--format", "json").stdout)
    assert p50["percentile"] == 0.5
    assert p50["output_tokens_per_s_per_chip"] >= data["output_tokens_per_s_per_chip"]


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["perf", "--model", "llama-3.1-8b", "--tp", "2"], "--tp"),
        ([*BASE, "--pp", "2"], "--pp"),
    ],
)
def test_bad_flag_combinations_are_one_line_errors(args: list[str], flag: str) -> None:
    result = run_cli(*args)
    assert result.exit_code == 2 and flag in result.stderr and "Traceback" not in result.stderr


def test_bf16_on_a_chip_without_a_bf16_peak_is_infeasible_not_fp8() -> None:
    maia = ["--accelerator", "microsoft-maia-200"]
    result = run_cli("perf", "--model", "llama-3.1-8b", *maia, "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["reason"].startswith("spec:") and "BF16" in data["reason"]


def test_configs_lists_the_pareto_front_and_writes_a_chart(tmp_path: Path) -> None:
    chart = tmp_path / "front.svg"
    result = run_cli(
        "perf", "configs", "--model", "llama-3.3-70b", "--accelerator", "nvidia-h100-sxm", "--dtype", "fp8",
        "--tpot-ms", "60", "--chart", str(chart), "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    front = json.loads(result.stdout)["pareto"]
    assert len(front) >= 2 and chart.read_text().startswith("<?xml")
    tpots = [r["tpot_ms"] for r in front]
    per_usd = [r["tokens_per_usd"] for r in front]
    assert tpots == sorted(tpots) and per_usd == sorted(per_usd)  # slower only where it pays
    assert all(r["tpot_ms"] <= 60 * (1 + 1e-9) for r in front)
    cheapest = min(r["usd_per_mtok_out"] for r in front)
    assert front[-1]["usd_per_mtok_out"] == pytest.approx(cheapest)


def test_calibrate_reads_jsonl_and_names_a_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "m.jsonl"
    bad.write_text('{"kind": "run"}\n[1, 2]\n')
    with pytest.raises(SpecError) as info:
        read_measurements(bad, load_bundled())
    assert info.value.line == 2 and "JSON object" in str(info.value)


# ---------------------------------------------------------------- --input-cv / --output-cv

LLAMA_8B_H100 = ["perf", "--model", "llama-3.1-8b", "--accelerator", "nvidia-h100-sxm"]
UNDER_LOAD = [*LLAMA_8B_H100, "--tp", "1", "--percentile", "99", "--format", "json"]


def test_output_cv_sizes_the_kv_for_length_biased_requests_in_flight() -> None:
    # Llama 3.1 8B bf16 on one H100 SXM: KV room 0.9*80e9 - 2*8.03e9 = 55.94e9 B; KV
    # 32 layers * 8 heads * 128 * 2 (K, V) * 2 B = 131,072 B/token.  Under load a request
    # holds 1000 + 200*(1 + cv^2)/2 tokens: cv 0 -> 1100 tokens, 55.94e9/144.18e6 = 387.99
    # -> 387 requests; cv 1 -> 1200 tokens, 55.94e9/157.29e6 = 355.65 -> 355.
    equal = json.loads(run_cli(*UNDER_LOAD).stdout)
    spread = json.loads(run_cli(*UNDER_LOAD, "--output-cv", "1").stdout)
    assert equal["limit"] == spread["limit"] == "capacity"
    assert equal["max_batch"] == 387 == int(55.94e9 // (1100 * 131_072))
    assert spread["max_batch"] == 355 == int(55.94e9 // (1200 * 131_072))
    assert (equal["output_tokens_cv"], spread["output_tokens_cv"]) == (0.0, 1.0)
    assert equal["input_tokens_cv"] == spread["input_tokens_cv"] == 1.0  # the defaults echoed


def test_input_cv_scales_the_prefill_queue_wait_by_pollaczek_khinchine() -> None:
    # Capacity binds, so the load (and prefill time, decode step) are the same at every
    # input CV; only the p99 M/G/1 wait moves, as (1 + cv^2)/2 of the M/M/1 one:
    # 0.5, 1 and 5 times at cv 0, 1, 3, so (ttft(3) - ttft(1)) / (ttft(1) - ttft(0)) = 4/0.5 = 8.
    runs = {cv: json.loads(run_cli(*UNDER_LOAD, "--input-cv", cv).stdout) for cv in ("0", "1", "3")}
    assert len({r["replica_requests_per_s"] for r in runs.values()}) == 1
    ttft = {cv: r["ttft_ms"] for cv, r in runs.items()}
    assert (ttft["3"] - ttft["1"]) / (ttft["1"] - ttft["0"]) == pytest.approx(8.0, rel=1e-9)
    assert runs["3"]["input_tokens_cv"] == 3.0


def test_cv_flags_reach_the_comparison_and_the_configuration_search() -> None:
    compare = run_cli("perf", "--model", "llama-3.1-8b", "--output-cv", "1.5", "--format", "json")
    assert compare.exit_code == 0, compare.stderr
    assert json.loads(compare.stdout)["output_tokens_cv"] == 1.5
    args = ["perf", "configs", *LLAMA_8B_H100[1:], "--dtype", "bf16", "--percentile", "99", "--all"]
    equal = json.loads(run_cli(*args, "--format", "json").stdout)
    spread = json.loads(run_cli(*args, "--output-cv", "1", "--input-cv", "0.5", "--format", "json").stdout)
    assert (spread["output_tokens_cv"], spread["input_tokens_cv"]) == (1.0, 0.5)
    tp1 = {  # the TP1 full batch, as the test above computes it: 387 and 355
        name: max(c["max_batch"] for c in run["configurations"] if c["configuration"].startswith("TP1 "))
        for name, run in (("equal", equal), ("spread", spread))
    }
    assert tp1 == {"equal": 387, "spread": 355}


@pytest.mark.parametrize(("flag", "value"), [("--input-cv", "-0.1"), ("--output-cv", "10.5")])
def test_cv_flags_out_of_range_exit_2_naming_the_flag(flag: str, value: str) -> None:
    result = run_cli(*LLAMA_8B_H100, flag, value)
    assert result.exit_code == 2 and flag in result.stderr and "0<=x<=10" in result.stderr
    assert "Traceback" not in result.stderr
