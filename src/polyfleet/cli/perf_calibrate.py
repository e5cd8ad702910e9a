"""``polyfleet perf calibrate``: fit per-accelerator efficiencies from measured throughput points."""

from __future__ import annotations

import datetime
from pathlib import Path

import click

from polyfleet.catalog.io import load_bundled
from polyfleet.cli._common import OutputPath, _handles_errors, _show, _write_atomic, _wrote
from polyfleet.cli.perf import perf_cmd
from polyfleet.perf.calibration import dump_yaml, fit, read_measurements
from polyfleet.report.tables import records_table


@perf_cmd.command("calibrate")
@click.argument("measurements", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--out",
    type=OutputPath(),
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
    _show(
        data,
        fmt,
        lambda: records_table(
            f"calibration from {len(points)} points: median error {cal.error_before_pct:.1f}% -> "
            f"{cal.error_after_pct:.1f}%",
            rows,
            list(rows[0]) if rows else ["accelerator"],
        ),
    )
    _wrote(out)
