"""``polyfleet`` commands.  Thin: parse, call the library, render, set the exit code.

Exit codes: 0 a plan; 1 infeasible, or no plan within the time limit; 2 bad input (one
line on stderr, never a traceback).
"""

from __future__ import annotations

import datetime
import io
import json
import os
import sys
import tempfile
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any

import click
import yaml
from rich.console import Console
from rich.table import Table

from polyfleet.catalog.io import csv_section, load_bundled
from polyfleet.catalog.skypilot import import_skypilot, offers_csv
from polyfleet.errors import SpecError, did_you_mean
from polyfleet.perf import sized_inference_perf
from polyfleet.perf.calibration import dump_yaml, fit, read_measurements
from polyfleet.plan import SolveOptions, plan
from polyfleet.report.tables import plan_tables, records_table
from polyfleet.spec import load_spec

FORMATS = click.Choice(["table", "json", "yaml"])


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"polyfleet: {message}", err=True)
    sys.exit(code)


def _handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn SpecError into one line on stderr and exit 2."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SpecError as exc:
            _fail(exc.render())
        return None

    return wrapper


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a failure never truncates an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _render(data: Any, fmt: str, table: Callable[[], Any]) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt == "yaml":
        return yaml.safe_dump(data, sort_keys=False)
    buffer = io.StringIO()
    Console(file=buffer, width=200, force_terminal=False, color_system=None).print(table())
    return buffer.getvalue()


def _emit(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text, nl=False)
    else:
        _write_atomic(out, text)
        click.echo(f"wrote {out}", err=True)


@click.group()
@click.version_option(package_name="polyfleet")
def main() -> None:
    """Plan AI work across clouds and chip vendors: cheapest fleet under lock-in and N-1 policies."""


@main.command("plan")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write here instead of stdout")
@click.option("--explain", is_flag=True, help="price each policy by re-solving without it")
@click.option("--gap", type=click.FloatRange(0, 1), default=1e-6, show_default=True, help="relative MIP gap")
@click.option(
    "--time-limit",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    help="solver time limit, seconds",
)
@_handles_errors
def plan_cmd(
    spec_path: Path, fmt: str, out: Path | None, explain: bool, gap: float, time_limit: float
) -> None:
    """Plan the cheapest fleet for SPEC (exit 1 when infeasible, 2 on bad input)."""
    spec = load_spec(spec_path)
    result = plan(spec, SolveOptions(mip_rel_gap=gap, time_limit_s=time_limit), with_explain=explain)
    data = result.to_dict()
    _emit(_render(data, fmt, lambda: plan_tables(data)), out)
    if not result.feasible:
        info = result.infeasibility
        click.echo(
            f"polyfleet: {result.status} ({info.family if info else '?'}): {info.message if info else ''}",
            err=True,
        )
        sys.exit(1)


_COMPARE_COLUMNS = [
    "accelerator",
    "vendor",
    "chips_per_replica",
    "max_batch",
    "tpot_ms",
    "output_tokens_per_s_per_chip",
    "usd_per_chip_hour",
    "usd_per_mtok_out",
    "provider",
    "reason",
]
_COMPARE_HEADERS = {
    "chips_per_replica": "chips",
    "max_batch": "batch",
    "output_tokens_per_s_per_chip": "tok/s/chip",
}
_CHART_SUFFIXES = (".png", ".svg")


def _compare_table_row(row: dict[str, Any]) -> dict[str, Any]:
    """Rounded, labelled cells of one comparison row for the person-facing table."""

    def num(value: float | None, fmt: str) -> str | None:
        return None if value is None else format(value, fmt)

    out = {_COMPARE_HEADERS.get(k, k): row[k] for k in _COMPARE_COLUMNS}
    out["tpot_ms"] = num(row["tpot_ms"], ".1f") if row["feasible"] else None
    out["tok/s/chip"] = num(row["output_tokens_per_s_per_chip"], ",.1f") if row["feasible"] else None
    out["usd_per_chip_hour"] = num(row["usd_per_chip_hour"], ".2f")
    out["usd_per_mtok_out"] = num(row["usd_per_mtok_out"], ".3f")
    if not row["feasible"]:
        out["chips"] = out["batch"] = None
    return out


def _write_chart_atomic(path: Path, fig: Any) -> None:
    """Save a figure via a temporary file and rename (like ``_write_atomic``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=path.suffix[1:])
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _perf_compare(
    model_name: str,
    *,
    input_tokens: int,
    output_tokens: int,
    tpot_ms: float | None,
    ttft_ms: float | None,
    max_chips: int | None,
    term: str,
    batching: str,
    fmt: str,
    chart: Path | None,
) -> None:
    """``polyfleet perf`` without ``--accelerator``: every bundled accelerator, cheapest first."""
    from polyfleet.perf.compare import compare_accelerators

    if chart is not None and chart.suffix.lower() not in _CHART_SUFFIXES:
        raise SpecError(f"chart file must end in .png or .svg, got {chart.name!r}", file="--chart")
    cat = load_bundled()
    rows = compare_accelerators(
        cat.models[model_name],
        cat.accelerators,
        cat.offers,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tpot_ms=tpot_ms,
        ttft_ms=ttft_ms,
        max_chips=max_chips,
        term=term,
        batching=batching,
    )
    slo = ", ".join(
        part
        for part in (
            f"{input_tokens} in / {output_tokens} out tokens",
            f"tpot <= {tpot_ms:g} ms" if tpot_ms is not None else "",
            f"ttft <= {ttft_ms:g} ms" if ttft_ms is not None else "",
            term,
        )
        if part
    )
    title = f"{model_name}: $/Mtok out by accelerator ({slo})"
    data = {
        "model": model_name,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "tpot_ms": tpot_ms,
        "ttft_ms": ttft_ms,
        "term": term,
        "accelerators": rows,
    }
    _emit(
        _render(
            data,
            fmt,
            lambda: records_table(
                title,
                [_compare_table_row(r) for r in rows],
                [_COMPARE_HEADERS.get(c, c) for c in _COMPARE_COLUMNS],
            ),
        ),
        None,
    )
    if chart is not None:
        from polyfleet.report.charts import perf_chart

        _write_chart_atomic(chart, perf_chart(rows, title))
        click.echo(f"wrote {chart}", err=True)
    if not any(r["feasible"] for r in rows):
        click.echo("polyfleet: no accelerator meets the SLO", err=True)
        sys.exit(1)


@main.group("perf", invoke_without_command=True)
@click.option("--model", "model_name", default=None, help="bundled model card name (required)")
@click.option(
    "--accelerator",
    "accelerator_id",
    default=None,
    help="bundled accelerator id; leave out (or 'all') to compare every accelerator's $/Mtok",
)
@click.option("--input-tokens", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--output-tokens", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--tpot-ms", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--ttft-ms", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--max-chips", type=click.IntRange(min=1), default=None)
@click.option(
    "--batching",
    type=click.Choice(["serial", "chunked"]),
    default="serial",
    show_default=True,
    help="serial: prefill apart from decode; chunked: prompts chunked into every decode step",
)
@click.option(
    "--term",
    type=click.Choice(["on-demand", "spot"]),
    default="on-demand",
    show_default=True,
    help="offer term to price (comparison only)",
)
@click.option(
    "--chart",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="write a .png or .svg bar chart of $/Mtok (comparison only)",
)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.pass_context
@_handles_errors
def perf_cmd(
    ctx: click.Context,
    model_name: str | None,
    accelerator_id: str | None,
    input_tokens: int,
    output_tokens: int,
    tpot_ms: float | None,
    ttft_ms: float | None,
    max_chips: int | None,
    batching: str,
    term: str,
    chart: Path | None,
    fmt: str,
) -> None:
    """Roofline estimate of one model on one accelerator, or on every accelerator with $/Mtok.

    Without --accelerator (or with 'all') the table lists, cheapest first, tokens/s per
    chip and $ per million output tokens on each bundled accelerator's cheapest offer.
    Exit 1 when no accelerator (or the one asked for) meets the SLO.
    """
    if ctx.invoked_subcommand is not None:
        return
    if model_name is None:
        raise click.UsageError("Missing option '--model'.")
    cat = load_bundled()
    if model_name not in cat.models:
        raise SpecError(f"unknown model {model_name!r}{did_you_mean(model_name, cat.models)}", file="--model")
    if accelerator_id is None or accelerator_id == "all":
        _perf_compare(
            model_name,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tpot_ms=tpot_ms,
            ttft_ms=ttft_ms,
            max_chips=max_chips,
            term=term,
            batching=batching,
            fmt=fmt,
            chart=chart,
        )
        return
    if chart is not None:
        raise SpecError("a chart compares every accelerator: leave out --accelerator", file="--chart")
    if accelerator_id not in cat.accelerators:
        raise SpecError(
            f"unknown accelerator {accelerator_id!r}{did_you_mean(accelerator_id, cat.accelerators)}",
            file="--accelerator",
        )
    perf = sized_inference_perf(
        cat.models[model_name],
        cat.accelerators[accelerator_id],
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        tpot_ms=tpot_ms,
        ttft_ms=ttft_ms,
        max_chips=max_chips,
        batching=batching,
    )
    data = {"model": model_name, "accelerator": accelerator_id, **perf.to_dict()}
    _emit(
        _render(
            data,
            fmt,
            lambda: records_table(
                f"{model_name} on {accelerator_id}",
                [{"field": k, "value": v} for k, v in data.items()],
                ["field", "value"],
            ),
        ),
        None,
    )
    if not perf.feasible:
        sys.exit(1)


_CATALOG_COLUMNS = {
    "accelerators": [
        "id",
        "vendor",
        "stack",
        "bf16_tflops",
        "fp8_tflops",
        "hbm_gb",
        "hbm_tbps",
        "confidence",
        "as_of",
    ],
    "offers": [
        "id",
        "provider",
        "region",
        "accelerator",
        "term",
        "chips_per_instance",
        "usd_per_chip_hour",
        "available_instances",
        "as_of",
    ],
    "models": ["name", "params_b", "active_params_b", "layers", "kv_heads", "head_dim", "attention", "dtype"],
    "api-offers": ["id", "provider", "model", "usd_per_mtok_in", "usd_per_mtok_out", "resells", "as_of"],
}


@main.group("catalog")
def catalog_cmd() -> None:
    """List the bundled catalog (accelerators, offers, models, api-offers) or import one."""


def _catalog_list(what: str, vendor: str | None, provider: str | None, stack: str | None, fmt: str) -> None:
    cat = load_bundled()
    section = {
        "accelerators": cat.accelerators,
        "offers": cat.offers,
        "models": cat.models,
        "api-offers": cat.api_offers,
    }[what]
    rows = []
    for record in section.values():
        row = record.model_dump()
        acc = cat.accelerators.get(row.get("accelerator", row.get("id", "")))
        if vendor and (acc is None or acc.vendor != vendor):
            continue
        if stack and (acc is None or acc.stack != stack):
            continue
        if provider and row.get("provider") != provider:
            continue
        rows.append(row)
    _emit(
        _render(rows, fmt, lambda: records_table(f"{what} ({len(rows)})", rows, _CATALOG_COLUMNS[what])), None
    )


def _catalog_list_command(what: str) -> None:
    @catalog_cmd.command(what, help=f"List the bundled {what}.")
    @click.option("--vendor", help="only this chip vendor (accelerators, offers)")
    @click.option("--provider", help="only this provider (offers, api-offers)")
    @click.option("--stack", help="only this software stack (accelerators, offers)")
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
    @_handles_errors
    def command(vendor: str | None, provider: str | None, stack: str | None, fmt: str) -> None:
        _catalog_list(what, vendor, provider, stack, fmt)


for _what in _CATALOG_COLUMNS:
    _catalog_list_command(_what)


@catalog_cmd.command("import-skypilot")
@click.argument("directory", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="write the offers here as CSV (name ending in offers.csv, e.g. skypilot-offers.csv)",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handles_errors
def import_skypilot_cmd(directory: Path, out: Path | None, fmt: str) -> None:
    """Import offers from a SkyPilot catalog folder (catalogs/v8 or the repository root)."""
    if out is not None and csv_section(out) != "offers":
        _fail(f"--out must be named offers.csv or <name>-offers.csv, got {out.name}")
    result = import_skypilot(directory, load_bundled().accelerators)
    counts = [
        {"provider": provider, "term": term, "offers": n} for (provider, term), n in result.counts().items()
    ]
    skipped = [s._asdict() for s in result.skipped]
    data = {"offers": len(result.offers), "counts": counts, "skipped": skipped}

    def tables() -> Any:
        group = Table.grid()
        group.add_row(
            records_table(f"imported offers ({len(result.offers)})", counts, ["provider", "term", "offers"])
        )
        group.add_row(records_table(f"skipped rows ({len(skipped)})", skipped, ["file", "line", "reason"]))
        return group

    _emit(_render(data, fmt, tables), None)
    if out is not None:
        _write_atomic(out, offers_csv(result.offers))
        click.echo(f"wrote {out}", err=True)


_PATHS_COLUMNS = [
    "kind",
    "offer",
    "provider",
    "resells",
    "usd_per_mtok_blended",
    "markup",
    "notes",
]


@catalog_cmd.command("paths")
@click.argument("model_name", metavar="MODEL")
@click.option("--input-tokens", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--output-tokens", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--tpot-ms", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handles_errors
def paths_cmd(
    model_name: str, input_tokens: int, output_tokens: int, tpot_ms: float | None, fmt: str
) -> None:
    """Every way to buy MODEL: direct, reseller, host api offers and self-hosting, cheapest first.

    Prices are USD per million tokens, input and output blended at the given mix.
    """
    from polyfleet.plan.paths import buy_paths

    rows = buy_paths(
        model_name, load_bundled(), input_tokens=input_tokens, output_tokens=output_tokens, tpot_ms=tpot_ms
    )
    data = {
        "model": model_name,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "tpot_ms": tpot_ms,
        "paths": rows,
    }
    cells = [
        {
            **r,
            "usd_per_mtok_blended": f"{r['usd_per_mtok_blended']:.3f}",
            "markup": f"x{r['markup_ratio']:.2f} (+{r['markup_pct']:.0f}%)",
        }
        for r in rows
    ]
    title = f"{model_name}: ways to buy, $/Mtok blended ({input_tokens} in / {output_tokens} out)"
    _emit(_render(data, fmt, lambda: records_table(title, cells, _PATHS_COLUMNS)), None)


@main.group("export")
def export_cmd() -> None:
    """Export a plan's placements for other tools."""


@export_cmd.command("skypilot")
@click.argument("plan_path", metavar="PLAN.json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--workload", "workload", required=True, help="training workload to export")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="write here instead of stdout")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="look offers up in this spec's catalog instead of the bundled one",
)
@_handles_errors
def export_skypilot_cmd(plan_path: Path, workload: str, out: Path | None, spec_path: Path | None) -> None:
    """Write a SkyPilot task YAML for a training workload's placement in PLAN.json."""
    from polyfleet.report.skypilot_task import skypilot_task_yaml

    try:
        data = json.loads(plan_path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SpecError(f"cannot read plan: {exc.strerror}", file=str(plan_path)) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        message = "not a plan JSON file (write one with `polyfleet plan --format json`)"
        raise SpecError(message, file=str(plan_path)) from exc
    catalog = load_spec(spec_path).catalog if spec_path is not None else load_bundled()
    _emit(skypilot_task_yaml(data, workload, catalog, plan_file=str(plan_path)), out)


if __name__ == "__main__":  # pragma: no cover
    main()


@perf_cmd.command("calibrate")
@click.argument("measurements", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("calibration.yaml"),
    show_default=True,
    help="calibration file to write (name it in a spec as `calibration: FILE`)",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handles_errors
def calibrate_cmd(measurements: Path, out: Path, fmt: str) -> None:
    """Fit compute and memory efficiencies per accelerator from measured throughput points."""
    cat = load_bundled()
    points = read_measurements(measurements, cat)
    cal = fit(points, cat, fitted_at=datetime.date.today().isoformat(), source=str(measurements))
    _write_atomic(out, dump_yaml(cal))
    data = cal.to_dict()
    rows = [
        {
            "accelerator": acc,
            "points": f.n_points,
            "compute": f.efficiency.compute,
            "memory": f.efficiency.memory,
            "error_before_pct": f.error_before_pct,
            "error_after_pct": f.error_after_pct,
            "fitted": f.fitted,
        }
        for acc, f in sorted(cal.accelerators.items())
    ]
    _emit(
        _render(
            data,
            fmt,
            lambda: records_table(
                f"calibration from {len(points)} points: median error {cal.error_before_pct:.1f}% -> "
                f"{cal.error_after_pct:.1f}%",
                rows,
                list(rows[0]) if rows else ["accelerator"],
            ),
        ),
        None,
    )
    click.echo(f"wrote {out}", err=True)
