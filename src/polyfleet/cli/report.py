"""``polyfleet report``: one self-contained HTML page of a plan (docs/report.md)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from polyfleet.cli._app import main
from polyfleet.cli._common import OutputPath, _handles_errors, _write_atomic, _wrote
from polyfleet.cli._terminal import working
from polyfleet.errors import InfeasibleError, SpecError
from polyfleet.spec import Spec, build_spec, load_spec
from polyfleet.yamlio import dotted, line_of, read_yaml


def _is_plan(data: Any) -> bool:
    """A document written by ``polyfleet plan --format json`` (a spec has no ``status``)."""
    return isinstance(data, dict) and "status" in data and "total_usd" in data


def _monthly_spec(spec: Spec) -> Spec:
    """The spec planned month by month (``--monthly``); refused when it has fewer than 2 months."""
    months = spec.model.horizon_months
    if spec.model.periods == "monthly":
        return spec
    if months < 2 or months != int(months):
        raise SpecError(
            f"--monthly needs a spec with periods: monthly or a whole horizon_months >= 2, got {months:g}",
            file="--monthly",
        )
    return dataclasses.replace(spec, model=spec.model.model_copy(update={"periods": "monthly"}))


#: top-level plan fields the report reads: (key, type, what is accepted)
_PLAN_FIELDS: tuple[tuple[str, type | tuple[type, ...], str], ...] = (
    ("total_usd", (int, float), "a number"),
    ("purchases", list, "a list of purchases"),
    ("workloads", list, "a list of workloads"),
    ("survival", dict, "a mapping of provider -> served fraction"),
    ("capacity_shares", dict, "a mapping of group -> value -> share"),
    ("commitments", list, "a list of commitments"),
)


def _check_plan(plan_dict: dict[str, Any], source: Path, lines: dict) -> None:
    """Refuse a plan file whose allocations cannot be read, naming the field (as ``polyfleet risk``)."""
    from polyfleet.risk import PlanDataError, fleet_from_plan

    if plan_dict.get("status") not in ("optimal", "feasible"):
        return
    for key, kind, what in _PLAN_FIELDS:  # the top-level fields the report reads, when present
        value = plan_dict.get(key)
        if key in plan_dict and (not isinstance(value, kind) or isinstance(value, bool)):
            raise SpecError(
                f"expected {what} (a plan written by `polyfleet plan --format json`), got {value!r:.60}",
                file=str(source),
                line=line_of(lines, (key,)),
                path=key,
            )
    monthly = plan_dict.get("periods") == "monthly"
    try:
        if monthly and not plan_dict.get("months"):
            raise PlanDataError("expected a list of months in a monthly plan", ("months",))
        fleet_from_plan(plan_dict["months"][0] if monthly else plan_dict)
    except PlanDataError as exc:
        path = ("months", 0, *exc.path) if monthly else exc.path
        raise SpecError(exc.message, file=str(source), line=line_of(lines, path), path=dotted(path)) from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # a shape the reader missed
        raise SpecError(
            f"not a plan written by `polyfleet plan --format json` ({type(exc).__name__}: {exc})",
            file=str(source),
        ) from None
    for key in ("shares", "policy"):
        if not isinstance(plan_dict.get(key), dict):
            raise SpecError(
                "expected a mapping (a plan written by `polyfleet plan --format json`)",
                file=str(source),
                line=line_of(lines, (key,)),
                path=key,
            )


@main.command("report")
@click.argument("source", metavar="SPEC_OR_PLAN", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=OutputPath(), required=True, help="the HTML file to write")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="with a plan file: its spec (baselines, risk assumptions, frontier, $/Mtok per chip)",
)
@click.option("--risk", is_flag=True, help="add a Monte Carlo risk run (histogram, p50/p95/CVaR)")
@click.option("--scenarios", type=click.IntRange(min=1, max=1_000_000), default=10_000, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--frontier", is_flag=True, help="add the cost vs lock-in frontier (a plan per provider cap)")
@click.option("--monthly", is_flag=True, help="add the month-by-month capacity (spec with months)")
@click.option(
    "--deal", is_flag=True, help="add `polyfleet deal`'s answer: should we sign? (spec with deals:)"
)
@click.option(
    "--time-limit", type=click.FloatRange(min=0.1), default=60.0, show_default=True, help="per plan, s"
)
@_handles_errors
def report_cmd(
    source: Path,
    out: Path,
    spec_path: Path | None,
    risk: bool,
    scenarios: int,
    seed: int,
    frontier: bool,
    monthly: bool,
    deal: bool,
    time_limit: float,
) -> None:
    """Write one self-contained HTML report of SPEC_OR_PLAN (a spec is planned first)."""
    from polyfleet.plan import SolveOptions, plan
    from polyfleet.report.html import collect, render
    from polyfleet.risk.frontier import check_single_period

    options = SolveOptions(time_limit_s=time_limit)
    data, lines = read_yaml(source, what="spec or plan")
    if _is_plan(data):
        plan_dict = data
        _check_plan(plan_dict, source, lines)
        spec = load_spec(spec_path) if spec_path is not None else None
        if frontier and spec is not None:
            check_single_period(spec)
    else:
        if spec_path is not None:
            raise SpecError("--spec goes with a plan file; SPEC_OR_PLAN is already a spec", file="--spec")
        spec = build_spec(data, file=str(source), lines=lines, base_dir=source.parent)
        if frontier:  # a monthly spec: refused before any plan is solved
            check_single_period(spec)
        with working(f"planning {source.name} (time limit {time_limit:g} s)", delay_s=2.0):
            plan_dict = plan(spec, options).to_dict()
    if plan_dict.get("status") not in ("optimal", "feasible"):
        info = plan_dict.get("infeasible") or {}
        click.echo(
            f"polyfleet: {plan_dict.get('status')} ({info.get('family', '?')}): {info.get('message', '')}",
            err=True,
        )
        sys.exit(1)
    if (frontier or monthly or deal) and spec is None:
        flag = "--frontier" if frontier else "--monthly" if monthly else "--deal"
        raise SpecError(f"{flag} needs the spec: pass a spec, or --spec with a plan file", file=flag)
    if deal and spec is not None and (not spec.model.deals or spec.model.uncertainty is None):
        raise SpecError("--deal needs a spec with a deals: and an uncertainty: section", file="--deal")
    monthly_plan = None
    if monthly and plan_dict.get("periods") != "monthly":
        assert spec is not None
        with working(f"planning {source.name} month by month (--monthly)", delay_s=2.0):
            result = plan(_monthly_spec(spec), options)
        if not result.feasible:
            info = result.infeasibility
            click.echo(
                f"polyfleet: --monthly: {result.status} ({info.family if info else '?'}): "
                f"{info.message if info else ''}",
                err=True,
            )
            sys.exit(1)
        monthly_plan = result.to_dict()
    parts = [
        *(["single-provider and single-vendor plans"] if spec is not None else []),
        *([f"risk ({scenarios:,} scenarios)"] if risk else []),
        *(["frontier"] if frontier else []),
        *(["deal (should we sign?)"] if deal else []),
        "page",
    ]
    try:
        with working("report: " + ", ".join(parts), delay_s=2.0):
            figures = collect(
                plan_dict,
                spec,
                risk_scenarios=scenarios if risk else None,
                frontier=frontier,
                monthly_plan=monthly_plan,
                deal=deal,
                seed=seed,
                options=options,
            )
            page = render(figures, f"polyfleet report: {source.name}")
    except InfeasibleError as exc:  # --deal: the mean scenario cannot be served without deals
        click.echo(f"polyfleet: {exc}", err=True)
        sys.exit(1)
    except RuntimeError as exc:  # --deal: a scenario LP HiGHS could not solve (as `polyfleet deal`)
        if not deal:
            raise
        click.echo(f"polyfleet: deal: {exc}", err=True)
        sys.exit(1)
    except SpecError:  # a ValueError too: bad input named by its own file, not the plan's
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if spec is not None and not _is_plan(data):
            raise  # a spec we planned ourselves: a bug, not bad input
        raise SpecError(
            f"not a plan written by `polyfleet plan --format json` ({type(exc).__name__}: {exc})",
            file=str(source),
        ) from None
    _write_atomic(out, page)
    _wrote(out)
