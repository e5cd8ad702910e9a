"""Validate the roofline inference model against published max-throughput measurements.

Run from the repository root::

    .venv/bin/python bench/perf_validation.py [--measurements PATH] [--check]

The measurements (default ``examples/published_throughput.csv``) are the shared
TensorRT-LLM "max-throughput offline" figures (``trtllm-bench throughput``, Nvidia
H100/H200/B200/GB200, synthetic fixed lengths) plus non-Nvidia points each sourced in its
row: Intel's Gaudi 3 and Gaudi 2 throughput tables (static batch, stated per row in the
``batch`` column) and Oracle's MI300X vLLM post (Llama 3.1 405B).  One row per model x
weight dtype x accelerator x tensor-parallel degree x (input, output) tokens, giving
output tokens/s of the whole tensor-parallel group.  The model is never fitted to these
rows here: predictions use the default efficiencies (``polyfleet perf calibrate`` fits).

For each row the model card is set to the row's weight dtype and ``inference_perf`` is
asked for the replica the measurement used: exactly ``tensor_parallel`` chips, no TPOT or
TTFT target (offline max throughput; the model then takes the largest batch the memory
holds, or the row's ``batch`` when the source states one). The model picks the
*smallest* power-of-two group whose memory holds weights + KV for ``min_batch``
requests, so to force ``t == tp`` we pass ``max_chips=tp`` and a ``min_batch`` just
larger than what ``tp/2`` chips can hold (the batch itself is then still the memory-
limited maximum at ``t``, ``min_batch`` only sizes ``t``). Predicted group throughput is
``output_tokens_per_s_per_chip * tp``. If ``t`` still differs from ``tp`` (it cannot for
these rows), the per-chip figure at the model's ``t`` is scaled to ``tp`` chips and the
row is marked ``*``.

Prints a markdown table (signed error = predicted / measured - 1) and a summary.  Exits 0
whenever it ran (it is a report); with ``--check`` it exits 1 unless the median absolute
error is below 20% and no row is off by more than 50%; 2 when the measurements are missing.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from polyfleet.catalog.io import load_bundled
from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf.calibration import Measurement, fit, predict_perf, read_measurements
from polyfleet.perf.inference import InferencePerf

REPO_ROOT = Path(__file__).resolve().parent.parent
#: the shared TensorRT-LLM points (Nvidia) plus non-Nvidia points (Intel Gaudi 2/3 tables,
#: Oracle's MI300X vLLM post) with their batch where stated, each row with its source
DEFAULT_MEASUREMENTS = REPO_ROOT / "examples" / "published_throughput.csv"

#: published model name -> polyfleet model card name
MODEL_NAMES: dict[str, str] = {
    "Llama-3.1-8B": "llama-3.1-8b",
    "Llama-3.3-70B": "llama-3.3-70b",
    "Llama-3.1-405B": "llama-3.1-405b",
    "Llama-3.1-70B": "llama-3.1-70b",
    "Llama-2-70B": "llama-2-70b",
}

FIT_ACCELERATORS: dict[str, str] = {
    "nvidia-h100-sxm": "defaults.STEP_OVERHEAD_S_PER_STEP['cuda'] chosen on these rows",
    "nvidia-h200": "defaults.STEP_OVERHEAD_S_PER_STEP['cuda'] chosen on these rows",
    "nvidia-b200": "defaults.PRECISION_COMPUTE_SCALE['fp4'] fitted on these rows",
}
"""Accelerators whose rows chose a default constant (role "fit"); every other row is held
out: no default was tuned on it (GB200, Gaudi 2/3, MI300X)."""

MEDIAN_TARGET = 0.20
"""--check: median absolute error must be below this."""

MAX_TARGET = 0.50
"""--check: no row's absolute error may exceed this."""


@dataclass
class Row:
    """One measurement with the model's prediction."""

    model: str
    dtype: str
    accelerator: str
    scenario: str
    tp: int
    input_tokens: int
    output_tokens: int
    measured: float
    predicted: float | None
    perf: InferencePerf | None
    note: str

    @property
    def error(self) -> float | None:
        """Signed relative error, predicted / measured - 1; None without a prediction."""
        if self.predicted is None or self.measured <= 0:
            return None
        return self.predicted / self.measured - 1


def predict(
    card: ModelCard,
    acc: Accelerator,
    tp: int,
    input_tokens: int,
    output_tokens: int,
    batch: int | None = None,
) -> tuple[float | None, InferencePerf, str]:
    """Predicted output tokens/s of a ``tp``-chip group, the perf result, and a note.

    The same forcing of the group to ``tp`` chips as ``polyfleet perf calibrate`` uses
    (``calibration.predict_perf``), at the default efficiencies.
    """
    point = Measurement(
        model=card.name, dtype=card.dtype, accelerator=acc.id, tensor_parallel=tp,
        input_tokens=input_tokens, output_tokens=output_tokens, output_tokens_per_s=1.0, batch=batch,
    )  # fmt: skip
    value, perf = predict_perf(card, acc, point, None)
    if value is None:
        return None, perf, perf.reason
    note = "" if perf.chips_per_replica == tp else f"* t={perf.chips_per_replica}, scaled to {tp}"
    return value, perf, note


def load_rows(path: Path) -> list[Row]:
    """Read the measurements and predict each one."""
    catalog = load_bundled()
    rows = []
    with path.open(newline="") as fh:
        for rec in csv.DictReader(fh):
            name = MODEL_NAMES.get(rec["model"], rec["model"].lower())
            dtype = rec["weight_dtype"].strip().lower()
            acc_id = rec["accelerator"].strip()
            tp = int(rec["tensor_parallel"])
            inp, out = int(rec["input_tokens"]), int(rec["output_tokens"])
            measured = float(rec["output_tokens_per_s_whole_tp_group"])
            base = dict(
                model=rec["model"], dtype=dtype, accelerator=acc_id, tp=tp, scenario=scenario_of(rec),
                input_tokens=inp, output_tokens=out, measured=measured,
            )  # fmt: skip
            card = catalog.models.get(name)
            acc = catalog.accelerators.get(acc_id)
            if card is None or acc is None:
                missing = f"model {name}" if card is None else f"accelerator {acc_id}"
                rows.append(Row(**base, predicted=None, perf=None, note=f"not in catalog: {missing}"))
                continue
            card = card.model_copy(update={"dtype": dtype})
            batch = int(rec["batch"]) if (rec.get("batch") or "").strip() else None
            predicted, perf, note = predict(card, acc, tp, inp, out, batch)
            rows.append(Row(**base, predicted=predicted, perf=perf, note=note))
    return rows


def scenario_of(rec: dict[str, str]) -> str:
    """Short scenario label of a row: the engine and how it batched (all are offline runs)."""
    text = (rec.get("scenario") or "").lower()
    if "trtllm" in text:
        return "offline, TensorRT-LLM max throughput"
    if "static batch" in text:
        return "offline, static batch (Intel Gaudi tables)"
    if "vllm" in text:
        return "offline, vLLM benchmark_throughput"
    return "offline" if not text else text[:40]


def role_of(row: Row) -> str:
    """Role "fit" when the row's accelerator chose a default constant, else "held-out"."""
    return "fit" if row.accelerator in FIT_ACCELERATORS else "held-out"


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def print_table(rows: list[Row]) -> None:
    """The per-row markdown table."""
    print(
        "| model | dtype | accelerator | TP | in/out | predicted tok/s | measured tok/s | error % "
        "| bound | batch | note |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---|---:|---|")
    for r in rows:
        pred = "-" if r.predicted is None else f"{r.predicted:,.0f}"
        err = "-" if r.error is None else _pct(r.error)
        bound = r.perf.bound if r.perf else ""
        batch = r.perf.max_batch if r.perf and r.perf.feasible else "-"
        print(
            f"| {r.model} | {r.dtype} | {r.accelerator} | {r.tp} | {r.input_tokens}/{r.output_tokens} "
            f"| {pred} | {r.measured:,.0f} | {err} | {bound} | {batch} | {r.note} |"
        )


def summarise(rows: list[Row]) -> tuple[float, float, int]:
    """Print the summary; returns (median abs error, max abs error, rows over MAX_TARGET)."""
    scored = [r for r in rows if r.error is not None]
    abs_err = [abs(r.error) for r in scored if r.error is not None]
    print()
    print("## Summary")
    print()
    print(f"- rows: {len(rows)}, predicted: {len(scored)}, not predicted: {len(rows) - len(scored)}")
    if not abs_err:
        print("- no row could be predicted")
        return float("inf"), float("inf"), len(rows)
    median_abs = statistics.median(abs_err)
    max_abs = max(abs_err)
    worst = max(scored, key=lambda r: abs(r.error or 0.0))
    over = sum(e > MAX_TARGET for e in abs_err) + (len(rows) - len(scored))
    signed = [r.error for r in scored if r.error is not None]
    print(f"- median absolute error: {median_abs * 100:.1f}% (target < {MEDIAN_TARGET * 100:.0f}%)")
    print(f"- median signed error: {_pct(statistics.median(signed))}")
    print(
        f"- max absolute error: {max_abs * 100:.1f}% ({worst.model} {worst.dtype} {worst.accelerator} "
        f"TP{worst.tp} {worst.input_tokens}/{worst.output_tokens})"
    )
    print(f"- rows over {MAX_TARGET * 100:.0f}% (or not predicted): {over}")
    print()
    print("| group | rows | median abs error | median signed error | max abs error |")
    print("|---|---:|---:|---:|---:|")

    def group(label: str, members: list[Row]) -> None:
        errs = [r.error for r in members if r.error is not None]
        if not errs:
            return
        print(
            f"| {label} | {len(errs)} | {statistics.median(abs(e) for e in errs) * 100:.1f}% "
            f"| {_pct(statistics.median(errs))} | {max(abs(e) for e in errs) * 100:.1f}% |"
        )

    catalog = load_bundled()

    def family(r: Row) -> str:
        acc = catalog.accelerators[r.accelerator]
        return f"{acc.vendor}/{acc.stack}"

    for role in ("fit", "held-out"):
        group(f"role {role}", [r for r in scored if role_of(r) == role])
    for scenario in dict.fromkeys(r.scenario for r in scored):
        group(f"scenario {scenario}", [r for r in scored if r.scenario == scenario])
    for fam in sorted({family(r) for r in scored}):
        group(f"chip family {fam}", [r for r in scored if family(r) == fam])
    for dtype in sorted({r.dtype for r in scored}):
        group(f"precision {dtype}", [r for r in scored if r.dtype == dtype])
    for acc in dict.fromkeys(r.accelerator for r in scored):
        group(f"accelerator {acc}", [r for r in scored if r.accelerator == acc])
    for model in dict.fromkeys(r.model for r in scored):
        group(f"model {model}", [r for r in scored if r.model == model])
    for tp in sorted({r.tp for r in scored}):
        group(f"TP {tp}", [r for r in scored if r.tp == tp])
    for io in dict.fromkeys((r.input_tokens, r.output_tokens) for r in scored):
        group(f"in/out {io[0]}/{io[1]}", [r for r in scored if (r.input_tokens, r.output_tokens) == io])
    for bound in sorted({r.perf.bound for r in scored if r.perf}):
        group(f"bound {bound}", [r for r in scored if r.perf and r.perf.bound == bound])
    print()
    families = sorted(
        {
            f"{catalog.accelerators[r.accelerator].vendor}/{catalog.accelerators[r.accelerator].stack}"
            for r in scored
        }
    )
    print(f"- accelerators covered: {', '.join(dict.fromkeys(r.accelerator for r in scored))}")
    print(f"- vendor/stack families covered: {', '.join(families)}")
    uncovered = sorted({f"{a.vendor}/{a.stack}" for a in catalog.accelerators.values()} - set(families))
    print(f"- catalog families with no measurement: {', '.join(uncovered) or 'none'}")
    return median_abs, max_abs, over


def leave_one_out(paths: list[Path]) -> None:
    """Print how well a calibration predicts points it was not fitted to.

    For each point, ``calibration.fit`` on all the other points, then predict the point
    with the fitted efficiency of its accelerator (the defaults where the rest leave
    fewer than two points of that accelerator).  The in-sample figure of ``polyfleet perf
    calibrate`` flatters the fit; this one does not.
    """
    catalog = load_bundled()
    points = [m for path in paths for m in read_measurements(path, catalog)]
    errors: list[tuple[float, Measurement]] = []
    for i, m in enumerate(points):
        cal = fit(points[:i] + points[i + 1 :], catalog, fitted_at="leave-one-out")
        card, acc = catalog.models[m.model], catalog.accelerators[m.accelerator]
        value, _ = predict_perf(card, acc, m, cal.efficiency(acc.id))
        errors.append((math.inf if value is None else abs(value / m.output_tokens_per_s - 1), m))
    abs_err = [e for e, _ in errors]
    print()
    print(f"## Leave-one-out calibration ({len(points)} fits)")
    print()
    print(f"- median absolute error: {statistics.median(abs_err) * 100:.1f}%")
    print(f"- rows over {MAX_TARGET * 100:.0f}%: {sum(e > MAX_TARGET for e in abs_err)}")
    for e, m in sorted(errors, key=lambda x: -x[0])[:5]:
        print(
            f"  - {e * 100:.1f}%: {m.model} {m.dtype} {m.accelerator} TP{m.tensor_parallel} "
            f"{m.input_tokens}/{m.output_tokens}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--measurements",
        type=Path,
        action="append",
        help="CSV of measurements; repeat for several (default: examples/published_throughput.csv)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 unless median |error| < {MEDIAN_TARGET:.0%} and none > {MAX_TARGET:.0%}",
    )
    parser.add_argument(
        "--leave-one-out",
        action="store_true",
        help="also fit a calibration to all points but one, for each point, and score the one left out",
    )
    args = parser.parse_args(argv)
    paths: list[Path] = args.measurements or [DEFAULT_MEASUREMENTS]
    for path in paths:
        if not path.is_file():
            print(f"perf_validation: measurements file not found: {path}", file=sys.stderr)
            print("  pass --measurements PATH to the published_throughput.csv", file=sys.stderr)
            return 2
    rows = [row for path in paths for row in load_rows(path)]
    names = ", ".join(path.name for path in paths)
    print(f"# Roofline inference model vs published throughput ({names}, {len(rows)} rows)")
    print()
    print_table(rows)
    median_abs, _max_abs, over = summarise(rows)
    if args.leave_one_out:
        leave_one_out(paths)
    if args.check:
        ok = median_abs < MEDIAN_TARGET and over == 0
        print()
        print(
            f"check: {'PASS' if ok else 'FAIL'} (median |error| {median_abs * 100:.1f}%, target "
            f"< {MEDIAN_TARGET * 100:.0f}%; {over} row(s) over {MAX_TARGET * 100:.0f}%, target 0)"
        )
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
