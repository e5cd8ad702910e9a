"""``polyfleet risk``: Monte Carlo of a plan under outages, capacity shocks, price moves, chip delays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from polyfleet.cli._app import main
from polyfleet.cli._common import FORMATS, _emit, _handles_errors, _render
from polyfleet.errors import SpecError
from polyfleet.risk import Mapper, PlanDataError, RiskAssumptions, analyse, fleet_from_plan, local_mapper
from polyfleet.risk.fleet import Fleet
from polyfleet.spec import load_spec
from polyfleet.yamlio import dotted, line_of, read_yaml


def load_risk_assumptions(spec_path: Path | None) -> RiskAssumptions:
    """The spec's ``risk:`` section (the whole spec is validated), or the defaults without one."""
    return RiskAssumptions() if spec_path is None else load_spec(spec_path).model.risk


def load_fleet(plan_path: Path, month: int | None = None) -> Fleet:
    """Read a plan file written by ``polyfleet plan --format json`` (or yaml) and index it.

    A monthly plan is analysed one month at a time: ``month`` picks that month's fleet.
    """
    data, lines = read_yaml(plan_path, what="plan")
    if isinstance(data, dict) and data.get("periods") == "monthly":
        n = len(data.get("months") or [])
        if month is None or not 0 <= month < n:
            raise SpecError(
                f"a monthly plan: pick the month to stress with --month 0..{n - 1}",
                file=str(plan_path),
                line=line_of(lines, ("periods",)),
                path="periods",
            )
        data = data["months"][month]
        lines = {}
    elif month is not None:
        raise SpecError("--month needs a monthly plan (periods: monthly)", file=str(plan_path))
    try:
        return fleet_from_plan(data)
    except PlanDataError as exc:
        raise SpecError(
            exc.message, file=str(plan_path), line=line_of(lines, exc.path), path=dotted(exc.path)
        ) from None


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value / 1e6:,.3f}M" if abs(value) >= 1e6 else f"${value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def risk_tables(report: dict[str, Any]) -> RenderableType:
    """The risk report as a person reads it: cost, unserved demand by kind, providers worst first."""
    head = Text(
        f"{report['scenarios']:,} scenarios, seed {report['seed']}, "
        f"horizon {report['horizon_months']:g} months: "
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
            _pct(row["expected_fraction"]),
            _pct(row["p99_fraction"]),
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
            w["name"], w["kind"], _pct(w["expected_unserved_fraction"]), _pct(w["p99_unserved_fraction"])
        )
    providers = Table(title=f"Provider failure ({report['worst_provider_method']}), worst first")
    for col in ("provider", "extra cost if down", "mean unserved if down", "MC outages", "MC extra | outage"):
        providers.add_column(col, justify="left" if col == "provider" else "right")
    for row in report["providers"]:
        providers.add_row(
            row["provider"],
            _usd(row["down_extra_usd"]),
            _pct(row["down_mean_unserved_fraction"]),
            f"{row['mc_outage_scenarios']:,}",
            _usd(row["mc_extra_usd_given_outage"]),
        )
    return Group(head, unserved, workloads, providers, Text(f"Worst provider: {report['worst_provider']}"))


def _ray(address: str | None) -> tuple[Mapper, bool]:
    """A Ray mapper and whether this command started (and must stop) the Ray instance."""
    try:
        import ray
    except ImportError as exc:
        raise SpecError("--engine ray needs the 'ray' package (pip install ray)", file="--engine") from exc
    from polyfleet.risk import ray_mapper

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    return ray_mapper(address), started


@main.command("risk")
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scenarios", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="spec whose risk: section sets the assumptions (defaults otherwise)",
)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write here instead of stdout")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option("--address", help="Ray cluster address (--engine ray; default: start a local instance)")
@click.option("--month", type=click.IntRange(min=0), help="monthly plans: the month whose fleet to stress")
@_handles_errors
def risk_cmd(
    plan_path: Path,
    scenarios: int,
    seed: int,
    spec_path: Path | None,
    fmt: str,
    out: Path | None,
    engine: str,
    address: str | None,
    month: int | None,
) -> None:
    """Monte Carlo risk of PLAN (from `polyfleet plan --format json`): cost and unserved demand."""
    if address is not None and engine != "ray":
        raise click.BadParameter("--address needs --engine ray", param_hint="--address")
    fleet = load_fleet(plan_path, month)
    assumptions = load_risk_assumptions(spec_path)
    mapper, started = _ray(address) if engine == "ray" else (local_mapper, False)
    try:
        report = analyse(fleet, assumptions, scenarios, seed, mapper)
    finally:
        if started:
            import ray

            ray.shutdown()
    report["engine"] = engine
    _emit(_render(report, fmt, lambda: risk_tables(report)), out)
