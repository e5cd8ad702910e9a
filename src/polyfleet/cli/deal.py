"""``polyfleet deal``: should we sign?  Commitment deals evaluated under uncertainty."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click
from rich.console import Group
from rich.table import Table
from rich.text import Text

from polyfleet.cli._app import main
from polyfleet.cli._common import FORMATS, OutputPath, _emit, _handles_errors, _render, check_ray_address
from polyfleet.errors import InfeasibleError, SpecError
from polyfleet.spec import load_spec

SWEEPS = ("discount", "growth")


def parse_sweep(text: str | None) -> tuple[str, list[float]] | None:
    """``discount=0.1:0.4:0.05`` -> ("discount", [0.1, 0.15, ..., 0.4])."""
    if text is None:
        return None
    bad = SpecError(
        f"expected PARAM=START:STOP:STEP with PARAM one of {', '.join(SWEEPS)}, got {text!r}",
        file="--sweep",
    )
    name, _, rng = text.partition("=")
    parts = rng.split(":")
    if name not in SWEEPS or len(parts) != 3:
        raise bad
    try:
        lo, hi, step = (float(p) for p in parts)
    except ValueError:
        raise bad from None
    if not all(math.isfinite(v) for v in (lo, hi, step)) or step <= 0 or hi < lo or (hi - lo) / step > 200:
        raise bad
    values = [round(lo + i * step, 10) for i in range(int((hi - lo) / step + 1e-9) + 1)]
    if name == "discount" and not all(0 < v < 1 for v in values):
        raise SpecError("discount values must lie in (0, 1)", file="--sweep")
    return name, values


def _money(x: float) -> str:
    return f"{x:,.0f}"


def deal_tables(report: dict[str, Any]) -> Group:
    """The report for people."""
    rec = report["recommended"]
    parts: list[Any] = [
        Text(
            f"Recommended: {rec['label']}  (objective ${_money(rec['objective_usd'])}, "
            f"within {rec['gap'] * 100:.2f}% of the bound, {rec['iterations']} iterations; "
            f"{report['scenarios']['in_sample']} scenarios in sample, "
            f"{report['scenarios']['out_of_sample']} out of sample)"
        )
    ]
    alt = Table(title="Alternatives (out of sample, USD)")
    for col in ("alternative", "deals", "expected", "p50", "p95", "CVaR", "minus recommended", "+-SE"):
        alt.add_column(col, justify="left" if col in ("alternative", "deals") else "right")
    for a in report["alternatives"]:
        alt.add_row(a["alternative"], a["deals"], _money(a["expected_usd"]), _money(a["p50_usd"]),
                    _money(a["p95_usd"]), _money(a["cvar_usd"]), _money(a["minus_recommended_usd"]),
                    _money(a["se_usd"]))  # fmt: skip
    parts.append(alt)
    vss = report["vss"]
    line = (
        f"VSS ${_money(vss['usd'])} (+- {_money(vss['se_usd'])}; "
        f"mean-scenario deal: {vss['mean_value_deals']})"
    )
    if "evpi" in report:
        line += f"; EVPI ${_money(report['evpi']['usd'])}"
    parts.append(Text(line))
    reg = Table(title="Regret by scenario family: recommended vs no deal")
    for col in ("family", "share", "USD", "in words"):
        reg.add_column(col)
    for r in report["regret"]:
        reg.add_row(
            r["family"], f"{r['share']:.0%}", _money(r["recommended_minus_no_deal_usd"]), r["in_words"]
        )
    parts.append(reg)
    if report["unused_worst_5pct"]:
        un = Table(title="Unused commitment, mean over the worst 5% of scenarios")
        for col in ("deal", "unused USD", "idle instance-months"):
            un.add_column(col)
        for u in report["unused_worst_5pct"]:
            un.add_row(u["deal"], _money(u["unused_usd"]), str(u.get("idle_instance_months", "")))
        parts.append(un)
    if "sweep" in report:
        sw = Table(title=f"Break-even sweep: {report['sweep']['parameter']}")
        for col in ("value", "decision", "objective"):
            sw.add_column(col)
        for p in report["sweep"]["points"]:
            sw.add_row(f"{p['value']:g}", p["deals"], _money(p["objective_usd"]))
        parts.append(sw)
        parts.append(Text("flips: " + ("; ".join(report["sweep"]["flips"]) or "none in the range")))
    return Group(*parts)


@main.command("deal")
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--sweep", help="break-even sweep: discount=0.1:0.4:0.05 or growth=-0.2:0.4:0.1")
@click.option(
    "--out-of-sample",
    "oos",
    type=click.IntRange(min=1, max=1_000_000),
    help="overrides uncertainty.out_of_sample",
)
@click.option("--no-evpi", is_flag=True, help="skip the wait-and-see solves (one SAA per scenario)")
@click.option("--format", "fmt", type=FORMATS, default="table", show_default=True)
@click.option("--out", type=OutputPath(), help="write here instead of stdout (- for stdout)")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1, max=256),
    default=1,
    show_default=True,
    help="local processes for the in-sample LPs and (--engine local) the out-of-sample chunks",
)
@click.option("--address", help="Ray cluster address (--engine ray; default: start a local instance)")
@_handles_errors
def deal_cmd(
    spec_path: Path,
    sweep: str | None,
    oos: int | None,
    no_evpi: bool,
    fmt: str,
    out: Path | None,
    engine: str,
    workers: int,
    address: str | None,
) -> None:
    """Which deals in SPEC to sign, at what size, and what that is worth under its uncertainty."""
    from polyfleet.deals.analysis import analyse
    from polyfleet.deals.evaluate import local_mapper, process_mapper, ray_mapper

    if address is not None and engine != "ray":
        raise click.BadParameter("--address needs --engine ray", param_hint="--address")
    check_ray_address(address)  # before any work: Ray would retry a wrong one for minutes
    sweep_spec = parse_sweep(sweep)
    spec = load_spec(spec_path)
    started = False
    mapper = process_mapper(workers) if workers > 1 else local_mapper
    if engine == "ray":
        try:
            import ray
        except ImportError as exc:
            raise SpecError(
                "--engine ray needs the 'ray' package (pip install ray)", file="--engine"
            ) from exc
        started = not ray.is_initialized()
        if started:  # here, not at the first scenario: a failure is one line naming the flag
            try:
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            except Exception as exc:  # Ray raises RuntimeError, ConnectionError, ValueError ...
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                flag = "--address" if address else "--engine"
                raise SpecError(f"cannot start or reach Ray: {reason}", file=flag) from None
        mapper = ray_mapper(address)
    try:
        report = analyse(
            spec, mapper, sweep=sweep_spec, out_of_sample_count=oos, evpi=not no_evpi, workers=workers
        )
    except InfeasibleError as exc:
        click.echo(f"polyfleet: {exc}", err=True)
        raise SystemExit(1) from None
    except RuntimeError as exc:  # a scenario LP HiGHS could not solve: say so, no traceback
        click.echo(f"polyfleet: deal: {exc}", err=True)
        raise SystemExit(1) from None
    finally:
        if started:
            import ray

            ray.shutdown()
    report["engine"] = engine
    _emit(_render(report, fmt, lambda: deal_tables(report)), out)
