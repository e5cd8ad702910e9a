"""``polyfleet catalog``: listings, SkyPilot import, every way to buy a model."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from polyfleet.catalog.io import csv_section, load_bundled
from polyfleet.catalog.skypilot import import_skypilot, offers_csv
from polyfleet.cli._app import main
from polyfleet.cli._common import (
    OutputPath,
    _emit,
    _fail,
    _handles_errors,
    _render,
    _write_atomic,
    _wrote,
    working,
)
from polyfleet.errors import SpecError, did_you_mean
from polyfleet.report.tables import records_table

_CATALOG_COLUMNS = {
    "accelerators": [
        "id",
        "vendor",
        "stack",
        "bf16_tflops",
        "fp8_tflops",
        "fp4_tflops",
        "int8_tops",
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
        "estimate",
        "as_of",
    ],
    "models": ["name", "params_b", "active_params_b", "layers", "kv_heads", "head_dim", "attention", "dtype"],
    "api-offers": [
        "id",
        "provider",
        "model",
        "usd_per_mtok_in",
        "usd_per_mtok_out",
        "resells",
        "retired",
        "as_of",
    ],
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
    known = {
        "--vendor": {a.vendor for a in cat.accelerators.values()},
        "--provider": {o.provider for o in [*cat.offers.values(), *cat.api_offers.values()]},
        "--stack": {a.stack for a in cat.accelerators.values()},
    }
    for flag, value in (("--vendor", vendor), ("--provider", provider), ("--stack", stack)):
        if value and value not in known[flag]:
            raise SpecError(f"unknown {flag[2:]} {value!r}{did_you_mean(value, known[flag])}", file=flag)
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
    type=OutputPath(),
    help="write the offers here as CSV (name ending in offers.csv, e.g. skypilot-offers.csv)",
)
@click.option(
    "--write",
    is_flag=True,
    help="refresh the bundled offers.csv: one row per shape and term, cheapest region (default: diff only)",
)
@click.option(
    "--catalog-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="folder holding the offers.csv to refresh (default: the bundled catalog/data)",
)
@click.option(
    "--as-of", default="", help="as_of for the imported rows (default: from the folder's SOURCE.md)"
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handles_errors
def import_skypilot_cmd(
    directory: Path, out: Path | None, write: bool, catalog_dir: Path | None, as_of: str, fmt: str
) -> None:
    """Import offers from a SkyPilot catalog folder (catalogs/v8 or the repository root).

    Prints what the import would change in the bundled offers.csv (added, changed
    old -> new, removed; rows of providers the folder lacks and hand-curated rows are
    kept) and writes it only with --write.  --out writes every imported region instead.
    """
    from polyfleet.catalog.models import Offer
    from polyfleet.catalog.refresh import csv_text, read_rows, refresh, render_diff
    from polyfleet.catalog.skypilot_refresh import onto_bundled
    from polyfleet.cli.catalog_refresh import bundled_dir

    if out is not None and csv_section(out) != "offers":
        _fail(f"--out must be named offers.csv or <name>-offers.csv, got {out.name}")
    target = (catalog_dir or bundled_dir()) / "offers.csv"
    if not target.is_file():
        _fail(f"--catalog-dir {target.parent}: no offers.csv there")
    with working(f"importing {directory}"):
        result = import_skypilot(directory, load_bundled().accelerators)
    if not result.offers and not result.skipped:
        _fail(f"{directory}: no SkyPilot catalog here: expected <cloud>/vms.csv (catalogs/v8 or its root)")
    if as_of:
        result.offers = {k: o.model_copy(update={"as_of": as_of}) for k, o in result.offers.items()}
    old = read_rows(target, Offer, "id")
    folded = onto_bundled(result.offers, old)  # type: ignore[arg-type]
    covered = {o.provider for o in folded.values()}
    diff = refresh(
        old,
        folded,
        owned=lambda row: row.provider in covered and "skypilot" in row.source.lower(),  # type: ignore[attr-defined]
        compare=("usd_per_chip_hour", "chips_per_instance", "accelerator"),
    )
    counts = [
        {"provider": provider, "term": term, "offers": n} for (provider, term), n in result.counts().items()
    ]
    skipped = [s._asdict() for s in result.skipped]
    data = {"offers": len(result.offers), "counts": counts, "skipped": skipped, "refresh": diff.to_dict()}

    def tables() -> Any:
        group = Table.grid()
        group.add_row(
            records_table(f"imported offers ({len(result.offers)})", counts, ["provider", "term", "offers"])
        )
        group.add_row(records_table(f"skipped rows ({len(skipped)})", skipped, ["file", "line", "reason"]))
        return group

    _emit(_render(data, fmt, tables), None)
    if fmt == "table":
        click.echo(render_diff(diff, f"bundled offers -> {target}"), nl=False)
    if out is not None:
        _write_atomic(out, offers_csv(result.offers))
        _wrote(out)
    if write:
        _write_atomic(target, csv_text(diff.rows, Offer))
        _wrote(target)


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
    from polyfleet.catalog.lifecycle import without_retired
    from polyfleet.plan.paths import buy_paths

    catalog = without_retired(load_bundled(), date.today())  # a retired row is no way to buy
    rows = buy_paths(
        model_name, catalog, input_tokens=input_tokens, output_tokens=output_tokens, tpot_ms=tpot_ms
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


_CHEAPEST_COLUMNS = [
    "offer",
    "provider",
    "region",
    "instance_type",
    "term",
    "chips_per_instance",
    "num_nodes",
    "usd_per_instance_hour",
    "usd_total",
]


@catalog_cmd.command("cheapest")
@click.argument("request", metavar="ACCELERATOR[:COUNT]")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--spot", is_flag=True, help="spot offers only (default: on-demand only)")
@click.option("--nodes", type=click.IntRange(min=1), default=1, show_default=True, help="instances")
@click.option("--at-least", is_flag=True, help="instances with COUNT or more accelerators (default: exactly)")
@click.option(
    "--skypilot-names",
    is_flag=True,
    help="match SkyPilot's accelerator names exactly, as its optimizer does (default: match the chip)",
)
@click.option(
    "--catalog",
    "entries",
    multiple=True,
    metavar="ENTRY",
    help="bundled, skypilot:DIR or a catalog file, as in a spec's catalog list; repeatable"
    " (default: bundled)",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handles_errors
def cheapest_cmd(
    request: str,
    hours: float,
    spot: bool,
    nodes: int,
    at_least: bool,
    skypilot_names: bool,
    entries: tuple[str, ...],
    fmt: str,
) -> None:
    """The cheapest offer(s) for COUNT x ACCELERATOR per instance, for --hours on --nodes instances.

    ACCELERATOR is a polyfleet id (nvidia-h100-sxm) or a SkyPilot name (H100, A100-80GB);
    COUNT is per instance and exact unless --at-least, as in SkyPilot's `accelerators: H100:8`.
    By default any offer of the same chip counts, whatever its cloud calls it (Verda's
    A100-80GB-640GB is an A100-80GB); --skypilot-names matches names the way SkyPilot does.
    Ties (same price in several regions) are all listed. Exit 1 when nothing fits.
    """
    from polyfleet.catalog.cheapest import OfferTable, load_catalog_entries, parse_request

    name, count = parse_request(request)
    catalog = load_catalog_entries(entries or ("bundled",))
    table = OfferTable(catalog.offers)
    names = "skypilot" if skypilot_names else "chip"
    choices = table.cheapest(
        name, count, hours, use_spot=spot, num_nodes=nodes, exact=not at_least, names=names
    )
    term = "spot" if spot else "on-demand"
    if not choices:
        most = table.most_available(name, count, use_spot=spot, exact=not at_least, names=names)
        if most:  # the size is offered: --nodes asked for more instances than one offer has
            _fail(
                f"--nodes: no {term} offer of {'at least' if at_least else 'exactly'} {count} x {name} "
                f"per instance has {nodes:,} instances available (at most {most:,})",
                code=1,
            )
        sizes = table.counts_for(name, use_spot=spot, names=names)
        offered = f"; {term} sizes offered: {', '.join(map(str, sizes))}" if sizes else f"; no {term} offers"
        _fail(
            f"no {term} offer has {'at least' if at_least else 'exactly'} {count} x {name} per instance"
            f"{offered}",
            code=1,
        )
    data = {
        "accelerator": name,
        "count": count,
        "exact": not at_least,
        "names": names,
        "hours": hours,
        "use_spot": spot,
        "num_nodes": nodes,
        "choices": [c.to_dict() for c in choices],
    }
    cells = [
        {
            **c.to_dict(),
            "usd_per_instance_hour": f"{c.usd_per_instance_hour:.4f}",
            "usd_total": f"{c.usd_total:,.2f}",
        }
        for c in choices
    ]
    title = f"cheapest {nodes} x {count} x {name} ({term}) for {hours:g} h: ${choices[0].usd_total:,.2f}"
    _emit(_render(data, fmt, lambda: records_table(title, cells, _CHEAPEST_COLUMNS)), None)
