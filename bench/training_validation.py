"""Validate the training model's throughput on TPUs against published MaxText figures.

Run from the repository root::

    .venv/bin/python bench/training_validation.py [--measurements PATH]

The measurements (default ``examples/published_training.csv``, each row sourced) are
MaxText's "optimized models tiering" pre-training results on TPU v6e and v5p: tokens/s per
chip at a stated chip count, with the MFU MaxText reports.  polyfleet predicts tokens/s
per chip as its sustained FLOP/s per chip at that many chips (``training_perf``: peak x
``MFU_BY_STACK['xla']`` x scaling efficiency, no fitting) divided by the FLOPs per token
of its planning model, 6 x active parameters.  MaxText's MFU also counts (causal)
attention FLOPs, which 6N leaves out, so long sequences on small models read high.

Prints predicted vs measured per row, the signed error, and the MFU each side implies; a
report, exit 0 (2 when the measurements are missing).
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

from polyfleet.catalog.io import load_bundled
from polyfleet.perf.training import training_perf

DEFAULT = Path("examples/published_training.csv")


def predict(model: str, accelerator: str, chips: int) -> tuple[float, float]:
    """(tokens/s per chip, MFU used) polyfleet predicts for ``model`` on ``chips`` chips."""
    catalog = load_bundled()
    card, acc = catalog.models[model], catalog.accelerators[accelerator]
    # size a run so the model lands on exactly ``chips`` chips: the per-chip rate at n
    # chips is what is asked, so any run whose deadline needs n chips will do
    probe = training_perf(card, acc, tokens_b=1.0, deadline_days=1.0)
    per_chip = probe.sustained_flops_per_chip
    for _ in range(5):  # the rate depends (weakly) on the chip count: settle it
        flops = per_chip * chips * 86400 * 0.999
        perf = training_perf(card, acc, tokens_b=flops / (6 * card.active_b * 1e9) / 1e9, deadline_days=1.0)
        per_chip = perf.sustained_flops_per_chip
    if abs(perf.chips - chips) > max(1, 0.01 * chips):
        raise SystemExit(f"{model} on {accelerator}: sized {perf.chips} chips, not {chips}")
    return per_chip / (6 * card.active_b * 1e9), perf.mfu * perf.scaling_efficiency


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurements", type=Path, default=DEFAULT)
    args = parser.parse_args(argv)
    if not args.measurements.is_file():
        print(f"{args.measurements}: no such file", file=sys.stderr)
        return 2
    with args.measurements.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    columns = ["model", "accelerator", "chips", "seq", "predicted tok/s/chip", "measured", "error"]
    columns += ["MFU polyfleet", "MFU reported"]
    print("| " + " | ".join(columns) + " |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    errors = []
    for row in rows:
        chips = int(row["chips"])
        predicted, mfu = predict(row["model"], row["accelerator"], chips)
        measured = float(row["tokens_per_s_per_chip"])
        err = predicted / measured - 1
        errors.append(err)
        print(
            f"| {row['model']} | {row['accelerator']} | {chips} | {row['seq_len']} | {predicted:,.0f} | "
            f"{measured:,.0f} | {err:+.1%} | {mfu:.1%} | {float(row['mfu_reported']):.1%} |"
        )
    absolute = sorted(abs(e) for e in errors)
    print()
    print(f"- rows: {len(errors)}; median absolute error {statistics.median(absolute):.1%}; "
          f"median signed {statistics.median(errors):+.1%}; max {absolute[-1]:.1%}; "
          f"over 50%: {sum(a > 0.5 for a in absolute)}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
