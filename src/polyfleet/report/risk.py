"""The ``polyfleet risk`` report as a person reads it (rich renderables)."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from polyfleet.report.tables import _pct


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0:
        return "-" + _usd(-value)  # -$482, not $-482
    return f"${value / 1e6:,.3f}M" if abs(value) >= 1e6 else f"${value:,.0f}"


def risk_tables(report: dict[str, Any]) -> RenderableType:
    """The risk report as a person reads it: cost, unserved demand by kind, providers worst first."""
    head = Text(
        f"{report['scenarios']:,} scenarios, seed {report['seed']}, "
        f"horizon {report['horizon_months']:g} month{'' if report['horizon_months'] == 1 else 's'}: "
        f"plan {_usd(report['plan_usd'])}, expected {_usd(report['expected_usd'])} "
        f"(± {_usd(report['expected_usd_stderr'])}), P95 {_usd(report['p95_usd'])}, "
        f"P99 {_usd(report['p99_usd'])}, expected emergency {_usd(report['expected_emergency_usd'])}"
    )
    unserved = Table(title="Unserved demand")
    for col in ("kind", "demand", "expected", "P99", "expected qty", "P99 qty"):
        unserved.add_column(col, justify="left" if col == "kind" else "right")
    for kind, row in report["unserved"].items():
        unit = next(k for k in row if k.startswith("demand_"))[len("demand_") :]
        unserved.add_row(
            kind,
            f"{row['demand_' + unit]:,.1f} {unit}",
            _pct(row["expected_fraction"], 2),
            _pct(row["p99_fraction"], 2),
            f"{row['expected_' + unit]:,.3f}",
            f"{row['p99_' + unit]:,.3f}",
        )
    hit = sorted(
        (
            w
            for w in report["workloads"]
            if w["expected_unserved_fraction"] > 0 or w["p99_unserved_fraction"] > 0
        ),
        key=lambda w: (-w["expected_unserved_fraction"], -w["p99_unserved_fraction"], w["name"]),
    )
    workloads = Table(
        title=f"Workloads with unserved demand ({len(hit)} of {len(report['workloads'])}, worst 10)"
    )
    for col in ("workload", "kind", "expected", "P99"):
        workloads.add_column(col, justify="left" if col in ("workload", "kind") else "right")
    for w in hit[:10]:
        workloads.add_row(
            w["name"],
            w["kind"],
            _pct(w["expected_unserved_fraction"], 2),
            _pct(w["p99_unserved_fraction"], 2),
        )
    providers = Table(title=f"Provider failure ({report['worst_provider_method']}), worst first")
    for col in (
        "provider",
        "extra cost if down",
        "mean unserved if down",
        "worst service kept (plan's rule)",
        "MC outages",
        "MC extra | outage",
    ):
        providers.add_column(col, justify="left" if col == "provider" else "right")
    for row in report["providers"]:
        providers.add_row(
            row["provider"],
            _usd(row["down_extra_usd"]),
            _pct(row["down_mean_unserved_fraction"], 2),
            _pct(row.get("down_served_fraction"), 1),
            f"{row['mc_outage_scenarios']:,}",
            _usd(row["mc_extra_usd_given_outage"]),
        )
    return Group(head, unserved, workloads, providers, Text(f"Worst provider: {report['worst_provider']}"))
