"""bench/gpu_measure.py's bookkeeping on a fake timer (no GPU, no torch)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import load_bench
from polyfleet.catalog.io import load_bundled
from polyfleet.perf.calibration import fit
from polyfleet.perf.measurements import read_measurements

gm = load_bench("gpu_measure")


def fake_seconds(case: object) -> tuple[float, float]:
    """4 ms of layers per decode request-batch step (+0.01 ms per request), 1 ms of head."""
    if case.kind == "decode":  # type: ignore[attr-defined]
        return 0.004 + 0.00001 * case.batch, 0.001  # type: ignore[attr-defined]
    return 0.0001 * case.tokens, 0.001  # type: ignore[attr-defined]


def test_grid_skips_oversized_kv_and_orders_cheapest_first() -> None:
    cases = gm.plan_cases(["bf16", "fp8"])
    decode = [c for c in cases if c.kind == "decode"]
    # 4 batches x 2 contexts, all <= 256k tokens of KV (128 x 4096 = 524k is left out)
    per_shape = {(c.batch, c.tokens) for c in decode if c.shape == "llama-3.1-8b" and c.dtype == "bf16"}
    assert (128, 4096) not in per_shape and len(per_shape) == 7
    assert len(cases) == 2 * 3 * (7 + 4)  # dtypes x shapes x (decode + prefill)
    assert all(c.dtype == "bf16" for c in cases[: len(cases) // 2])  # bf16 first
    assert len(gm.plan_cases(["bf16"], quick=True)) == 3 * (3 + 3)


def test_full_model_time_scales_measured_layers_and_adds_the_head() -> None:
    case = gm.Case("decode", "llama-3.1-8b", "bf16", 8, 512)
    # 4 of 32 layers took 4.08 ms: 4.08 * 32/4 + 1 ms head = 33.64 ms; rate 8/0.03364 tok/s
    rec = gm.to_record(case, 0.00408, 0.001, accelerator="nvidia-h200", gpu="fake", date="2026-12-07")
    assert rec.seconds == pytest.approx(0.00408 * 8 + 0.001)
    assert rec.output_tokens_per_s_whole_tp_group == pytest.approx(8 / 0.03364)
    assert (rec.kind, rec.model, rec.batch, rec.input_tokens, rec.measured_layers) == (
        "decode", "llama-3.1-8b", 8, 512, 4,
    )  # fmt: skip
    pre = gm.to_record(gm.Case("prefill", "mixtral-8x7b", "fp8", 1, 2048), 0.2, 0.001,
                       accelerator="nvidia-h200", gpu="fake", date="d")  # fmt: skip
    # Mixtral: 2 of 32 layers, 0.2 s -> 3.2 s + 1 ms; 2048 prompt tokens per 3.201 s
    assert pre.output_tokens_per_s_whole_tp_group == pytest.approx(2048 / 3.201)


def test_deadline_skips_the_rest_and_errors_are_recorded() -> None:
    cases = gm.plan_cases(["bf16"], quick=True)  # 18 cases
    timer = gm.FakeTimer(fake_seconds, cost_s=10.0)
    records, skipped = gm.run(cases, timer, accelerator="nvidia-h200", gpu="fake", date="d", budget_s=45.0,
                              now=timer.now)  # fmt: skip
    # each case costs 10 s on the fake clock: after 4 cases 40 + 10 > 45 -> the rest skipped
    assert len(records) == 4 and len(skipped) == 14
    assert all(why == "time budget 45 s" for _, why in skipped)

    def failing(case: object) -> tuple[float, float]:
        raise RuntimeError("fp8 GEMMs need compute capability 8.9+\nmore")

    records, skipped = gm.run(cases[:2], gm.FakeTimer(failing), accelerator="a", gpu="g", date="d",
                              budget_s=1e9)  # fmt: skip
    assert records == [] and [why for _, why in skipped] == ["fp8 GEMMs need compute capability 8.9+"] * 2


def test_jsonl_is_what_calibrate_reads(tmp_path: Path) -> None:
    cases = [c for c in gm.plan_cases(["bf16"], quick=True) if c.shape != "llama-3.1-70b"]
    timer = gm.FakeTimer(fake_seconds)
    records, skipped = gm.run(cases, timer, accelerator="nvidia-h200", gpu="fake", date="2026-12-07",
                              budget_s=1e9, now=timer.now)  # fmt: skip
    skipped.append((gm.Case("decode", "llama-3.1-70b", "bf16", 1, 512), "out of memory"))
    path = tmp_path / "fake.jsonl"
    path.write_text("\n".join(gm.jsonl_lines(records, skipped, 12.5)) + "\n")
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert lines[-1] == {"kind": "run", "measured": len(records), "skipped": 1, "wall_s": 12.5}
    assert lines[-2]["kind"] == "skipped" and lines[-2]["why"] == "out of memory"
    catalog = load_bundled()
    points = read_measurements(path, catalog)  # skipped/run lines are not measurements
    assert len(points) == len(records) == 12
    assert {p.kind for p in points} == {"decode", "prefill"}
    decode = next(p for p in points if p.kind == "decode" and p.batch == 8 and p.model == "llama-3.1-8b")
    assert decode.output_tokens_per_s == pytest.approx(8 / ((0.004 + 0.00008) * 8 + 0.001))
    cal = fit(points, catalog, fitted_at="2026-12-07", source=str(path))
    assert cal.accelerators["nvidia-h200"].fitted and cal.accelerators["nvidia-h200"].n_points == 12


def test_comparison_against_the_model() -> None:
    case = gm.Case("decode", "llama-3.1-8b", "bf16", 1, 512)
    rec = gm.to_record(case, 0.004, 0.001, accelerator="nvidia-h200", gpu="fake", date="d")
    rows, median = gm.comparison([rec])
    assert len(rows) == 3 and rows[2].startswith("| decode | llama-3.1-8b | bf16 | 1 | 512 | 33.00 |")
    predicted_ms = float(rows[2].split("|")[7])
    assert median == pytest.approx(abs(predicted_ms / 33.0 - 1), abs=1e-3)
    assert gm._guess_accelerator("NVIDIA H100 80GB HBM3") == "nvidia-h100-sxm"
    assert gm._guess_accelerator("NVIDIA H200") == "nvidia-h200"
