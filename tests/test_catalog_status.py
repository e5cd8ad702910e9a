"""catalog status / coverage, and the plan's warnings about old or estimated rows."""

from __future__ import annotations

import json
from datetime import date

import pytest

from conftest import run_cli, write_spec
from polyfleet.catalog.coverage import coverage_matrix
from polyfleet.catalog.io import load_bundled
from polyfleet.catalog.models import Offer
from polyfleet.catalog.staleness import age_days, as_of_date, estimated_rows_used, stale_rows_used


def _offer(id_: str, provider: str, acc: str, usd: float, **more: object) -> Offer:
    return Offer(
        id=id_, provider=provider, accelerator=acc, chips_per_instance=8, usd_per_chip_hour=usd,
        available_instances=4, **more,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2026-07-29", date(2026, 7, 29)),
        ("<=2026-08", date(2026, 8, 1)),
        ("undated (<=2026-08-21 snapshot)", date(2026, 8, 21)),
        ("<=2025 (old snapshot)", date(2025, 1, 1)),
        ("undated", None),
    ],
)
def test_as_of_reads_the_start_of_the_period(text: str, day: date | None) -> None:
    assert as_of_date(text) == day


def test_age_and_stale_and_estimated_rows() -> None:
    today = date(2026, 12, 7)
    assert age_days("<=2026-08", today) == 128  # 2026-08-01 -> 2026-12-07
    offers = {
        "old": _offer("old", "a", "x", 1.0, as_of="<=2026-08"),
        "new": _offer("new", "b", "x", 2.0, as_of="2026-12-01"),
        "est": _offer("est", "c", "y", 3.0, as_of="2026-12-04", estimate=True, estimate_basis="scaled"),
    }
    cat = load_bundled().merged(type(load_bundled())(offers=offers))
    plan = {"purchases": [{"offer": "old"}, {"offer": "new"}, {"offer": "est"}]}
    assert [s["offer"] for s in stale_rows_used(plan, cat, 120, today)] == ["old"]
    assert stale_rows_used(plan, cat, 130, today) == []
    assert estimated_rows_used(plan, cat) == [{"offer": "est", "basis": "scaled"}]


def test_coverage_matrix_takes_the_cheapest_per_provider_and_chip() -> None:
    offers = [
        _offer("a1", "aws", "h100", 6.0),
        _offer("a2", "aws", "h100", 4.0, term="spot"),
        _offer("l1", "lambda", "b200", 5.0),
    ]
    m = coverage_matrix(offers)
    assert m["providers"] == ["aws", "lambda"] and m["chips"] == ["b200", "h100"]
    assert m["cells"] == {"aws": {"b200": None, "h100": 4.0}, "lambda": {"b200": 5.0, "h100": None}}
    assert coverage_matrix(offers, "on-demand")["cells"]["aws"]["h100"] == 6.0


def test_capacity_block_is_a_term_and_a_coverage_choice() -> None:
    block = _offer("cb", "aws", "h100", 3.0, term="capacity-block")
    assert block.term == "capacity-block"
    offers = [_offer("a1", "aws", "h100", 6.0), block]
    assert coverage_matrix(offers, "capacity-block")["cells"] == {"aws": {"h100": 3.0}}
    cov = run_cli("catalog", "coverage", "--term", "capacity-block", "--format", "json")
    assert cov.exit_code == 0, cov.stderr
    assert json.loads(cov.stdout)["term"] == "capacity-block"
    bad = run_cli("catalog", "coverage", "--term", "weekly")
    assert bad.exit_code == 2 and "capacity-block" in bad.stderr


def test_catalog_coverage_and_status_commands() -> None:
    cov = run_cli("catalog", "coverage", "--format", "json")
    assert cov.exit_code == 0, cov.stderr
    data = json.loads(cov.stdout)
    cat = load_bundled()
    oci_b300 = [
        o.usd_per_chip_hour
        for o in cat.offers.values()
        if o.provider == "oci" and o.accelerator == "nvidia-b300"
    ]
    assert data["cells"]["oci"]["nvidia-b300"] == min(oci_b300) == 15  # $120/h for 8 GPUs
    table = run_cli("catalog", "coverage")
    assert table.exit_code == 0 and "cheapest $/chip-h by provider x chip" in table.stdout
    status = run_cli("catalog", "status", "--format", "json")
    assert status.exit_code == 0, status.stderr
    st = json.loads(status.stdout)
    assert st["rows"] == len(cat.offers) + len(cat.api_offers) == len(st["by_age"])
    assert st["estimates"] == sum(o.estimate for o in cat.offers.values()) + sum(
        a.estimate for a in cat.api_offers.values()
    )
    assert st["retired"] == 6
    ages = [r["age_days"] for r in st["by_age"] if r["age_days"] is not None]
    assert ages == sorted(ages, reverse=True)  # oldest first


SPEC = """
catalog: {use: [bundled], max_age_days: MAX}
offers:
  - {id: my-guess, provider: own, accelerator: nvidia-h100-sxm, chips_per_instance: 1,
     usd_per_chip_hour: 0.01, available_instances: 4, as_of: "2025-01-01",
     estimate: true, estimate_basis: a colleague's quote}
workloads:
  - {name: chat, kind: inference, model: llama-3.1-8b, requests_per_s: 20, input_tokens: 500,
     output_tokens: 100, slo: {ttft_ms: 2000, tpot_ms: 50}, allow_api: false}
"""


def test_plan_warns_about_old_and_estimated_rows_and_offline_ok_silences(tmp_path) -> None:
    path = write_spec(tmp_path, SPEC.replace("MAX", "100000"))
    result = run_cli("plan", str(path), "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["estimates"] == [{"offer": "my-guess", "basis": "a colleague's quote"}]
    assert "estimated price(s), not published ones: my-guess (a colleague's quote)" in result.stderr
    assert "older than" not in result.stderr  # 100000 days allowed (2025-01-01 is ~700 days old)
    strict = run_cli("plan", str(write_spec(tmp_path, SPEC.replace("MAX", "30"), "s.yaml")))
    assert strict.exit_code == 0, strict.stderr
    assert "older than 30 days: my-guess (2025-01-01" in strict.stderr
    assert "Estimated prices" in strict.stdout and "my-guess" in strict.stdout
    quiet = run_cli("plan", str(path), "--offline-ok")
    assert quiet.exit_code == 0 and "warning" not in quiet.stderr


def test_bad_max_age_days_is_bad_input(tmp_path) -> None:
    result = run_cli("plan", str(write_spec(tmp_path, SPEC.replace("MAX", "-1"))))
    assert result.exit_code == 2 and "max_age_days" in result.stderr and "Traceback" not in result.stderr
