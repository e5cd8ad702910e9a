"""Validate the inference model's one-request decode step (TPOT) against published latencies.

Run from the repository root::

    .venv/bin/python bench/latency_validation.py [--measurements PATH] [--check]

The points (default ``examples/published_latency.csv``, each row with its source) are
batch-1 latencies on AWS Trainium: Neuron's trn1 decoder table (rows marked ``fit``) and
Trainium2 tutorials/contrib results (rows marked ``validate``).  At batch 1 the roofline
step (weights over bandwidth plus all-reduce latency) is 1.4-5x shorter than Neuron's
measured TPOT: the rest is a fixed cost per pass through the model (kernel launches,
synchronisation, collective latency) the roofline does not contain.  The planner models
it as ``L * step_overhead_s_per_layer`` by stack (``defaults.STEP_OVERHEAD_S_PER_LAYER``).

This script

1. fits that per-layer cost on the ``fit`` rows only: the median over them of
   ``(measured TPOT - model TPOT without it) / layers``, and checks it equals the
   bundled default (to the microsecond);
2. predicts TPOT (and TTFT where published) for every row with the bundled defaults and
   prints predicted vs measured, separately for ``fit`` and ``validate`` rows.

The ``validate`` rows (other chip generation, other software) are never used to fit.
Exits 0 when it ran; with ``--check`` 1 unless the validate rows' median absolute TPOT
error is below 25% and none is over 50%; 2 when the file is missing.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from polyfleet.catalog.io import Catalog, load_bundled
from polyfleet.perf import defaults
from polyfleet.perf.calibration import Efficiency, predict_perf
from polyfleet.perf.inference import InferencePerf
from polyfleet.perf.measurements import Measurement

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MEASUREMENTS = REPO_ROOT / "examples" / "published_latency.csv"
CHECK_MEDIAN = 0.25
CHECK_MAX = 0.50


@dataclass
class Point:
    """One published batch-1 latency."""

    model: str
    dtype: str
    accelerator: str
    chips: int
    input_tokens: int
    output_tokens: int
    tpot_ms: float
    ttft_ms: float | None
    role: str


def read_points(path: Path) -> list[Point]:
    """The rows of ``published_latency.csv``."""
    with path.open(newline="") as fh:
        return [_point(r) for r in csv.DictReader(fh)]


def _point(r: dict[str, str]) -> Point:
    return Point(
        model=r["model"],
        dtype=r["weight_dtype"],
        accelerator=r["accelerator"],
        chips=int(r["chips"]),
        input_tokens=int(r["input_tokens"]),
        output_tokens=int(r["output_tokens"]),
        tpot_ms=float(r["tpot_ms"]),
        ttft_ms=float(r["ttft_ms"]) if r["ttft_ms"] else None,
        role=r["role"],
    )


def model_perf(point: Point, catalog: Catalog, overhead_s_per_layer: float | None) -> InferencePerf:
    """The model at batch 1 on exactly ``point.chips`` chips (None: the bundled default overhead)."""
    card = catalog.models[point.model].model_copy(update={"dtype": point.dtype})
    acc = catalog.accelerators[point.accelerator]
    m = Measurement(
        model=card.name, dtype=point.dtype, accelerator=acc.id, tensor_parallel=point.chips,
        input_tokens=point.input_tokens, output_tokens=point.output_tokens, output_tokens_per_s=1.0, batch=1,
    )  # fmt: skip
    extra = {} if overhead_s_per_layer is None else {"step_overhead_s_per_layer": overhead_s_per_layer}
    _, perf = predict_perf(card, acc, m, Efficiency.default(acc.id), **extra)
    return perf


def fit_overhead(points: list[Point], catalog: Catalog) -> float:
    """Seconds per layer: median of (measured - modelled TPOT without it) / layers, ``fit`` rows."""
    per_layer = []
    for p in points:
        if p.role != "fit":
            continue
        bare = model_perf(p, catalog, 0.0)
        per_layer.append((p.tpot_ms - bare.tpot_ms) / 1000 / catalog.models[p.model].layers)
    return statistics.median(per_layer)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurements", type=Path, default=DEFAULT_MEASUREMENTS)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 unless the validate rows meet the targets"
    )
    args = parser.parse_args(argv)
    if not args.measurements.is_file():
        print(f"latency_validation: measurements file not found: {args.measurements}", file=sys.stderr)
        return 2
    catalog = load_bundled()
    points = read_points(args.measurements)
    fitted = fit_overhead(points, catalog)
    bundled = defaults.STEP_OVERHEAD_S_PER_LAYER.get("neuron", 0.0)
    print(f"# Batch-1 decode latency vs published ({args.measurements.name}, {len(points)} rows)")
    print()
    print(
        f"- per-layer step overhead fitted on the {sum(p.role == 'fit' for p in points)} fit rows: "
        f"{fitted * 1e6:.1f} us; bundled neuron default {bundled * 1e6:.1f} us"
    )
    if abs(fitted - bundled) > 0.05e-6:
        print("- WARNING: the bundled default is not this fit; update defaults.STEP_OVERHEAD_S_PER_LAYER")
    print()
    print(
        "| role | model | dtype | accelerator | chips | in/out | TPOT model | TPOT no overhead "
        "| TPOT measured | error | TTFT model | TTFT measured |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    errors: dict[str, list[float]] = {"fit": [], "validate": []}
    for p in points:
        perf, bare = model_perf(p, catalog, None), model_perf(p, catalog, 0.0)
        err = perf.tpot_ms / p.tpot_ms - 1
        errors.setdefault(p.role, []).append(err)
        ttft = "-" if p.ttft_ms is None else f"{p.ttft_ms:,.1f}"
        print(
            f"| {p.role} | {p.model} | {p.dtype} | {p.accelerator} | {p.chips} "
            f"| {p.input_tokens}/{p.output_tokens} "
            f"| {perf.tpot_ms:.2f} | {bare.tpot_ms:.2f} | {p.tpot_ms:.2f} | {err * 100:+.1f}% "
            f"| {perf.ttft_ms:,.1f} | {ttft} |"
        )
    print()
    for role, errs in errors.items():
        if errs:
            abs_errs = [abs(e) for e in errs]
            print(
                f"- {role}: {len(errs)} rows, TPOT median absolute error "
                f"{statistics.median(abs_errs) * 100:.1f}%, "
                f"median signed {statistics.median(errs) * 100:+.1f}%, max {max(abs_errs) * 100:.1f}%"
            )
    if args.check:
        val = [abs(e) for e in errors.get("validate", [])]
        ok = bool(val) and statistics.median(val) < CHECK_MEDIAN and max(val) <= CHECK_MAX
        print(f"check: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
