"""Importing a SkyPilot price catalog: offers, skipped rows, the spec entry and the CLI."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from conftest import run_cli, write_spec
from polyfleet.catalog.io import load_bundled, load_catalog_file
from polyfleet.catalog.skypilot import import_skypilot
from polyfleet.plan import plan
from polyfleet.spec import load_spec

DATA = Path(__file__).parent / "data" / "skypilot"
V8 = DATA / "catalogs" / "v8"

EXPECTED_COUNTS = {
    ("hyperbolic", "on-demand"): 3,
    ("lambda", "on-demand"): 272,
    ("nebius", "on-demand"): 21,
    ("nebius", "spot"): 8,
    ("verda", "on-demand"): 32,
    ("verda", "spot"): 28,
}


@pytest.fixture(scope="module")
def imported():
    return import_skypilot(V8, load_bundled().accelerators)


def test_counts_per_cloud_and_term(imported):
    assert imported.counts() == EXPECTED_COUNTS
    assert len(imported.offers) == sum(EXPECTED_COUNTS.values())
    assert len(imported.skipped) == 189  # 231 before GH200, A10, B300 and RTX PRO 6000 were mapped


def test_repo_root_gives_the_same_offers(imported):
    from_root = import_skypilot(DATA, load_bundled().accelerators).offers
    assert {k: o.usd_per_chip_hour for k, o in from_root.items()} == {
        k: o.usd_per_chip_hour for k, o in imported.offers.items()
    }
    assert from_root["verda-1b200-30v-fin-03-spot"].source.startswith(
        "SkyPilot catalog catalogs/v8/verda/vms.csv @ "
    )


def test_hand_checked_row(imported):
    # nebius/vms.csv: gpu-h200-sxm_8gpu-128vcpu-1600gb,H200,8,...,28.00,eu-north1,...,SpotPrice
    offer = imported.offers["nebius-gpu-h200-sxm-8gpu-128vcpu-1600gb-eu-north1-on-demand"]
    assert offer.provider == "nebius" and offer.region == "eu-north1"
    assert offer.accelerator == "nvidia-h200" and offer.chips_per_instance == 8
    assert offer.usd_per_chip_hour == pytest.approx(28.00 / 8)
    assert offer.term == "on-demand" and offer.available_instances == 64
    assert offer.available_instances_assumed
    assert "catalogs/v8/nebius/vms.csv" not in offer.source  # relative to DIR
    assert offer.source == "SkyPilot catalog nebius/vms.csv @ 0082b0435f3912ae4c566856b272455cc78f4f61"
    assert offer.as_of == "2025-2026"


def test_spot_is_a_separate_offer(imported):
    on_demand = imported.offers["nebius-gpu-h100-sxm-1gpu-16vcpu-200gb-eu-north1-on-demand"]
    spot = imported.offers["nebius-gpu-h100-sxm-1gpu-16vcpu-200gb-eu-north1-spot"]
    assert on_demand.usd_per_chip_hour == pytest.approx(2.95)
    assert spot.usd_per_chip_hour == pytest.approx(1.25)
    assert spot.term == "spot" and spot.available_instances == 32
    # lambda has no spot prices at all
    assert not any(o.term == "spot" for o in imported.offers.values() if o.provider == "lambda")


def test_accelerator_mapping(imported):
    by_instance = {o.instance_type: o.accelerator for o in imported.offers.values()}
    assert by_instance["gpu_1x_h100_pcie"] == "nvidia-h100-pcie"
    assert by_instance["gpu_1x_h100_sxm5"] == "nvidia-h100-sxm"
    assert by_instance["gpu_8x_a100_80gb_sxm4"] == "nvidia-a100-80gb"
    assert by_instance["gpu_1x_a100"] == "nvidia-a100-40gb"
    assert by_instance["8A100.176V"] == "nvidia-a100-80gb"  # verda A100-80GB-640GB
    assert all(
        o.id == o.id.lower() and set(o.id) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")
        for o in imported.offers.values()
    )


def test_skipped_rows_have_reasons(imported):
    reasons = {(s.file, s.line): s.reason for s in imported.skipped}
    assert "no accelerator" in reasons[("lambda/vms.csv", 2)]
    assert any("'V100' has no polyfleet mapping" in r for r in reasons.values())
    assert any("'RTX6000' has no polyfleet mapping" in r for r in reasons.values())
    assert not any("V100" in o.notes for o in imported.offers.values())
    # mapped since the 2026-12 catalog: Lambda's GH200 and A10, Verda's B300 and RTX PRO 6000
    accs = {o.accelerator for o in imported.offers.values()}
    assert {"nvidia-gh200", "nvidia-a10", "nvidia-b300", "nvidia-rtx-pro-6000"} <= accs


def test_bad_rows_and_duplicate_zones(tmp_path):
    cloud = tmp_path / "acme"
    cloud.mkdir()
    (cloud / "vms.csv").write_text(
        "Region,InstanceType,AcceleratorCount,AcceleratorName,Price,SpotPrice,AvailabilityZone\n"
        "r1,h8,8,H100,16.0,,r1-a\n"
        "r1,h8,8,H100,24.0,8.0,r1-b\n"
        "r1,zero,8,H100,0,,r1-a\n"
        "r1,empty,8,H100,,,r1-a\n"
        "r1,frac,0.5,H100,1.0,,r1-a\n"
        "r1,odd,1,FOO,1.0,,r1-a\n"
        "r1,floor,8,B200,0.08,,r1-a\n"
        "r1,badspot,1,L4,0.8,n/a,r1-a\n",
        encoding="utf-8",
    )
    result = import_skypilot(tmp_path, load_bundled().accelerators)
    assert sorted(result.offers) == ["acme-badspot-r1-on-demand", "acme-h8-r1-on-demand", "acme-h8-r1-spot"]
    cheapest = result.offers["acme-h8-r1-on-demand"]
    assert cheapest.usd_per_chip_hour == pytest.approx(2.0)
    assert "Cheapest of 2 rows" in cheapest.notes and "r1-a, r1-b" in cheapest.notes
    assert cheapest.source == "SkyPilot catalog acme/vms.csv" and cheapest.as_of == ""
    reasons = {s.line: s.reason for s in result.skipped}
    assert "missing or zero Price" in reasons[4]
    assert "missing or zero Price" in reasons[5]
    assert "not a positive whole number" in reasons[6]
    assert "'FOO' has no polyfleet mapping" in reasons[7]
    assert "placeholder" in reasons[8]
    assert "missing or zero SpotPrice" in reasons[9]
    assert all(s.file == "acme/vms.csv" for s in result.skipped)


WORKLOAD = """
    horizon_months: 1
    catalog: [bundled, "skypilot:{dir}"]
    workloads:
      - name: bot
        kind: inference
        model: llama-3.1-8b
        requests_per_s: 5
        input_tokens: 1200
        output_tokens: 250
        slo: {{ttft_ms: 1000, tpot_ms: 50}}
"""


def test_spec_skypilot_entry_plans(tmp_path):
    shutil.copytree(DATA, tmp_path / "sky")
    spec = load_spec(write_spec(tmp_path, WORKLOAD.format(dir="sky/catalogs/v8")))
    assert "lambda-gpu-1x-h100-sxm5-us-east-1-on-demand" in spec.catalog.offers
    assert set(load_bundled().offers) <= set(spec.catalog.offers)
    assert plan(spec).feasible


def test_spec_skypilot_missing_folder(tmp_path):
    result = run_cli("plan", write_spec(tmp_path, WORKLOAD.format(dir="nowhere")))
    assert result.exit_code == 2
    assert "SkyPilot catalog folder not found" in result.stderr


def test_cli_import_table_and_json():
    result = run_cli("catalog", "import-skypilot", V8, "--wide")
    assert result.exit_code == 0, result.stderr
    assert "imported offers (364)" in result.stdout and "skipped rows (189)" in result.stdout
    assert "has no polyfleet mapping" in result.stdout
    data = json.loads(run_cli("catalog", "import-skypilot", V8, "--format", "json").stdout)
    counts = {(c["provider"], c["term"]): c["offers"] for c in data["counts"]}
    assert counts == EXPECTED_COUNTS and data["offers"] == 364
    assert {"file", "line", "reason"} == set(data["skipped"][0])


def test_cli_out_round_trip(tmp_path, imported):
    out = tmp_path / "skypilot-offers.csv"
    result = run_cli("catalog", "import-skypilot", V8, "--out", out, "--format", "json")
    assert result.exit_code == 0, result.stderr
    header = next(csv.reader(out.read_text(encoding="utf-8").splitlines()))
    bundled = Path(__file__).parents[1] / "src" / "polyfleet" / "catalog" / "data" / "offers.csv"
    assert header == next(csv.reader(bundled.read_text(encoding="utf-8").splitlines()))
    assert load_catalog_file(out).offers == imported.offers
    spec = load_spec(write_spec(tmp_path, WORKLOAD.format(dir="x").replace('"skypilot:x"', out.name)))
    assert set(imported.offers) <= set(spec.catalog.offers)


def test_cli_out_must_be_an_offers_csv(tmp_path):
    result = run_cli("catalog", "import-skypilot", V8, "--out", tmp_path / "prices.csv")
    assert result.exit_code == 2
    assert "offers.csv" in result.stderr and not (tmp_path / "prices.csv").exists()
