"""``polyfleet risk`` on plan files: JSON contract, repeatable seeds, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import polyfleet
from conftest import EXAMPLES, run_cli
from polyfleet.risk import RiskAssumptions, fleet_from_plan
from test_risk import tiny_plan


@pytest.fixture(scope="module")
def lab_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/frontier-lab.yaml planned once, written as `polyfleet plan --format json` does."""
    path = tmp_path_factory.mktemp("risk") / "plan.json"
    result = run_cli("plan", EXAMPLES / "frontier-lab.yaml", "--format", "json", "--out", path)
    assert result.exit_code == 0, result.stderr
    return path


def write_plan(tmp_path: Path, plan: dict | None = None) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan or tiny_plan(), indent=2), encoding="utf-8")
    return path


def test_risk_json_on_example_plan(lab_plan: Path) -> None:
    result = run_cli("risk", lab_plan, "--scenarios", "3000", "--seed", "5", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    plan = json.loads(lab_plan.read_text())
    assert report["plan_usd"] == pytest.approx(plan["total_usd"])
    assert report["scenarios"] == 3000 and report["seed"] == 5 and report["engine"] == "local"
    assert report["p99_usd"] >= report["p95_usd"] >= plan["total_usd"] * 0.9
    assert set(report["unserved"]) == {"inference", "api", "training"}
    assert report["unserved"]["inference"]["demand_requests_per_s"] == pytest.approx(180 + 300)
    assert report["worst_provider"] == report["providers"][0]["provider"]
    assert {r["provider"] for r in report["providers"]} == set(plan["shares"]["provider"])
    again = run_cli("risk", lab_plan, "--scenarios", "3000", "--seed", "5", "--format", "json")
    assert json.loads(again.stdout) == report


def test_survival_bounds_the_one_provider_down_sweep(lab_plan: Path) -> None:
    """The plan keeps >= 60% of chat's peak without any one provider: with no emergency
    capacity, losing one provider for the whole month leaves at most 40% of chat unserved."""
    plan = json.loads(lab_plan.read_text())
    from polyfleet.risk import evaluate, provider_down

    fleet = fleet_from_plan(plan)
    a = RiskAssumptions(emergency_capacity_fraction=0)
    out = evaluate(fleet, provider_down(fleet, a), a)
    chat = fleet.workloads.index("chat")
    assert out.unserved[:, chat].max() <= 1 - plan["policy"]["survive_provider_loss"] + 1e-6
    assert out.unserved[:, chat].max() > 0


def test_risk_table_and_out_file(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    out = tmp_path / "risk.json"
    result = run_cli("risk", plan, "--scenarios", "500", "--format", "json", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert json.loads(out.read_text())["scenarios"] == 500
    table = run_cli("risk", plan, "--scenarios", "500")
    assert table.exit_code == 0, table.stderr
    assert "Worst provider: C" in table.stdout and "Unserved demand" in table.stdout
    assert "Workloads with unserved demand" in table.stdout


def test_risk_section_of_spec_sets_assumptions(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        WORKLOADS + "risk:\n  outage_probability_per_month: 0\n  capacity_shock_probability_per_month: 0\n"
        "  chip_delay_probability: 0\n  spot_price_volatility_per_sqrt_month: 0\n"
        "  on_demand_price_volatility_per_sqrt_month: 0\n",
        encoding="utf-8",
    )
    result = run_cli("risk", plan, "--spec", spec, "--scenarios", "200", "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["expected_usd"] == report["p99_usd"] == 2500  # nothing can go wrong


WORKLOADS = (
    "workloads:\n  - {name: w, kind: inference, model: llama-3.1-8b, requests_per_s: 1,"
    " input_tokens: 100, output_tokens: 100}\n"
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "risk:\n  outage_probabilty_per_month: 0.1\n",
            "spec.yaml:2: risk.outage_probabilty_per_month: unknown field 'outage_probabilty_per_month'; "
            "did you mean 'outage_probability_per_month'",
        ),
        (
            "risk:\n  emergency_price_multiplier: 0.5\n",
            "spec.yaml:2: risk.emergency_price_multiplier: Input should be greater than or equal to 1 "
            "(got 0.5)",
        ),
        (
            "risk:\n  capacity_shock_fraction_beta: [2, 0]\n",
            "spec.yaml:2: risk.capacity_shock_fraction_beta: expected two numbers > 0",
        ),
        ("risk: 3\n", "spec.yaml:1: risk: Input should be a valid dictionary"),
        (
            "risk:\n  chip_delay_probability_by_accelerator: {amd-mi355x: 2}\n",
            "spec.yaml:2: risk.chip_delay_probability_by_accelerator: expected a probability in [0, 1]",
        ),
    ],
)
def test_bad_risk_section_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    plan = write_plan(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(text + WORKLOADS, encoding="utf-8")  # a valid spec but for its risk section
    result = run_cli("risk", plan, "--spec", spec)
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert "\n" not in line and expected in line, line


def test_bad_plan_is_one_line_with_its_line_number(tmp_path: Path) -> None:
    plan = tiny_plan()
    plan["workloads"][0]["allocations"][1]["requests_per_s"] = "lots"
    path = write_plan(tmp_path, plan)
    result = run_cli("risk", path)
    assert result.exit_code == 2
    text = path.read_text().splitlines()
    line_no = next(i for i, t in enumerate(text, 1) if '"lots"' in t)
    assert result.stderr.strip() == (
        f"polyfleet: {path}:{line_no}: workloads[0].allocations[1].requests_per_s: "
        "expected a number, got 'lots'"
    )


def test_missing_plan_and_flag_misuse(tmp_path: Path) -> None:
    missing = run_cli("risk", tmp_path / "nope.json")
    assert missing.exit_code == 2 and "cannot read plan" in missing.stderr
    misuse = run_cli("risk", write_plan(tmp_path), "--address", "ray://x:1")
    assert misuse.exit_code == 2 and "--engine ray" in misuse.stderr


def test_python_api_plan_round_trip() -> None:
    """A Plan from the Python API indexes the same as its JSON."""
    spec = polyfleet.load_spec(EXAMPLES / "startup.yaml")
    data = polyfleet.plan(spec).to_dict()
    fleet = fleet_from_plan(json.loads(json.dumps(data)))
    assert fleet.total_usd == pytest.approx(data["total_usd"], rel=1e-6)
    inference = [w for w, k in enumerate(fleet.kinds) if k == "inference"]
    assert (fleet.flow_capacity_by_workload[inference] >= fleet.demand[inference] * (1 - 1e-6)).all()


def test_docs_and_example_state_every_default() -> None:
    """docs/risk.md's table and examples/risk.yaml name every field with its default."""
    import yaml

    docs = (EXAMPLES.parent / "docs" / "risk.md").read_text(encoding="utf-8")
    defaults = RiskAssumptions()
    for name, field in RiskAssumptions.model_fields.items():
        value = getattr(defaults, name)
        shown = "{}" if value == {} else json.dumps(list(value) if isinstance(value, tuple) else value)
        assert f"| `{name}` | {shown} |" in docs, name
        assert field.description, name
    example = yaml.safe_load((EXAMPLES / "risk.yaml").read_text(encoding="utf-8"))["risk"]
    stated = RiskAssumptions.model_validate(example)
    changed = {k for k in RiskAssumptions.model_fields if getattr(stated, k) != getattr(defaults, k)}
    assert changed == {"chip_delay_probability_by_accelerator"}


def test_example_spec_risk_section_is_read(tmp_path: Path) -> None:
    plan = write_plan(tmp_path)
    result = run_cli("risk", plan, "--spec", EXAMPLES / "risk.yaml", "--scenarios", "100", "--format", "json")
    assert result.exit_code == 0, result.stderr
