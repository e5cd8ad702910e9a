"""``polyfleet usage``: what the gateway's requests cost, grouped by backend, provider, key, model or day."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from polyfleet.cli._app import main
from polyfleet.cli._common import FORMATS, OutputPath, _emit, _fail, _handles_errors, _render
from polyfleet.gateway import load_routes
from polyfleet.gateway.ledger import GROUPS, Ledger, adherence, shown, sqlite_path, summarise

DEFAULT_LEDGER = "sqlite:///polyfleet-usage.db"


def _table(rows: list[dict[str, Any]], by: str) -> Table:
    table = Table(title="plan adherence" if by == "plan" else f"usage by {by}")
    if by == "plan":
        columns = ["model", "backend", "role", "requests", "planned_share", "share", "planned_rps", "rps"]
        columns += ["idle_share", "cost_usd", "overflow_usd", "fallback_usd"]
        by = "model"
    else:
        columns = list(rows[0]) if rows else [by, "requests", "cost_usd"]
    for column in columns:
        table.add_column(column, justify="left" if column == by else "right")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row[c]) for c in columns))
    return table


def _check_sqlite_ledger(url: str) -> None:
    """Refuse, reading only, a path that holds no polyfleet ledger.

    Why read-only first: opening a file as a ``Ledger`` creates its ``requests`` table, so
    ``usage`` pointed at someone else's SQLite database (or an empty file) wrote into it.
    A name past the system's limit is one line too (it was an ``OSError`` traceback).
    """
    path = sqlite_path(url)
    try:
        if not Path(path).is_file():
            _fail(f"{path}: no ledger here (serve writes one; pass --ledger or --routes)")
        con = sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True)
        try:
            found = con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'requests'")
            has_table = found.fetchone() is not None
        finally:
            con.close()
    except (OSError, sqlite3.Error) as exc:  # strerror: the reason without the name again
        _fail(f"{shown(url)}: cannot open the ledger: {getattr(exc, 'strerror', None) or exc}")
    if not has_table:
        _fail(f"{shown(url)}: not a polyfleet ledger: no requests table (serve writes one)")


def _check_values(rows: list[dict[str, Any]], url: str) -> None:
    """Refuse what no gateway writes and no output can show: bytes (a BLOB) and sums past
    the largest float (``Infinity`` is not JSON), naming the column."""
    for row in rows:
        for column, value in row.items():
            if isinstance(value, bytes) or (isinstance(value, float) and not math.isfinite(value)):
                what = "binary data (a BLOB)" if isinstance(value, bytes) else f"{value} (past any float)"
                expected = "expected text or a finite number"
                _fail(f"{shown(url)}: not a polyfleet ledger: {column} is {what}, {expected}")


@main.command("usage")
@click.option("--ledger", help=f"ledger URL (default: the routes file's, else {DEFAULT_LEDGER})")
@click.option(
    "--routes",
    "routes_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="take the ledger URL from this routes file",
)
@click.option("--by", type=click.Choice(GROUPS), default="model", show_default=True)
@click.option(
    "--adherence",
    "adherence_",
    is_flag=True,
    help="with --routes from `plan --routes`: each backend's share and rate against the plan",
)
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--out", type=OutputPath(), help="write here instead of stdout (- for stdout)")
@_handles_errors
def usage_cmd(
    ledger: str | None, routes_path: Path | None, adherence_: bool, by: str, fmt: str, out: Path | None
) -> None:
    """Summarise the gateway's ledger: requests, errors, tokens, cost and latency per group.

    With --by model, each row also carries requests_per_s, input_tokens and
    output_tokens as observed: the fields of an inference workload for the next plan.
    With --adherence (needs --routes), how traffic followed the plan: per backend its
    role, planned and actual share and rate, committed capacity left idle, and what
    overflow and fallback backends cost.
    """
    if adherence_ and routes_path is None:
        raise click.BadParameter(
            "--adherence needs --routes (the roles come from it)", param_hint="--adherence"
        )
    if ledger and routes_path and not adherence_:
        raise click.BadParameter("give --ledger or --routes, not both", param_hint="--ledger")
    routes = load_routes(routes_path) if routes_path else None
    url = ledger or (routes.ledger if routes is not None else DEFAULT_LEDGER)
    if not url.startswith(("sqlite://", "postgresql://", "postgres://")):
        _fail(f"--ledger: expected sqlite:///FILE or postgresql://…, got {shown(url)!r}")
    if url.startswith("sqlite://"):
        _check_sqlite_ledger(url)
    try:
        store = Ledger(url).open()
    except (RuntimeError, OSError, sqlite3.Error) as exc:
        _fail(f"{shown(url)}: cannot open the ledger: {exc}")
    try:
        if adherence_ and routes is not None:
            rows = adherence(store, routes)
            if not rows:
                _fail(f"{routes_path}: no model has backend roles (write it with `polyfleet plan --routes`)")
            by = "plan"
        else:
            rows = summarise(store, by)
    except sqlite3.Error as exc:  # a file that is not a ledger (not SQLite, or another schema)
        _fail(f"{shown(url)}: not a polyfleet ledger: {exc}")
    except (TypeError, ValueError, OverflowError) as exc:  # text in ts, inf in a token count
        _fail(f"{shown(url)}: not a polyfleet ledger: a value of the wrong type or size ({exc})")
    finally:
        store.close()
    _check_values(rows, url)
    _emit(_render(rows, fmt, lambda: _table(rows, by)), out)
