"""``polyfleet plan``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from polyfleet.cli._app import main
from polyfleet.cli._common import (
    FORMATS,
    OutputPath,
    _emit,
    _handles_errors,
    _render,
    _write_atomic,
    _wrote,
    working,
)
from polyfleet.gateway.routes import routes_yaml
from polyfleet.plan import SolveOptions, plan
from polyfleet.report.monthly import monthly_tables
from polyfleet.report.tables import plan_tables
from polyfleet.spec import load_spec


@main.command("plan")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--out", type=OutputPath(), help="write here instead of stdout (- for stdout)")
@click.option("--explain", is_flag=True, help="price each policy by re-solving without it")
@click.option("--gap", type=click.FloatRange(0, 1), default=1e-6, show_default=True, help="relative MIP gap")
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="solver time limit, seconds",
)
@click.option(
    "--routes",
    "routes_out",
    type=OutputPath(),
    help="also write a routes file for `polyfleet serve` (needs --backends)",
)
@click.option(
    "--backends",
    "backends_map",
    type=click.Path(dir_okay=False, path_type=Path),
    help="offer id -> backend url, key variable and prices (docs/gateway.md)",
)
@_handles_errors
def plan_cmd(
    spec_path: Path,
    fmt: str,
    out: Path | None,
    explain: bool,
    gap: float,
    time_limit: float,
    routes_out: Path | None,
    backends_map: Path | None,
) -> None:
    """Plan the cheapest fleet for SPEC (exit 1 when infeasible, 2 on bad input)."""
    if (routes_out is None) != (backends_map is None):
        raise click.BadParameter("--routes and --backends go together", param_hint="--routes")
    spec = load_spec(spec_path)
    with working(f"planning {spec_path.name} (time limit {time_limit:g} s)", delay_s=2.0):
        result = plan(spec, SolveOptions(mip_rel_gap=gap, time_limit_s=time_limit), with_explain=explain)
    data = result.to_dict()
    for line in data.get("warnings", []):  # the spec's, planned as given (spec_checks)
        click.echo(f"polyfleet: warning: {line}", err=True)
    routes_text = routes_yaml(data, backends_map) if backends_map is not None and result.feasible else None
    tables = monthly_tables if data.get("periods") == "monthly" and result.feasible else plan_tables
    # an infeasible run (or one with no plan in the time limit) never touches --out
    _emit(_render(data, fmt, lambda: tables(data)), out if result.feasible else None)
    if routes_out is not None and routes_text is not None:
        _write_atomic(routes_out, routes_text)
        _wrote(routes_out)
    if not result.feasible:
        info = result.infeasibility
        click.echo(
            f"polyfleet: {result.status} ({info.family if info else '?'}): {info.message if info else ''}",
            err=True,
        )
        sys.exit(1)
