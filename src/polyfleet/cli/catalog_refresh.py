"""``polyfleet catalog`` refresh and health commands: import-prices, import-hf-config, status, coverage.

Importers print a diff (added, changed old -> new, removed) and write the bundled file
(or ``--catalog-dir``'s copy) only with ``--write``; hand-curated rows the source lacks,
or fixed after the source was taken, are kept (``catalog/refresh.py``).
"""

from __future__ import annotations

from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, get_args

import click
from pydantic import BaseModel, ValidationError

from polyfleet.catalog.io import load_bundled
from polyfleet.catalog.models import ApiOffer, ModelCard, Term
from polyfleet.catalog.refresh import Diff, csv_text, read_rows, refresh, render_diff
from polyfleet.cli._common import _emit, _fail, _handles_errors, _render, _write_atomic, _wrote
from polyfleet.cli.catalog import catalog_cmd
from polyfleet.errors import SpecError
from polyfleet.report.tables import records_table

CATALOG_DIR_HELP = "folder holding the catalog CSVs to refresh (default: the bundled catalog/data)"


def bundled_dir() -> Path:
    """The folder of the bundled CSVs (the package's ``catalog/data``)."""
    return Path(str(resources.files("polyfleet.catalog") / "data"))


def _folder(catalog_dir: Path | None) -> Path:
    folder = catalog_dir or bundled_dir()
    if not folder.is_dir():
        _fail(f"--catalog-dir {folder}: not a folder")
    return folder


def _catalog_csv(catalog_dir: Path | None, name: str) -> Path:
    """``name`` in the catalog folder; a folder without it is one line naming the flag."""
    path = _folder(catalog_dir) / name
    if not path.is_file():
        _fail(f"--catalog-dir {path.parent}: no {name} there (expected a folder of catalog CSVs)")
    return path


def _read_rows(path: Path, model: type[BaseModel], key: str) -> dict[str, BaseModel]:
    """:func:`read_rows`, with a file that is not UTF-8 text or cannot be read as one line."""
    try:
        return read_rows(path, model, key)
    except UnicodeDecodeError as exc:
        _fail(f"{path}: not UTF-8 text (byte {exc.start}); expected a catalog CSV")
    except OSError as exc:
        _fail(f"{path}: cannot read ({exc.strerror or exc})")
    return {}


def _finish(diff: Diff, path: Path, model: type, title: str, write: bool, fmt: str) -> None:
    """Print the diff; write the merged rows to ``path`` when asked."""
    if fmt == "json":
        _emit(_render({"file": str(path), **diff.to_dict(), "written": write}, "json", lambda: None), None)
    else:
        click.echo(render_diff(diff, f"{title} -> {path.name}"), nl=False)
    if write:
        _write_atomic(path, csv_text(diff.rows, model))
        _wrote(path)
    elif not diff.empty and fmt != "json":
        click.echo("(dry run: --write writes the file)", err=True)


# --- import-prices --------------------------------------------------------------------------


@catalog_cmd.command("import-prices")
@click.option(
    "--genai",
    "genai_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="a pydantic/genai-prices data.json (e.g. ../shared/data/genai-prices/data.json)",
)
@click.option(
    "--litellm",
    "litellm_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="LiteLLM's model_prices_and_context_window.json",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="also import this model (polyfleet name, e.g. llama-4-maverick); repeatable"
    " (default: the models the bundled api offers and model cards already name)",
)
@click.option("--as-of", default="", help="as_of for the imported rows (default: from the source)")
@click.option(
    "--prune",
    is_flag=True,
    help="also remove rows an earlier import made (genai-prices/LiteLLM) that the lists no longer have",
)
@click.option("--write", is_flag=True, help="write api_offers.csv (default: print the diff only)")
@click.option("--catalog-dir", type=click.Path(file_okay=False, path_type=Path), help=CATALOG_DIR_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handles_errors
def import_prices_cmd(
    genai_path: Path | None,
    litellm_path: Path | None,
    models: tuple[str, ...],
    as_of: str,
    prune: bool,
    write: bool,
    catalog_dir: Path | None,
    fmt: str,
) -> None:
    """Refresh api_offers.csv from genai-prices and/or LiteLLM price lists.

    Imports the models the bundled api offers and model cards name, plus --model ones.
    A bundled row with the same provider and model takes the listed price (unless the
    row was fixed after the list's date); several bundled rows for one provider and model
    (global and regional endpoints) are left as they are.  Nothing is removed without --prune.
    """
    from polyfleet.catalog.import_prices import onto_bundled_ids, read_genai_prices, read_litellm
    from polyfleet.catalog.staleness import as_of_date

    if genai_path is None and litellm_path is None:
        _fail("give --genai data.json and/or --litellm model_prices_and_context_window.json")
    path = _catalog_csv(catalog_dir, "api_offers.csv")
    old = _read_rows(path, ApiOffer, "id")
    cards = (
        _read_rows(path.with_name("models.csv"), ModelCard, "name")
        if path.with_name("models.csv").exists()
        else {}
    )
    retired_models = {r.model for r in old.values() if r.retired}  # type: ignore[attr-defined]
    scope = {r.model for r in old.values()} | set(cards) | set(models)  # type: ignore[attr-defined]
    imported: dict[str, ApiOffer] = {}
    for reader, source_path in ((read_genai_prices, genai_path), (read_litellm, litellm_path)):
        if source_path is None:
            continue
        stamp = as_of or _source_as_of(source_path)
        kwargs: dict[str, Any] = {"models": scope, "source": _source_label(source_path), "as_of": stamp}
        if reader is read_genai_prices:
            kwargs["on"] = as_of_date(stamp) or date.today()
        result = reader(source_path, **kwargs)
        imported.update(result.offers)
    seen = {(r.provider, r.model) for r in imported.values()}
    rows = onto_bundled_ids(imported, old.values())  # type: ignore[arg-type]
    # a model retired somewhere is not added at new hosts; existing rows keep their dates
    rows = {k: r for k, r in rows.items() if k in old or r.model not in retired_models}
    covered = {r.provider for r in rows.values()}

    def owned(row: Any) -> bool:
        return (
            prune
            and ("genai-prices" in row.source or "LiteLLM" in row.source)
            and row.provider in covered
            and (row.provider, row.model) not in seen
            and not row.retired
        )

    diff = refresh(old, rows, owned=owned, compare=("usd_per_mtok_in", "usd_per_mtok_out"))
    _finish(diff, path, ApiOffer, "api offers", write, fmt)


def _source_note(path: Path) -> str:
    """The text of the SOURCE.md beside ``path``; "" when there is none, or it is not a regular
    file or cannot be read (a directory was an IsADirectoryError traceback, a FIFO a hang)."""
    note = path.with_name("SOURCE.md")
    try:
        return note.read_text(encoding="utf-8", errors="replace") if note.is_file() else ""
    except OSError:
        return ""


def _source_label(path: Path) -> str:
    """Where imported rows come from: the pinned commit when a SOURCE.md names one."""
    import re

    text = _source_note(path)
    if text:
        commit = re.search(r"\b([0-9a-f]{40})\b", text)
        if commit and "genai-prices" in text:
            return f"https://github.com/pydantic/genai-prices/blob/{commit.group(1)}/prices/data.json"
    name = (
        "LiteLLM model_prices_and_context_window.json"
        if "litellm" in path.name.lower() or "model_prices" in path.name
        else "genai-prices data.json"
    )
    return f"{name} ({path.name})"


def _source_as_of(path: Path) -> str:
    """The source's date: from a SOURCE.md next to it (``(YYYY-MM-DD)``), else undated."""
    import re

    text = _source_note(path)
    if text:
        found = re.search(r"\((\d{4}-\d{2}-\d{2})\)", text)
        if found:
            return f"<={found.group(1)}"
    return "undated"


# --- import-hf-config ----------------------------------------------------------------------


@catalog_cmd.command("import-hf-config")
@click.argument("config", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--name", help="model card name (default: the config's folder name)")
@click.option("--params-b", type=click.FloatRange(min=0, min_open=True), help="total parameters, billions")
@click.option("--active-params-b", type=click.FloatRange(min=0, min_open=True), help="active per token (MoE)")
@click.option("--source", default="", help="where the config comes from (URL)")
@click.option("--as-of", default="", help="the config's date")
@click.option("--write", is_flag=True, help="add or update the card in models.csv")
@click.option("--catalog-dir", type=click.Path(file_okay=False, path_type=Path), help=CATALOG_DIR_HELP)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handles_errors
def import_hf_config_cmd(
    config: Path,
    name: str | None,
    params_b: float | None,
    active_params_b: float | None,
    source: str,
    as_of: str,
    write: bool,
    catalog_dir: Path | None,
    fmt: str,
) -> None:
    """Make a model card from a Hugging Face config.json (printed; --write adds it to models.csv)."""
    from polyfleet.catalog.hf_config import card_from_config, read_config

    try:
        card = card_from_config(
            read_config(config),
            name=name or config.resolve().parent.name,
            params_b=params_b,
            active_params_b=active_params_b,
            source=source or str(config),
            as_of=as_of,
        )
    except SpecError:
        raise  # already names the file
    except ValidationError as exc:  # the card the config makes is refused: name its field
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"the model card it makes: {first['msg']}", file=str(config), path=field) from None
    except ValueError as exc:
        raise SpecError(str(exc), file=str(config)) from exc
    path = _catalog_csv(catalog_dir, "models.csv")
    old = _read_rows(path, ModelCard, "name")
    diff = refresh(
        old,
        {card.name: card},
        owned=lambda row: False,
        compare=(
            "params_b",
            "active_params_b",
            "layers",
            "kv_heads",
            "head_dim",
            "attention",
            "full_attention_layers",
        ),
    )
    if fmt == "json":
        click.echo(_render({"card": card.model_dump(), **diff.to_dict()}, "json", lambda: None), nl=False)
    else:
        kv = card.kv_bytes_per_token
        click.echo(
            f"{card.name}: {card.params_b:g}B params"
            + (f" ({card.active_params_b:g}B active)" if card.active_params_b else "")
            + f", {card.layers} layers, {card.attention}, KV {kv / 1024:.1f} KiB/token"
            if kv
            else f"{card.name}: no KV-cache figure"
        )
        click.echo(render_diff(diff, f"model cards -> {path.name}"), nl=False)
    if write:
        _write_atomic(path, csv_text(diff.rows, ModelCard))
        _wrote(path)


# --- status and coverage -------------------------------------------------------------------


@catalog_cmd.command("status")
@click.option(
    "--max-age-days",
    type=click.FloatRange(min=0),
    default=None,
    help="flag rows older than this (default 120)",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handles_errors
def status_cmd(max_age_days: float | None, fmt: str) -> None:
    """Bundled rows by age, source and estimate flag: what to re-check before buying."""
    from polyfleet.catalog.staleness import MAX_AGE_DAYS, age_days

    limit = MAX_AGE_DAYS if max_age_days is None else max_age_days
    cat = load_bundled()
    today = date.today()
    rows = []
    for section, records in (("offers", cat.offers), ("api_offers", cat.api_offers)):
        for record in records.values():
            age = age_days(record.as_of, today)
            rows.append(
                {
                    "section": section,
                    "id": record.id,
                    "provider": record.provider,
                    "as_of": record.as_of,
                    "age_days": age,
                    "stale": age is None or age > limit,
                    "estimate": bool(getattr(record, "estimate", False)),
                    "retired": getattr(record, "retired", ""),
                    "source": record.source.split(" ; ")[0],
                }
            )
    rows.sort(key=lambda r: (-(r["age_days"] if r["age_days"] is not None else 10**6), r["section"], r["id"]))
    summary = {
        "today": today.isoformat(),
        "max_age_days": limit,
        "rows": len(rows),
        "stale": sum(r["stale"] for r in rows),
        "undated": sum(r["age_days"] is None for r in rows),
        "estimates": sum(r["estimate"] for r in rows),
        "retired": sum(bool(r["retired"]) for r in rows),
    }

    def table() -> Any:
        title = (
            f"catalog status on {summary['today']}: {summary['rows']} priced rows, "
            f"{summary['stale']} older than {limit:g} days or undated, "
            f"{summary['estimates']} estimates, {summary['retired']} retired"
        )
        cells = [{**r, "age_days": "undated" if r["age_days"] is None else r["age_days"]} for r in rows]
        return records_table(
            title,
            cells,
            ["age_days", "section", "id", "as_of", "estimate", "retired", "source"],
            drop_order=["source", "retired", "as_of"],
        )

    _emit(_render({**summary, "by_age": rows}, fmt, table), None)


@catalog_cmd.command("coverage")
@click.option(
    "--term",
    type=click.Choice([*get_args(Term), "any"]),
    default="any",
    show_default=True,
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_handles_errors
def coverage_cmd(term: str, fmt: str) -> None:
    """Provider x chip matrix of the bundled offers: cheapest $/chip-h, blank where none."""
    from polyfleet.catalog.coverage import coverage_matrix

    cat = load_bundled()
    matrix = coverage_matrix(cat.offers.values(), None if term == "any" else term)
    data = {"term": term, **matrix}

    def table() -> Any:
        short = {c: c.split("-", 1)[-1] for c in matrix["chips"]}
        cells = [
            {"provider": p, **{short[c]: (f"{v:.2f}" if v is not None else "") for c, v in row.items()}}
            for p, row in matrix["cells"].items()
        ]
        filled = sum(v is not None for row in matrix["cells"].values() for v in row.values())
        title = (
            f"cheapest $/chip-h by provider x chip ({term}): {filled} of "
            f"{len(matrix['providers']) * len(matrix['chips'])} cells"
        )
        return records_table(title, cells, ["provider", *short.values()])

    _emit(_render(data, fmt, table), None)


__all__ = ["bundled_dir"]
