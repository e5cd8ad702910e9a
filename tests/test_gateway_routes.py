"""``routes_from_plan``: a plan's allocations become weighted, priced backends."""

from __future__ import annotations

import pytest
import yaml

import polyfleet
from conftest import EXAMPLES, run_cli, write_spec
from polyfleet.errors import SpecError
from polyfleet.gateway import build_routes
from polyfleet.gateway.routes import routes_from_plan, routes_yaml

PLAN = {
    "status": "optimal",
    "horizon_months": 1,
    "workloads": [
        {
            "name": "chat",
            "kind": "inference",
            "demand": {"requests_per_s": 100.0, "peak_requests_per_s": 150.0},
            "allocations": [
                {
                    "offer": "own-mi300x",
                    "provider": "own",
                    "share": 0.7,
                    "requests_per_s": 105.0,
                    "usd": 700.0,
                },
                {
                    "offer": "nebius-h200",
                    "provider": "nebius",
                    "share": 0.35,
                    "requests_per_s": 52.5,
                    "usd": 900.0,
                },
            ],
        },
        {
            "name": "pretrain",
            "kind": "training",
            "allocations": [{"offer": "gcp-tpu", "share": 1.0, "usd": 5.0}],
        },
        {
            "name": "office-claude",
            "kind": "api",
            "demand": {"mtok_in_per_month": 40.0, "mtok_out_per_month": 10.0},
            "allocations": [
                {"offer": "anthropic-direct", "provider": "anthropic", "share": 0.75, "usd": 225.0},
                {"offer": "bedrock", "provider": "aws", "share": 0.25, "usd": 100.0, "resells": "anthropic"},
            ],
        },
    ],
}
MAPPING = {
    "routes": {"listen": {"port": 9090}},
    "models": {"chat": "llama-3.1-70b"},
    "backends": {
        "own-mi300x": {"url": "http://10.0.0.5:8000/v1", "usd_per_mtok_in": 0.2, "usd_per_mtok_out": 0.6},
        "nebius-h200": {
            "url": "https://nebius.example/v1",
            "api_key_env": "NEBIUS_KEY",
            "usd_per_mtok_in": 0.35,
            "usd_per_mtok_out": 1.0,
        },
        "anthropic-direct": {"url": "https://api.anthropic.com/v1", "api": "anthropic"},
        "office-claude/bedrock": {
            "url": "http://bedrock-proxy:4000/v1",
            "api": "anthropic",
            "name": "bedrock",
        },
    },
}


def test_weights_are_planned_shares_normalised_and_prices_come_from_the_mapping():
    routes = routes_from_plan(PLAN, MAPPING)
    assert routes["listen"] == {"port": 9090}
    chat, claude = routes["models"]
    assert chat["name"] == "llama-3.1-70b" and claude["name"] == "office-claude"
    assert [(b["name"], b["weight"], b["provider"]) for b in chat["backends"]] == [
        ("own-mi300x", round(0.7 / 1.05, 6), "own"),
        ("nebius-h200", round(0.35 / 1.05, 6), "nebius"),
    ]
    assert chat["backends"][1]["api_key_env"] == "NEBIUS_KEY"
    # api offers without prices: usd / Mtok bought = 225 / (50 * 0.75) = 6.0 and 100 / (50 * 0.25) = 8.0
    assert [
        (b["name"], b["weight"], b["usd_per_mtok_in"], b["usd_per_mtok_out"]) for b in claude["backends"]
    ] == [
        ("anthropic-direct", 0.75, 6.0, 6.0),
        ("bedrock", 0.25, 8.0, 8.0),
    ]
    assert build_routes(routes).model("llama-3.1-70b").backends[0].url == "http://10.0.0.5:8000/v1"


def test_an_offer_without_a_mapping_entry_is_named():
    mapping = {**MAPPING, "backends": {k: v for k, v in MAPPING["backends"].items() if k != "nebius-h200"}}
    with pytest.raises(
        SpecError, match=r"map\.yaml: backends: no entry for offer 'nebius-h200' \(workload 'chat'\)"
    ):
        routes_from_plan(PLAN, mapping, mapping_file="map.yaml")


def test_self_hosted_capacity_needs_prices_and_weight_comes_from_the_plan():
    backends = dict(MAPPING["backends"])
    backends["own-mi300x"] = {"url": "http://10.0.0.5:8000/v1"}
    with pytest.raises(SpecError, match=r"offer 'own-mi300x' .* needs usd_per_mtok_in and usd_per_mtok_out"):
        routes_from_plan(PLAN, {**MAPPING, "backends": backends})
    backends["own-mi300x"] = {"url": "http://x/v1", "weight": 3, "usd_per_mtok_in": 1}
    with pytest.raises(SpecError, match=r"backends\.own-mi300x\.weight: 'weight' comes from the plan"):
        routes_from_plan(PLAN, {**MAPPING, "backends": backends})


def test_the_frontier_lab_plan_routes_its_inference_and_api_workloads(tmp_path):
    plan = polyfleet.plan(polyfleet.load_spec(EXAMPLES / "frontier-lab.yaml")).to_dict()
    offers = {a["offer"] for w in plan["workloads"] if w["kind"] != "training" for a in w["allocations"]}
    mapping = {
        "backends": {
            o: {"url": f"http://{o}.internal/v1", "usd_per_mtok_in": 1, "usd_per_mtok_out": 2} for o in offers
        }
    }
    text = routes_yaml(plan, write_spec(tmp_path, yaml.safe_dump(mapping), "mapping.yaml"))
    routes = build_routes(yaml.safe_load(text))
    served = [w for w in plan["workloads"] if w["kind"] in ("inference", "api")]
    assert [m.name for m in routes.models] == [w["name"] for w in served]
    for model, workload in zip(routes.models, served, strict=True):
        assert sum(b.weight for b in model.backends) == pytest.approx(1.0, abs=1e-5)
        assert [b.provider for b in model.backends] == [a["provider"] for a in workload["allocations"]]


def test_plan_cli_writes_routes_with_backends(tmp_path):
    """`polyfleet plan SPEC --routes FILE --backends MAPPING`: the plan and a routes file serve reads."""
    plan = polyfleet.plan(polyfleet.load_spec(EXAMPLES / "frontier-lab.yaml")).to_dict()
    offers = {a["offer"] for w in plan["workloads"] if w["kind"] != "training" for a in w["allocations"]}
    mapping = {"backends": {o: {"url": f"http://{o}.internal/v1", "usd_per_mtok_in": 1, "usd_per_mtok_out": 2}
                            for o in offers}}  # fmt: skip
    mapping_path = write_spec(tmp_path, yaml.safe_dump(mapping), "mapping.yaml")
    routes_path = tmp_path / "routes.yaml"
    result = run_cli("plan", str(EXAMPLES / "frontier-lab.yaml"), "--format", "json",
                     "--routes", str(routes_path), "--backends", str(mapping_path))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    routes = build_routes(yaml.safe_load(routes_path.read_text()))
    served = {w["name"] for w in plan["workloads"] if w["kind"] != "training"}
    assert {m.name for m in routes.models} == served
    alone = run_cli("plan", str(EXAMPLES / "frontier-lab.yaml"), "--routes", str(tmp_path / "r2.yaml"))
    assert alone.exit_code == 2 and "--backends" in alone.stderr
    assert not (tmp_path / "r2.yaml").exists()


def test_the_readme_routes_command_works_on_the_bundled_example(tmp_path):
    """README quick tour: the example mapping names every offer the frontier-lab plan routes."""
    routes_path = tmp_path / "routes.yaml"
    result = run_cli("plan", str(EXAMPLES / "frontier-lab.yaml"), "--routes", str(routes_path),
                     "--backends", str(EXAMPLES / "frontier-lab-backends.yaml"))  # fmt: skip
    assert result.exit_code == 0, result.stderr
    routes = build_routes(yaml.safe_load(routes_path.read_text()))
    assert {m.name for m in routes.models} == {"llama-3.1-70b", "llama-3.1-8b", "claude-sonnet-4.6"}
