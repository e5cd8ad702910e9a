"""``polyfleet frontier``: re-plan over provider caps x survival fractions, cost against risk."""

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
    _write_atomic_with,
    _wrote,
    working,
)
from polyfleet.errors import SpecError
from polyfleet.plan import SolveOptions
from polyfleet.risk.assumptions import RiskAssumptions
from polyfleet.spec import Spec, load_spec

_CHART_SUFFIXES = (".png", ".svg")


def load_spec_and_risk(path: Path) -> tuple[Spec, RiskAssumptions]:
    """The spec and its ``risk:`` section."""
    spec = load_spec(path)
    return spec, spec.model.risk


def parse_grid(text: str, option: str, *, low: float, low_open: bool) -> list[float]:
    """``"0.3,0.5,1"`` -> ``[0.3, 0.5, 1.0]``, each in (low, 1] or [low, 1]; else a one-line error."""
    values: list[float] = []
    bound = f"({low:g}, 1]" if low_open else f"[{low:g}, 1]"
    for part in text.split(","):
        try:
            value = float(part)
        except ValueError:
            raise SpecError(
                f"expected comma-separated numbers in {bound}, got {part.strip()!r}", file=option
            ) from None
        if not (low < value <= 1 if low_open else low <= value <= 1):
            raise SpecError(f"expected numbers in {bound}, got {value:g}", file=option)
        values.append(value)
    return sorted(set(values))


@main.command("frontier")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--provider-caps", default="0.3,0.5,0.7,1.0", show_default=True, help="max provider share of spend"
)
@click.option("--survival", default="0,0.5,0.8", show_default=True, help="fractions of peak kept after N-1")
@click.option("--chart", type=OutputPath(), help="write a .png or .svg chart here")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--out", type=OutputPath(), help="write here instead of stdout (- for stdout)")
@click.option(
    "--scenarios",
    type=click.IntRange(min=1, max=1_000_000),
    default=2000,
    show_default=True,
    help="Monte Carlo per point",
)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option(
    "--time-limit", type=click.FloatRange(min=0.1), default=30.0, show_default=True, help="per plan, s"
)
@_handles_errors
def frontier_cmd(
    spec_path: Path,
    provider_caps: str,
    survival: str,
    chart: Path | None,
    fmt: str,
    out: Path | None,
    scenarios: int,
    seed: int,
    time_limit: float,
) -> None:
    """Cost against risk for SPEC over a grid of provider caps and survival fractions."""
    caps = parse_grid(provider_caps, "--provider-caps", low=0.0, low_open=True)
    survivals = parse_grid(survival, "--survival", low=0.0, low_open=False)
    if chart is not None and chart.suffix.lower() not in _CHART_SUFFIXES:
        raise SpecError(f"chart file must end in .png or .svg, got {chart.name!r}", file="--chart")
    spec, assumptions = load_spec_and_risk(spec_path)

    from polyfleet.report.frontier import frontier_chart, frontier_table
    from polyfleet.risk.frontier import frontier

    options = SolveOptions(time_limit_s=time_limit)
    with working(f"planning {len(caps) * len(survivals) + 1} points of the frontier"):
        result = frontier(spec, caps, survivals, assumptions, scenarios=scenarios, seed=seed, options=options)
    _emit(_render(result, fmt, lambda: frontier_table(result)), out)
    if chart is not None:
        fig = frontier_chart(result, f"Price of diversification: {spec_path.name}")
        _write_atomic_with(chart, lambda fh: fig.savefig(fh, format=chart.suffix[1:].lower()))
        _wrote(chart)
