"""Accelerator comparison for one model: $/Mtok out, its ordering, the CLI table and chart."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from polyfleet.catalog.io import load_bundled
from polyfleet.perf import sized_inference_perf
from polyfleet.perf.compare import compare_accelerators
from polyfleet.perf.configs import best_inference_perf
from polyfleet.report.charts import perf_chart

WORKLOAD = {"input_tokens": 1500, "output_tokens": 300}
ARGS = ["--model", "llama-3.1-70b", "--input-tokens", "1500", "--output-tokens", "300", "--tpot-ms", "40"]


@pytest.fixture(scope="module")
def cat():
    return load_bundled()


@pytest.fixture(scope="module")
def rows(cat):
    return compare_accelerators(
        cat.models["llama-3.1-70b"], cat.accelerators, cat.offers, tpot_ms=40, **WORKLOAD
    )


def _group(row: dict) -> int:
    if row["feasible"] and row["usd_per_mtok_out"] is not None:
        return 0
    return 1 if row["feasible"] else 2


def test_one_row_per_accelerator_sorted_by_usd_per_mtok(rows, cat):
    assert sorted(r["accelerator"] for r in rows) == sorted(cat.accelerators)
    groups = [_group(r) for r in rows]
    assert groups == sorted(groups)
    priced = [r["usd_per_mtok_out"] for r in rows if _group(r) == 0]
    assert len(priced) >= 3
    assert priced == sorted(priced)


def test_usd_per_mtok_by_hand(rows, cat):
    row = next(r for r in rows if r["accelerator"] == "nvidia-h100-sxm")
    card, acc = cat.models["llama-3.1-70b"], cat.accelerators["nvidia-h100-sxm"]
    # every on-demand instance size: its cheapest offer, the best configuration within it
    # (TPOT at p99 under Poisson load), and $/Mtok = $/chip-h / (tok/s/chip * 3600) * 1e6
    sizes: dict[int, object] = {}
    for o in sorted(cat.offers.values(), key=lambda o: (o.usd_per_chip_hour, o.id)):
        if o.accelerator == acc.id and o.term == "on-demand":
            sizes.setdefault(o.chips_per_instance, o)
    by_hand = []
    for cpi, o in sizes.items():
        perf = best_inference_perf(card, acc, chips_per_node=cpi, tpot_ms=40, percentile=0.99, **WORKLOAD)
        if perf.feasible:
            usd = o.usd_per_chip_hour / (perf.output_tokens_per_s_per_chip * 3600) * 1e6  # type: ignore[attr-defined]
            by_hand.append((usd, perf, o))
    usd, perf, offer = min(by_hand, key=lambda t: t[0])
    assert row["offer"] == offer.id and row["provider"] == offer.provider  # type: ignore[attr-defined]
    assert row["chips_per_replica"] == perf.chips_per_replica
    assert row["configuration"] == perf.configuration
    assert row["output_tokens_per_s_per_chip"] == perf.output_tokens_per_s_per_chip
    assert row["usd_per_mtok_out"] == pytest.approx(usd, rel=1e-12)
    # the best configuration, not the smallest group that fits: at least the same rate per chip
    smallest = sized_inference_perf(card, acc, tpot_ms=40, max_chips=8, **WORKLOAD)
    assert smallest.chips_per_replica <= row["chips_per_replica"]


def test_spot_term_prices_spot_offers(cat):
    spot = compare_accelerators(
        cat.models["llama-3.1-70b"], cat.accelerators, cat.offers, tpot_ms=40, term="spot", **WORKLOAD
    )
    offers = [cat.offers[r["offer"]] for r in spot if r["offer"]]
    assert offers and all(o.term == "spot" for o in offers)


def test_accelerator_without_offers_has_no_price(cat):
    card = cat.models["llama-3.1-70b"]
    acc = cat.accelerators["nvidia-h100-sxm"]
    (row,) = compare_accelerators(card, {acc.id: acc}, {}, tpot_ms=40, **WORKLOAD)
    assert row["feasible"] is True
    assert row["output_tokens_per_s_per_chip"] > 0
    assert row["offer"] is None and row["provider"] is None
    assert row["usd_per_chip_hour"] is None and row["usd_per_mtok_out"] is None
    assert row["reason"].startswith("offer:")


def test_offer_too_small_for_the_replica_is_skipped(cat):
    card = cat.models["llama-3.1-70b"]
    acc = cat.accelerators["nvidia-h100-sxm"]
    single = {k: o for k, o in cat.offers.items() if o.accelerator == acc.id and o.chips_per_instance == 1}
    assert single, "the bundled catalog has a one-chip H100 offer"
    (row,) = compare_accelerators(card, {acc.id: acc}, single, tpot_ms=40, **WORKLOAD)
    assert row["chips_per_replica"] > 1
    assert row["usd_per_mtok_out"] is None and "hold <" in row["reason"]


def test_unreachable_slo_rows_carry_reasons(cat):
    rows = compare_accelerators(
        cat.models["llama-3.1-70b"], cat.accelerators, cat.offers, tpot_ms=0.01, **WORKLOAD
    )
    assert rows and not any(r["feasible"] for r in rows)
    for r in rows:
        assert r["reason"].startswith(("slo:", "spec:", "memory:")), r
        assert r["usd_per_mtok_out"] is None and r["offer"] is None


def test_cli_json_compares_every_accelerator(cat):
    result = run_cli("perf", *ARGS, "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "llama-3.1-70b" and data["tpot_ms"] == 40 and data["term"] == "on-demand"
    rows = data["accelerators"]
    assert {r["accelerator"] for r in rows} == set(cat.accelerators)
    first = rows[0]
    assert first["feasible"] and first["usd_per_mtok_out"] > 0 and first["offer"] in cat.offers
    # "--accelerator all" is the same comparison
    again = run_cli("perf", *ARGS, "--accelerator", "all", "--format", "json")
    assert json.loads(again.stdout) == data


def test_cli_table_lists_cheapest_first():
    result = run_cli("perf", *ARGS)
    assert result.exit_code == 0, result.stderr
    assert "$/Mtok out" in result.stdout and "nvidia-h100-sxm" in result.stdout


def test_cli_no_feasible_accelerator_exits_1():
    result = run_cli("perf", "--model", "llama-3.1-70b", "--tpot-ms", "0.01", "--format", "json")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr


def test_cli_chart_png(tmp_path):
    path = tmp_path / "perf.png"
    result = run_cli("perf", *ARGS, "--chart", path)
    assert result.exit_code == 0, result.stderr
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp file left behind"


def test_cli_chart_svg(tmp_path):
    path = tmp_path / "perf.svg"
    result = run_cli("perf", *ARGS, "--term", "spot", "--chart", path)
    assert result.exit_code == 0, result.stderr
    text = path.read_text(encoding="utf-8")
    assert "<svg" in text[:1000] and text.rstrip().endswith("</svg>")


@pytest.mark.parametrize("name", ["perf.jpg", "perf"])
def test_cli_chart_bad_suffix_exits_2(tmp_path, name):
    path = tmp_path / name
    result = run_cli("perf", *ARGS, "--chart", path)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and ".png or .svg" in lines[0]
    assert not path.exists()


def test_chart_with_nothing_priced_still_renders(cat):
    rows = compare_accelerators(cat.models["llama-3.1-70b"], cat.accelerators, {}, tpot_ms=40, **WORKLOAD)
    fig = perf_chart(rows, "nothing priced")
    assert fig.texts, "the footnote lists the accelerators without a bar"
