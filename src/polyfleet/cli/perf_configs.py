"""``polyfleet perf configs``: the Pareto front of serving configurations of one model on one chip."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from polyfleet.catalog.io import load_bundled
from polyfleet.cli._common import FORMATS, OutputPath, _handles_errors, _show, _wrote
from polyfleet.cli.perf import (
    _CHART_SUFFIXES,
    _DTYPES,
    _SEARCH_CHIPS,
    _write_chart_atomic,
    length_cv_options,
    perf_cmd,
)
from polyfleet.errors import SpecError, did_you_mean
from polyfleet.perf.defaults import SLO_PERCENTILE
from polyfleet.report.tables import records_table

_CONFIG_COLUMNS = [
    "configuration",
    "chips_per_replica",
    "tpot_ms",
    "ttft_ms",
    "output_tokens_per_s_per_chip",
    "usd_per_mtok_out",
    "limit",
    "bound",
]


@perf_cmd.command("configs")
@click.option("--model", "model_name", required=True, help="bundled model card name")
@click.option("--accelerator", "accelerator_id", required=True, help="bundled accelerator id")
@click.option("--input-tokens", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--output-tokens", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--tpot-ms", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--ttft-ms", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--chips-per-node", type=click.IntRange(min=1), default=_SEARCH_CHIPS, show_default=True)
@click.option("--dtype", "dtypes", type=click.Choice(_DTYPES), multiple=True, help="precisions to try")
@click.option(
    "--percentile",
    type=click.FloatRange(min=0, max=100, min_open=True, max_open=True),
    default=None,
    help="meet the targets at this percentile under Poisson arrivals (default 99 with a target)",
)
@click.option("--batching", type=click.Choice(["serial", "chunked"]), default="serial", show_default=True)
@click.option("--term", type=click.Choice(["on-demand", "spot"]), default="on-demand", show_default=True)
@click.option(
    "--chart",
    type=OutputPath(),
    default=None,
    help="write a .png or .svg chart of the Pareto front",
)
@click.option("--all", "show_all", is_flag=True, help="list every evaluated configuration")
@length_cv_options
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@_handles_errors
def configs_cmd(
    model_name: str,
    accelerator_id: str,
    input_tokens: int,
    output_tokens: int,
    tpot_ms: float | None,
    ttft_ms: float | None,
    chips_per_node: int,
    dtypes: tuple[str, ...],
    percentile: float | None,
    batching: str,
    term: str,
    chart: Path | None,
    show_all: bool,
    input_tokens_cv: float,
    output_tokens_cv: float,
    fmt: str,
) -> None:
    """Serving configurations on the throughput-per-dollar vs latency Pareto front.

    Searches tensor/pipeline/expert parallelism within --chips-per-node chips, the
    precisions given (default: the card's) and batches up to the SLO-limited one, and
    lists the configurations no other beats on both tokens per dollar and TPOT.  The
    price is the cheapest --term offer of the accelerator whose instance holds the
    replica (tokens/s per chip when the chip has no such offer).  Exit 1 when no
    configuration meets the SLO.
    """
    from polyfleet.perf.configs import pareto_front, search_configs

    if chart is not None and chart.suffix.lower() not in _CHART_SUFFIXES:
        raise SpecError(f"chart file must end in .png or .svg, got {chart.name!r}", file="--chart")
    cat = load_bundled()
    if model_name not in cat.models:
        raise SpecError(f"unknown model {model_name!r}{did_you_mean(model_name, cat.models)}", file="--model")
    if accelerator_id not in cat.accelerators:
        raise SpecError(
            f"unknown accelerator {accelerator_id!r}{did_you_mean(accelerator_id, cat.accelerators)}",
            file="--accelerator",
        )
    targets = tpot_ms is not None or ttft_ms is not None
    pct = percentile / 100 if percentile is not None else (SLO_PERCENTILE if targets else None)
    configs = search_configs(
        cat.models[model_name], cat.accelerators[accelerator_id], input_tokens=input_tokens,
        output_tokens=output_tokens, tpot_ms=tpot_ms, ttft_ms=ttft_ms, percentile=pct,
        chips_per_node=chips_per_node, dtypes=list(dtypes) or None, batching=batching, batches=True,
        input_tokens_cv=input_tokens_cv, output_tokens_cv=output_tokens_cv,
    )  # fmt: skip
    offers = sorted(
        (o for o in cat.offers.values() if o.accelerator == accelerator_id and o.term == term),
        key=lambda o: (o.usd_per_chip_hour, o.id),
    )

    def row(c: Any) -> dict[str, Any]:
        out = c.to_dict()
        offer = next((o for o in offers if o.chips_per_instance >= c.perf.chips_per_replica), None)
        rate = c.perf.output_tokens_per_s_per_chip
        out["offer"] = offer.id if offer else None
        priced = offer is not None and rate > 0
        out["usd_per_mtok_out"] = offer.usd_per_chip_hour / (rate * 3600) * 1e6 if priced else None
        out["tokens_per_usd"] = rate * 3600 / offer.usd_per_chip_hour if priced else None
        return out

    def per_usd(c: Any) -> float:
        offer = next((o for o in offers if o.chips_per_instance >= c.perf.chips_per_replica), None)
        return c.perf.output_tokens_per_s_per_chip / offer.usd_per_chip_hour if offer else 0.0

    front = [row(c) for c in pareto_front(configs, per_usd if offers else None)]
    every = [row(c) for c in configs if c.perf.feasible]
    slo = ", ".join(
        p
        for p in (
            f"{input_tokens} in / {output_tokens} out",
            f"tpot <= {tpot_ms:g} ms" if tpot_ms is not None else "",
            f"ttft <= {ttft_ms:g} ms" if ttft_ms is not None else "",
            f"p{pct * 100:g}" if pct is not None else "full batch",
        )
        if p
    )
    title = f"{model_name} on {accelerator_id}: Pareto configurations ({slo})"
    shown = every if show_all else front
    data = {
        "model": model_name,
        "accelerator": accelerator_id,
        "percentile": pct,
        "input_tokens_cv": input_tokens_cv,
        "output_tokens_cv": output_tokens_cv,
        "pareto": front,
    }
    if show_all:
        data["configurations"] = every

    def cells(r: dict[str, Any]) -> dict[str, Any]:
        out = {k: r.get(k) for k in _CONFIG_COLUMNS}
        for k, f in (("tpot_ms", ".1f"), ("ttft_ms", ".0f"), ("output_tokens_per_s_per_chip", ",.1f")):
            out[k] = format(r[k], f)
        out["usd_per_mtok_out"] = None if r["usd_per_mtok_out"] is None else f"{r['usd_per_mtok_out']:.3f}"
        return out

    headers = {
        "chips_per_replica": "chips",
        "output_tokens_per_s_per_chip": "tok/s/chip",
        "usd_per_mtok_out": "$/Mtok",
    }
    _show(
        data,
        fmt,
        lambda: records_table(
            title,
            [{headers.get(k, k): v for k, v in cells(r).items()} for r in shown],
            [headers.get(c, c) for c in _CONFIG_COLUMNS],
        ),
    )
    if chart is not None and front:  # a run that exits 1 never touches the output path (README)
        from polyfleet.report.configs_chart import configs_chart

        _write_chart_atomic(chart, configs_chart(every, front, title))
        _wrote(chart)
    if not front:
        reasons = {c.perf.reason.split(":")[0] for c in configs}
        click.echo(f"polyfleet: no configuration meets the SLO ({', '.join(sorted(reasons))})", err=True)
        sys.exit(1)
