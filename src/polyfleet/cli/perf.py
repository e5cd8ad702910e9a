"""``polyfleet perf``: one model's estimate on one accelerator, or on every accelerator with $/Mtok.

The subcommands live beside it: ``perf calibrate`` (``cli/perf_calibrate.py``) and
``perf configs`` (``cli/perf_configs.py``); they register on ``perf_cmd``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from polyfleet.catalog.io import load_bundled
from polyfleet.cli._app import main
from polyfleet.cli._common import FORMATS, OutputPath, _handles_errors, _show, _write_atomic_with, _wrote
from polyfleet.errors import SpecError, did_you_mean
from polyfleet.perf import inference_perf
from polyfleet.perf.configs import best_inference_perf
from polyfleet.perf.defaults import SLO_PERCENTILE
from polyfleet.report.tables import records_table
from polyfleet.spec_document import INPUT_TOKENS_CV, MAX_TOKENS_CV, OUTPUT_TOKENS_CV

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
_DTYPES = ["bf16", "fp16", "fp8", "int8", "fp4", "int4"]
_SEARCH_CHIPS = 8
"""Chips of one instance the configuration search uses when --chips-per-node is not given."""


def length_cv_options(fn: Any) -> Any:
    """``--input-cv``/``--output-cv``: the request lengths' spread (``perf``, ``perf configs``)."""
    fn = click.option(
        "--output-cv",
        "output_tokens_cv",
        type=click.FloatRange(min=0, max=MAX_TOKENS_CV),
        default=OUTPUT_TOKENS_CV,
        show_default=True,
        help="output lengths' coefficient of variation (std/mean): requests in flight hold "
        "output*(1+cv^2)/2 tokens of KV; 0 = all the same length",
    )(fn)
    return click.option(
        "--input-cv",
        "input_tokens_cv",
        type=click.FloatRange(min=0, max=MAX_TOKENS_CV),
        default=INPUT_TOKENS_CV,
        show_default=True,
        help="prompt lengths' coefficient of variation (std/mean): the serial prefill queue's "
        "wait scales by (1+cv^2)/2 (M/G/1); 1 = exponential lengths, the M/M/1 queue",
    )(fn)


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
    """Save a figure atomically, in the format its suffix names."""
    _write_atomic_with(path, lambda fh: fig.savefig(fh, format=path.suffix[1:]))


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
    percentile: float = SLO_PERCENTILE,
    **perf_kwargs: Any,
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
        percentile=percentile,
        **perf_kwargs,
    )
    slo = ", ".join(
        part
        for part in (
            f"{input_tokens} in / {output_tokens} out tokens",
            f"tpot <= {tpot_ms:g} ms" if tpot_ms is not None else "",
            f"ttft <= {ttft_ms:g} ms" if ttft_ms is not None else "",
            f"p{percentile * 100:g}" if tpot_ms is not None or ttft_ms is not None else "",
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
        **perf_kwargs,
        "accelerators": rows,
    }
    _show(
        data,
        fmt,
        lambda: records_table(
            title,
            [_compare_table_row(r) for r in rows],
            [_COMPARE_HEADERS.get(c, c) for c in _COMPARE_COLUMNS],
            drop_order=("reason", "vendor", "provider", "batch", "usd_per_chip_hour", "chips"),
        ),
    )
    if chart is not None and any(r["feasible"] for r in rows):  # a run that exits 1 writes no chart
        from polyfleet.report.charts import perf_chart

        _write_chart_atomic(chart, perf_chart(rows, title))
        _wrote(chart)
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
    type=OutputPath(),
    default=None,
    help="write a .png or .svg bar chart of $/Mtok (comparison only)",
)
@click.option("--dtype", type=click.Choice(_DTYPES), default=None, help="weight precision (default: card's)")
@click.option("--kv-dtype", type=click.Choice(_DTYPES), default=None, help="KV-cache precision")
@click.option("--tp", type=click.IntRange(min=1), default=None, help="fix the tensor-parallel degree")
@click.option("--pp", type=click.IntRange(min=1), default=None, help="fix the pipeline stages (with --tp)")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="fix the batch: no SLO search")
@click.option(
    "--chips-per-node",
    type=click.IntRange(min=1),
    default=None,
    help=f"chips of one instance: the configuration search's bound (default {_SEARCH_CHIPS})",
)
@click.option(
    "--percentile",
    type=click.FloatRange(min=0, max=100, min_open=True, max_open=True),
    default=None,
    help="meet --tpot-ms/--ttft-ms at this percentile under Poisson arrivals (default 99 with a target)",
)
@click.option("--prefix-cache-hit", type=click.FloatRange(min=0, max=1, max_open=True), default=0.0)
@length_cv_options
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
    dtype: str | None,
    kv_dtype: str | None,
    tp: int | None,
    pp: int | None,
    batch: int | None,
    chips_per_node: int | None,
    percentile: float | None,
    prefix_cache_hit: float,
    input_tokens_cv: float,
    output_tokens_cv: float,
    fmt: str,
) -> None:
    """Roofline estimate of one model on one accelerator, or on every accelerator with $/Mtok.

    With --accelerator: the best configuration (tensor/pipeline parallelism, batch) within
    --chips-per-node chips, SLO targets met at --percentile under Poisson arrivals; --tp,
    --pp and --batch fix the configuration instead (--batch: a fixed-batch estimate, no
    SLO search).  Without --accelerator (or with 'all') the table lists, cheapest first,
    tokens/s per chip and $ per million output tokens on each bundled accelerator.
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
        fixed = [f for f, v in (("--tp", tp), ("--pp", pp), ("--batch", batch), ("--dtype", dtype)) if v]
        if fixed:
            raise SpecError(f"{fixed[0]} needs --accelerator (a configuration of one chip)", file=fixed[0])
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
            percentile=SLO_PERCENTILE if percentile is None else percentile / 100,
            prefix_cache_hit=prefix_cache_hit,
            input_tokens_cv=input_tokens_cv,
            output_tokens_cv=output_tokens_cv,
        )
        return
    if chart is not None:
        raise SpecError("a chart compares every accelerator: leave out --accelerator", file="--chart")
    if accelerator_id not in cat.accelerators:
        raise SpecError(
            f"unknown accelerator {accelerator_id!r}{did_you_mean(accelerator_id, cat.accelerators)}",
            file="--accelerator",
        )
    if pp is not None and tp is None:
        raise SpecError("--pp needs --tp (a fixed layout)", file="--pp")
    card = cat.models[model_name]
    update = {k: v for k, v in (("dtype", dtype), ("kv_dtype", kv_dtype)) if v}
    card = card.model_copy(update=update) if update else card
    targets = tpot_ms is not None or ttft_ms is not None
    pct = percentile / 100 if percentile is not None else (SLO_PERCENTILE if targets else None)
    kwargs: dict[str, Any] = dict(
        input_tokens=input_tokens, output_tokens=output_tokens, tpot_ms=tpot_ms, ttft_ms=ttft_ms,
        batching=batching, percentile=pct, prefix_cache_hit=prefix_cache_hit,
        input_tokens_cv=input_tokens_cv, output_tokens_cv=output_tokens_cv,
    )  # fmt: skip
    acc = cat.accelerators[accelerator_id]
    if tp is not None or batch is not None:
        perf = inference_perf(
            card, acc, tensor_parallel=tp, pipeline_stages=pp, batch=batch, max_chips=max_chips,
            chips_per_node=chips_per_node, min_batch=batch or 1, **kwargs,
        )  # fmt: skip
    else:
        perf = best_inference_perf(
            card, acc, chips_per_node=chips_per_node or _SEARCH_CHIPS, max_chips=max_chips, **kwargs
        )
    data = {
        "model": model_name,
        "accelerator": accelerator_id,
        "configuration": perf.configuration,
        "input_tokens_cv": input_tokens_cv,
        "output_tokens_cv": output_tokens_cv,
        **perf.to_dict(),
    }
    _show(
        data,
        fmt,
        lambda: records_table(
            f"{model_name} on {accelerator_id}",
            [{"field": k, "value": v} for k, v in data.items()],
            ["field", "value"],
        ),
    )
    if not perf.feasible:  # the table says why too; stderr carries it for a script or a pipe
        click.echo(f"polyfleet: {model_name} on {accelerator_id}: {perf.reason}", err=True)
        sys.exit(1)
