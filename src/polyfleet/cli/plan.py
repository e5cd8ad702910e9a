"""``polyfleet plan``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from polyfleet.cli._app import main
from polyfleet.cli._common import FORMATS, OutputPath, _handles_errors, _show, _write_atomic, _wrote, working
from polyfleet.errors import SpecError
from polyfleet.gateway.config import Backend
from polyfleet.gateway.routes import _FROM_PLAN, routes_yaml
from polyfleet.plan import SolveOptions, plan
from polyfleet.report.monthly import monthly_tables
from polyfleet.report.tables import plan_tables
from polyfleet.spec import load_spec
from polyfleet.yamlio import Lines, dotted, line_of, read_yaml


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
@click.option(
    "--offline-ok",
    is_flag=True,
    help="no warning about catalog rows older than catalog.max_age_days or estimated prices",
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
    offline_ok: bool = False,
) -> None:
    """Plan the cheapest fleet for SPEC (exit 1 when infeasible, 2 on bad input)."""
    if (routes_out is None) != (backends_map is None):
        raise click.BadParameter("--routes and --backends go together", param_hint="--routes")
    backend_lines = _check_backends(backends_map) if backends_map is not None else {}
    spec = load_spec(spec_path)
    with working(f"planning {spec_path.name} (time limit {time_limit:g} s)", delay_s=2.0):
        result = plan(spec, SolveOptions(mip_rel_gap=gap, time_limit_s=time_limit), with_explain=explain)
    data = result.to_dict()
    routes_text = None
    if backends_map is not None and result.feasible:
        try:
            routes_text = routes_yaml(data, backends_map)
        except SpecError as exc:  # the gateway names the field; add its line in the file
            if exc.line is None and exc.file == str(backends_map) and exc.path:
                known = [
                    k for k in backend_lines if exc.path == dotted(k) or exc.path.startswith(dotted(k) + ".")
                ]
                exc.line = backend_lines[max(known, key=len)] if known else None
            raise
    # warnings after the routes: a backends file the plan cannot use is one line on stderr
    for line in data.get("warnings", []):  # the spec's, planned as given (spec_checks)
        click.echo(f"polyfleet: warning: {line}", err=True)
    catalog_notes = _catalog_notes(spec, data, offline_ok)  # estimates in the JSON, warnings on stderr
    tables = monthly_tables if data.get("periods") == "monthly" and result.feasible else plan_tables
    # an infeasible run (or one with no plan in the time limit) never touches --out
    _show(data, fmt, lambda: catalog_notes(tables(data)), out if result.feasible else None)
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


def _check_backends(path: Path) -> Lines:
    """The backends file's shape, before any planning: one line naming the field and its line.

    ``models`` maps workload names to served model names, ``backends`` offer ids to a
    mapping with at least ``url``, ``routes`` is a mapping (docs/gateway.md); the entries'
    own fields are checked when the routes are built.
    """
    data, lines = read_yaml(path, what="backend mapping")
    file = str(path)

    def bad(message: str, *key: Any) -> SpecError:
        return SpecError(message, file=file, line=line_of(lines, key) or 1, path=dotted(key))

    if not isinstance(data, dict) or "backends" not in data:
        raise SpecError("expected a mapping with a 'backends' section", file=file, line=1)
    models = data.get("models")
    if models is not None:
        if not isinstance(models, dict):
            raise bad(f"expected a mapping of workload name -> served model name, got {models!r}", "models")
        for workload, name in models.items():
            if not isinstance(name, str) or not name:
                raise bad(f"expected a served model name (text), got {name!r}", "models", workload)
    backends = data["backends"]
    if not isinstance(backends, dict) or not backends:
        raise bad(f"expected a mapping of offer id -> {{url: …}}, got {backends!r}", "backends")
    for offer, entry in backends.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) or not entry["url"]:
            raise bad(f"expected a mapping with at least 'url' (text), got {entry!r}", "backends", offer)
        try:  # the fields a routes file's backend takes (those the plan sets are refused later)
            Backend.model_validate({**entry, "name": str(offer)})
        except ValidationError as exc:
            for error in exc.errors():
                if error["type"] == "extra_forbidden" or error["loc"][0] in ("name", *_FROM_PLAN):
                    continue
                value = error.get("input")
                got = "" if isinstance(value, dict) else f" (got {value!r})"
                raise bad(f"{error['msg']}{got}", "backends", offer, *error["loc"]) from None
    routes = data.get("routes")
    if routes is not None and not isinstance(routes, dict):
        raise bad(f"expected a mapping of routes file settings, got {routes!r}", "routes")
    return lines


def _catalog_notes(spec: Any, data: dict[str, Any], offline_ok: bool) -> Callable[[Any], Any]:
    """Catalog hook (issue 18): name estimated rows in ``data`` and under the table; warn on stderr.

    Retired models a spec names are always said; rows older than ``catalog.max_age_days``
    and estimated prices only without ``--offline-ok``.
    """
    from rich.console import Group
    from rich.text import Text

    from polyfleet.catalog.settings import catalog_max_age_days
    from polyfleet.catalog.staleness import estimated_rows_used, plan_warnings

    estimates = estimated_rows_used(data, spec.catalog) if data.get("feasible", True) else []
    if estimates:
        data["estimates"] = estimates
    models = [w.model for w in spec.workloads if getattr(w, "kind", "") == "api"]  # api: named by the user
    max_age = catalog_max_age_days(spec.model.catalog)
    warnings = plan_warnings(data, spec.catalog, models=models, max_age_days=max_age, offline_ok=offline_ok)
    for line in warnings:
        click.echo(f"polyfleet: {line}", err=True)

    def with_note(table: Any) -> Any:
        if not estimates:
            return table
        named = ", ".join(e["offer"] for e in estimates)
        note = f"Estimated prices (no public price; `estimates` in --format json): {named}"
        return Group(table, Text(note))

    return with_note
