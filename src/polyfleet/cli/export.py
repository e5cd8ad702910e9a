"""``polyfleet export``: hand plans to the tools that launch them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from polyfleet.catalog.io import load_bundled
from polyfleet.cli._app import main
from polyfleet.cli._common import OutputPath, _emit, _handles_errors, plan_shape_errors
from polyfleet.errors import SpecError
from polyfleet.spec import load_spec
from polyfleet.yamlio import loads_json, read_input


@main.group("export")
def export_cmd() -> None:
    """Export a plan's placements for other tools."""


@export_cmd.command("skypilot")
@click.argument("plan_path", metavar="PLAN.json", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--workload", "workload", required=True, help="training workload to export")
@click.option("--out", type=OutputPath(), help="write here instead of stdout (- for stdout)")
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
        data = loads_json(read_input(plan_path, "plan").decode("utf-8"), str(plan_path), unique_keys=True)
    except OSError as exc:
        raise SpecError(f"cannot read plan: {exc.strerror}", file=str(plan_path)) from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        message = "not a plan JSON file (write one with `polyfleet plan --format json`)"
        raise SpecError(message, file=str(plan_path)) from exc
    catalog = load_spec(spec_path).catalog if spec_path is not None else load_bundled()
    with plan_shape_errors(plan_path):
        task = skypilot_task_yaml(data, workload, catalog, plan_file=str(plan_path))
    _emit(task, out)
