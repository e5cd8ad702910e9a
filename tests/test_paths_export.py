"""`polyfleet catalog paths` (every way to buy a model) and `polyfleet export skypilot`."""

from __future__ import annotations

import json

import pytest
import yaml

from conftest import run_cli, write_spec
from polyfleet.catalog.io import load_bundled
from polyfleet.plan.paths import buy_paths
from polyfleet.report.skypilot_task import SKYPILOT_ACCELERATORS


def test_sonnet_paths_direct_and_reseller_with_markup():
    rows = buy_paths("claude-sonnet-4.5", load_bundled())
    kinds = {(r["kind"], r["provider"]) for r in rows}
    assert ("direct", "anthropic") in kinds
    assert ("reseller", "aws") in kinds
    assert all(r["markup_pct"] >= 0 and r["markup_ratio"] >= 1 for r in rows)
    assert rows[0]["markup_pct"] == 0
    assert all(r["resells"] == "anthropic" for r in rows if r["kind"] == "reseller")


def test_llama_paths_include_self_hosted_and_blend_by_hand():
    cat = load_bundled()
    rows = buy_paths("llama-3.1-70b", cat, input_tokens=1000, output_tokens=200)
    assert any(r["kind"] == "self-hosted" and r["accelerator"] for r in rows)
    costs = [r["usd_per_mtok_blended"] for r in rows]
    assert costs == sorted(costs)
    groq = next(r for r in rows if r["offer"] == "groq-llama-3.1-70b-versatile")
    assert groq["kind"] == "host"
    assert groq["usd_per_mtok_blended"] == pytest.approx((1000 * 0.59 + 200 * 0.79) / 1200)
    assert groq["markup_pct"] == pytest.approx((groq["usd_per_mtok_blended"] / costs[0] - 1) * 100)


def test_self_hosted_blend_matches_compare_accelerators():
    from polyfleet.perf.compare import compare_accelerators

    cat = load_bundled()
    card = cat.models["llama-3.1-70b"]
    cmp = compare_accelerators(card, cat.accelerators, cat.offers, input_tokens=1000, output_tokens=200)
    priced = {r["accelerator"]: r for r in cmp if r["usd_per_mtok_out"] is not None}
    for row in buy_paths(card, cat, input_tokens=1000, output_tokens=200):
        if row["kind"] == "self-hosted":
            ref = priced[row["accelerator"]]
            rps_per_chip = ref["output_tokens_per_s_per_chip"] / 200
            by_hand = ref["usd_per_chip_hour"] / (rps_per_chip * 3600) * 1e6 / 1200
            assert row["usd_per_mtok_blended"] == pytest.approx(by_hand)
            assert row["offer"] == ref["offer"]


def test_paths_cli_json_and_unknown_model():
    result = run_cli("catalog", "paths", "claude-sonnet-4.5", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["paths"][0]["markup_pct"] == 0
    table = run_cli("catalog", "paths", "llama-3.1-70b", "--tpot-ms", "40")
    assert table.exit_code == 0 and "self-hosted" in table.stdout
    bad = run_cli("catalog", "paths", "claude-sonet-4.5")
    assert bad.exit_code == 2
    assert "did you mean" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


SPEC = """
offers:
  - {id: my-h100-spot, provider: nebius, region: eu-north1, accelerator: nvidia-h100-sxm,
     instance_type: "gpu-h100-sxm (8gpu)", term: spot, chips_per_instance: 8,
     usd_per_chip_hour: 0.01, available_instances: 64}
workloads:
  - {name: pretrain, kind: training, model: llama-3.1-8b, tokens_b: 50, deadline_days: 7, stacks: [cuda]}
  - {name: chat, kind: inference, model: llama-3.1-8b, requests_per_s: 2,
     input_tokens: 1000, output_tokens: 200, allow_api: false}
"""


@pytest.fixture
def planned(tmp_path):
    spec = write_spec(tmp_path, SPEC)
    out = tmp_path / "plan.json"
    result = run_cli("plan", spec, "--format", "json", "--out", out)
    assert result.exit_code == 0, result.stderr
    return spec, out, json.loads(out.read_text())


def test_export_skypilot_matches_plan(tmp_path, planned):
    spec, plan_path, plan = planned
    alloc = next(w for w in plan["workloads"] if w["name"] == "pretrain")["allocations"][0]
    assert alloc["offer"] == "my-h100-spot"
    # the offer is only in the spec's catalog
    missing = run_cli("export", "skypilot", plan_path, "--workload", "pretrain")
    assert missing.exit_code == 2
    assert "my-h100-spot" in missing.stderr and "--spec" in missing.stderr
    task_path = tmp_path / "task.yaml"
    result = run_cli(
        "export", "skypilot", plan_path, "--workload", "pretrain", "--spec", spec, "--out", task_path
    )
    assert result.exit_code == 0, result.stderr
    text = task_path.read_text()
    assert text.startswith("#")
    task = yaml.safe_load(text)
    assert task["num_nodes"] == alloc["instances"]
    assert alloc["chips"] == alloc["instances"] * 8
    assert task["resources"] == {
        "cloud": "nebius",
        "region": "eu-north1",
        "accelerators": "H100:8",
        "use_spot": True,
        "instance_type": "gpu-h100-sxm (8gpu)",
    }


def test_export_bundled_offer_is_consistent(tmp_path):
    spec = write_spec(
        tmp_path,
        "workloads:\n  - {name: ft, kind: training, model: llama-3.1-8b, tokens_b: 20, deadline_days: 7,"
        " stacks: [cuda]}\n",
    )
    plan_path = tmp_path / "plan.json"
    assert run_cli("plan", spec, "--format", "json", "--out", plan_path).exit_code == 0
    alloc = json.loads(plan_path.read_text())["workloads"][0]["allocations"][0]
    offer = load_bundled().offers[alloc["offer"]]
    result = run_cli("export", "skypilot", plan_path, "--workload", "ft")
    assert result.exit_code == 0, result.stderr
    task = yaml.safe_load(result.stdout)
    assert task["num_nodes"] == alloc["instances"]
    name = SKYPILOT_ACCELERATORS[offer.accelerator]
    assert task["resources"]["accelerators"] == f"{name}:{offer.chips_per_instance}"
    assert task["resources"]["use_spot"] == (offer.term == "spot")
    assert task["resources"]["cloud"] == offer.provider


def test_export_errors(tmp_path, planned):
    spec, plan_path, _ = planned
    cases = [
        (plan_path, "pretrian", "did you mean 'pretrain'"),
        (plan_path, "chat", "only training"),
        (spec, "pretrain", "not a plan JSON"),
        (tmp_path / "nope.json", "pretrain", "cannot read plan"),
    ]
    for path, workload, expected in cases:
        result = run_cli("export", "skypilot", path, "--workload", workload, "--spec", spec)
        assert result.exit_code == 2, (workload, result.stdout)
        assert expected in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_export_own_provider_is_not_a_skypilot_cloud(tmp_path):
    spec = write_spec(
        tmp_path,
        SPEC.replace("provider: nebius", "provider: own").split("  - {name: chat")[0],
    )
    plan_path = tmp_path / "plan.json"
    assert run_cli("plan", spec, "--format", "json", "--out", plan_path).exit_code == 0
    result = run_cli("export", "skypilot", plan_path, "--workload", "pretrain", "--spec", spec)
    assert result.exit_code == 2
    assert "not a SkyPilot cloud" in result.stderr
