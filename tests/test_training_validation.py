"""The TPU training points (examples/published_training.csv) and the bench that reads them."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import load_bench
from polyfleet.catalog.io import load_bundled

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "examples" / "published_training.csv"


def test_every_training_point_is_sourced_and_known_to_the_catalog() -> None:
    catalog = load_bundled()
    with DATA.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 8
    for row in rows:
        assert row["source"].startswith("MaxText") and "maxtext.readthedocs.io" in row["source"]
        assert row["as_of"]
        assert row["model"] in catalog.models and row["accelerator"] in catalog.accelerators
        assert 0 < float(row["mfu_reported"]) < 1 and float(row["tokens_per_s_per_chip"]) > 0


def test_prediction_is_peak_times_xla_mfu_over_six_active_params() -> None:
    # v6e: 918 TFLOPS BF16; xla MFU 0.46 (PaLM, at 6,144 chips: no loss at 256);
    # Llama 3.1 8B: 8.03e9 params -> 918e12 * 0.46 / (6 * 8.03e9) = 8,764.7 tokens/s/chip
    tokens, mfu = load_bench("training_validation").predict("llama-3.1-8b", "google-tpu-v6e", 256)
    assert tokens == pytest.approx(918e12 * 0.46 / (6 * 8.03e9), rel=1e-3)
    assert mfu == pytest.approx(0.46)
    # MoE: active parameters (Mixtral 8x7B: 12.9e9)
    moe, _ = load_bench("training_validation").predict("mixtral-8x7b", "google-tpu-v6e", 256)
    assert moe == pytest.approx(918e12 * 0.46 / (6 * 12.9e9), rel=1e-3)


def test_bench_reports_every_row(capsys) -> None:
    assert load_bench("training_validation").main(["--measurements", str(DATA)]) == 0
    out = capsys.readouterr().out
    assert out.count("| google-tpu-") == 8
    assert "median absolute error" in out
