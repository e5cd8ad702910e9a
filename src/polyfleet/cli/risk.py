"""``polyfleet risk``: Monte Carlo of a plan under outages, capacity shocks, price moves, chip delays."""

from __future__ import annotations

from pathlib import Path

import click

from polyfleet.cli._app import main
from polyfleet.cli._common import (
    FORMATS,
    OutputPath,
    _emit,
    _handles_errors,
    _render,
    check_ray_address,
    plan_shape_errors,
    working,
)
from polyfleet.errors import SpecError
from polyfleet.report.risk import risk_tables
from polyfleet.risk import Mapper, PlanDataError, RiskAssumptions, analyse, fleet_from_plan, local_mapper
from polyfleet.risk.fleet import Fleet
from polyfleet.spec import load_spec
from polyfleet.yamlio import dotted, line_of, read_yaml

#: most scenarios one run draws: each keeps its cost and unserved demand (~10 s per million)
MAX_SCENARIOS = 10_000_000


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


def _ray(address: str | None) -> tuple[Mapper, bool]:
    """A Ray mapper and whether this command started (and must stop) the Ray instance."""
    try:
        import ray
    except ImportError as exc:
        raise SpecError("--engine ray needs the 'ray' package (pip install ray)", file="--engine") from exc
    from polyfleet.risk import ray_mapper

    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        except Exception as exc:  # Ray raises RuntimeError, ConnectionError, ValueError ...
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise SpecError(
                f"cannot start or reach Ray: {reason}", file="--address" if address else "--engine"
            ) from None
    return ray_mapper(address), started


@main.command("risk")
@click.argument("plan_path", metavar="PLAN", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--scenarios", type=click.IntRange(min=1, max=MAX_SCENARIOS), default=10_000, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="spec whose risk: section sets the assumptions (defaults otherwise)",
)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--out", type=OutputPath(), help="write here instead of stdout (- for stdout)")
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
    check_ray_address(address)  # before any work: Ray would retry a wrong one for minutes
    with plan_shape_errors(plan_path):
        fleet = load_fleet(plan_path, month)
    assumptions = load_risk_assumptions(spec_path)
    mapper, started = _ray(address) if engine == "ray" else (local_mapper, False)
    try:
        with working(f"simulating {scenarios:,} scenarios"):
            report = analyse(fleet, assumptions, scenarios, seed, mapper)
    finally:
        if started:
            import ray

            ray.shutdown()
    report["engine"] = engine
    _emit(_render(report, fmt, lambda: risk_tables(report)), out)
