"""``polyfleet frontier``: the grid re-plans, premiums, risk figures, infeasible points, chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import polyfleet
from conftest import EXAMPLES, run_cli
from polyfleet.risk import RiskAssumptions
from polyfleet.risk.frontier import plan_risk, with_policy
from test_risk import tiny_plan

LAB = EXAMPLES / "frontier-lab.yaml"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """frontier-lab over caps {0.5, 1} x survival {0, 0.8}, with a chart (the infeasible
    cap 0.1 runs once, on its own, below: diagnosing it costs more than a feasible point)."""
    chart = tmp_path_factory.mktemp("frontier") / "frontier.png"
    result = run_cli(
        "frontier", LAB, "--provider-caps", "1,0.5", "--survival", "0,0.8",
        "--scenarios", "300", "--format", "json", "--chart", chart,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), chart


def test_grid_points_respect_their_policy_and_premiums_are_monotone(lab: tuple[dict, Path]) -> None:
    data, _ = lab
    points = {(p["provider_cap"], p["survival"]): p for p in data["points"]}
    assert sorted(points) == [(0.5, 0), (0.5, 0.8), (1.0, 0), (1.0, 0.8)]
    base = data["unconstrained"]
    assert points[(1.0, 0)]["total_usd"] == pytest.approx(base["total_usd"])
    assert points[(1.0, 0)]["premium_usd"] == pytest.approx(0, abs=1e-6 * base["total_usd"])
    for (cap, survival), p in points.items():
        if not p["feasible"]:
            continue
        assert p["max_provider_share"] <= cap + 1e-6
        assert p["min_survival"] >= survival - 1e-6
        assert p["premium_usd"] >= -1e-6 * base["total_usd"]
        assert p["premium_fraction"] == pytest.approx(p["premium_usd"] / base["total_usd"], abs=1e-6)
        assert 0 <= p["worst_loss_unserved_fraction"] <= 1
        assert p["p95_usd"] >= p["total_usd"] * 0.9
    # tighter policy never costs less (each plan is optimal)
    assert points[(0.5, 0)]["total_usd"] >= points[(1.0, 0)]["total_usd"] - 1
    assert points[(1.0, 0.8)]["total_usd"] >= points[(1.0, 0)]["total_usd"] - 1
    assert (
        points[(0.5, 0.8)]["total_usd"]
        >= max(points[(0.5, 0)]["total_usd"], points[(1.0, 0.8)]["total_usd"]) - 1
    )


def test_infeasible_point_is_a_row_not_an_error() -> None:
    args = ["--provider-caps", "0.1,1", "--survival", "0", "--scenarios", "20", "--format", "json"]
    result = run_cli("frontier", LAB, *args)
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    tight = [p for p in data["points"] if p["provider_cap"] == 0.1]
    assert tight and all(not p["feasible"] for p in tight)
    assert [p["feasible"] for p in data["points"] if p["provider_cap"] == 1] == [True]
    assert all(p["status"] == "infeasible" and "lock-in" in p["reason"] for p in tight)


def test_chart_is_written(lab: tuple[dict, Path]) -> None:
    _, chart = lab
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(chart.parent.glob(".frontier*"))  # no temporary file left behind


def test_with_policy_replaces_only_cap_and_survival() -> None:
    spec = polyfleet.load_spec(LAB)
    changed = with_policy(spec, 0.4, 0.9)
    assert changed.policy.max_share.provider == 0.4 and changed.policy.survive_provider_loss == 0.9
    assert changed.policy.max_share.vendor == spec.policy.max_share.vendor
    assert changed.policy.budget_usd == spec.policy.budget_usd
    assert with_policy(spec, 1.0, 0).policy.max_share.provider is None
    assert spec.policy.max_share.provider == 0.5  # the original is untouched


@pytest.mark.parametrize(("cap", "unserved"), [(0.0, 0.4), (0.25, 0.15), (None, 0.0)])
def test_plan_risk_worst_loss_by_hand(cap: float | None, unserved: float) -> None:
    """tiny plan: A or B down leaves chat 60 of 100 req/s; emergency covers up to cap x 100."""
    calm = RiskAssumptions(
        outage_probability_per_month=0,
        capacity_shock_probability_per_month=0,
        chip_delay_probability=0,
        spot_price_volatility_per_sqrt_month=0,
        on_demand_price_volatility_per_sqrt_month=0,
        emergency_capacity_fraction=cap,
    )
    figures = plan_risk(tiny_plan(), calm, scenarios=100, seed=0)
    assert figures["worst_loss_unserved_fraction"] == pytest.approx(unserved)
    assert figures["expected_usd"] == figures["p95_usd"] == 2500


def test_risk_section_of_the_spec_feeds_the_monte_carlo(tmp_path: Path) -> None:
    spec = tmp_path / "lab.yaml"
    spec.write_text(
        LAB.read_text(encoding="utf-8")
        + "risk:\n  outage_probability_per_month: 0\n  capacity_shock_probability_per_month: 0\n"
        "  chip_delay_probability: 0\n  spot_price_volatility_per_sqrt_month: 0\n"
        "  on_demand_price_volatility_per_sqrt_month: 0\n",
        encoding="utf-8",
    )
    result = run_cli(
        "frontier", spec, "--provider-caps", "1", "--survival", "0", "--scenarios", "50", "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    point = json.loads(result.stdout)["points"][0]
    assert point["expected_usd"] == point["p95_usd"] == pytest.approx(point["total_usd"])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["--provider-caps", "0.3,x"],
            "polyfleet: --provider-caps: expected comma-separated numbers in (0, 1]",
        ),
        (["--provider-caps", "0"], "polyfleet: --provider-caps: expected numbers in (0, 1], got 0"),
        (["--survival", "1.5"], "polyfleet: --survival: expected numbers in [0, 1], got 1.5"),
        (["--chart", "f.jpg"], "polyfleet: --chart: chart file must end in .png or .svg"),
    ],
)
def test_bad_flags_are_one_line(args: list[str], expected: str) -> None:
    result = run_cli("frontier", LAB, *args)
    assert result.exit_code == 2
    assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1


def test_bad_spec_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("workloads:\n  - {name: a, kind: inference, model: nope}\n", encoding="utf-8")
    result = run_cli("frontier", spec)
    assert result.exit_code == 2 and result.stderr.startswith(f"polyfleet: {spec}:2:")


def test_reused_plan_equals_a_fresh_solve() -> None:
    """A cap the looser plan already meets reuses it; solving that point afresh costs the same."""
    from polyfleet.risk.frontier import frontier
    from test_plan_constraints import acc, inference, make, offer

    # D = 5: p1 has 3 one-rps replicas' worth of chips, so even unconstrained p2 serves 2
    # of 5: the largest provider share is 60%, within a 95% cap
    spec = make(
        [acc("acc-a"), acc("acc-b", "vb")],
        [offer("o1", "p1", "acc-a", avail=3), offer("o2", "p2", "acc-b", price=2.0)],
        [inference("w", 5, {"acc-a": (1, 1.0), "acc-b": (1, 1.0)})],
    )
    result = frontier(spec, [0.95], [0.0], scenarios=50)
    point = result["points"][0]
    assert point["same_plan_as_cap"] == 1.0 and point["provider_cap"] == 0.95
    fresh = polyfleet.plan(with_policy(spec, 0.95, 0.0)).to_dict()
    assert point["total_usd"] == pytest.approx(fresh["total_usd"], rel=1e-6)
    assert point["premium_usd"] == 0
