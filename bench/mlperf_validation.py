"""Validate the inference model against MLPerf Inference datacenter LLM results, by scenario.

Run from the repository root::

    .venv/bin/python bench/mlperf_validation.py [--measurements PATH] [--check] [--rows]

The results (default ``examples/published_mlperf.csv``) are MLCommons' closed-division,
datacenter LLM results of rounds v4.1 (2024-08-28) and v5.1 (2025-09-09): for each
(round, benchmark, accelerator) the system with the most Offline tokens/s per chip, and
that system's Server and Interactive results (the best-per-chip system's where it did not
submit one).  Every row names its submitter, system and the results directory it came
from.  None of these rows chose any default of the model: they are all held out.

Each row is predicted as a buyer would ask polyfleet (``best_inference_perf``: the best
tensor/pipeline/expert-parallel configuration within ``min(chips, 8)`` chips per node, or
within the NVLink domain on a rack-scale part (``defaults.SCALEUP_DOMAIN_CHIPS``: GB200 and
GB300 NVL72, ``min(chips, 72)``), at
the row's weight precision, on the benchmark's mean input/output lengths and their
coefficients of variation, ``DATASETS``, read off MLCommons' data set files)::

    Offline      max throughput, no latency target: the continuous batch kept full, each
                 request holding its mean live KV (``percentile=0.5``: the occupancy is its
                 mean; ``perf/serving.py``), at the memory/compute limits
    Server       the Poisson load that holds p99 TTFT and TPOT (``perf/serving.py``) at the
    Interactive  scenario's targets (``ttft_p99_ms``/``tpot_p99_ms``, from MLCommons'
                 loadgen/mlperf.conf)

with the planner's default prompt scheduling (``defaults.BATCHING``, serial prefill) or
``--batching chunked`` (NVIDIA's v5.1 TensorRT-LLM configs enable chunked context for
every benchmark but DeepSeek-R1).  Offline uses the same queueing model as Server so that
a Server result can never exceed the Offline one for the same system; the planner's own
offline estimate (no ``percentile``, a workload without SLO targets) sizes KV by the same
steady-state rule (``perf/serving.py`` ``steady_state_capacity``: each request at its mean
live context).

and the system's tokens/s is the per-chip figure times its chips.  Prints the rows, then
median and max |error| by scenario, chip family, precision, benchmark and round, and the
Server/Offline and Interactive/Offline ratios predicted vs published.  Exits 0 when it
ran; with ``--check`` 1 unless the median |error| is at most 15% and no row is off by more
than 50%; 2 when the file is missing.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from polyfleet.catalog.io import load_bundled
from polyfleet.perf import best_inference_perf, defaults
from polyfleet.perf.result import InferencePerf

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MEASUREMENTS = REPO_ROOT / "examples" / "published_mlperf.csv"
CHECK_MEDIAN = 0.15
CHECK_MAX = 0.50
PERCENTILE = 0.99
"""loadgen's ``*.Server.target_latency_percentile = 99`` (TTFT and TPOT)."""

MLPERF_CONF = (
    "https://github.com/mlcommons/inference/blob/master/loadgen/mlperf.conf (read at b66003e1, 2026-08-20)"
)


@dataclass(frozen=True)
class Dataset:
    """Mean prompt and output tokens of one benchmark's data set and the coefficients of
    variation of its lengths (output: requests in flight are length-biased; input: the
    prefill lane's service-time spread; ``perf/serving.py``), with where each comes from."""

    input_tokens: int
    output_tokens: int
    input_tokens_cv: float
    output_tokens_cv: float
    source: str


LENGTHS_SOURCE = (
    "per-sample token lengths of MLCommons' data set files (tok_input_len / tok_ref_output_len "
    "columns), summarised in openshift-psap/performance-dashboard mlperf-data/summaries/*.csv "
    "@ 71007029 (2025-11-04; generate_dataset_summaries.py reads the MLCommons pickles)"
)

DATASETS: dict[str, Dataset] = {
    "llama-2-70b": Dataset(
        222,
        294,
        0.77,
        0.79,
        "input 222.3 tokens/sample over the 24,576 OpenOrca samples (median 152, max 1,021, CV "
        "0.77) and output CV 0.79 of the GPT-4 reference outputs: " + LENGTHS_SOURCE + "; output mean "
        "294.45 tokens/sample, what Llama 2 70B generates (MLCommons inference "
        "language/llama2-70b/README.md, accuracy target)",
    ),
    "mixtral-8x7b": Dataset(
        427,
        145,
        0.77,
        0.78,
        "input 427.4 tokens/sample over the 15,000 samples (OpenOrca, GSM8K, MBXP; median 283, "
        "CV 0.77), "
        "output 144.8, CV 0.78: " + LENGTHS_SOURCE + "; output 144.84 in "
        "language/mixtral-8x7b/README.md",
    ),
    "llama-3.1-405b": Dataset(
        9429,
        685,
        0.43,
        0.38,
        "input 9,428.6 tokens/sample over the 8,313 samples (median 10,112, max 19,988, CV 0.43), "
        "output "
        "684.7, CV 0.38: " + LENGTHS_SOURCE + "; output 684.68 in language/llama3.1-405b/README.md",
    ),
    "llama-3.1-8b": Dataset(
        871,
        125,
        0.49,
        0.45,
        "input 870.7 tokens/sample over the 13,368 CNN/DailyMail samples (CV 0.49; tok_input of "
        "cnn_eval.json: " + LENGTHS_SOURCE + "); output *estimate* 125: the reference gen_len "
        "is 8,167,644 characters (README), 611 per summary, about 125 tokens at ~4.8 characters "
        "per token, under max_new_tokens 128; CV 0.45 of the reference summaries (characters/4 "
        "in the same summary)",
    ),
    "deepseek-r1": Dataset(
        804,
        3886,
        0.50,
        1.25,
        "input 803.8 tokens/sample over the 4,388 samples (median 902, CV 0.50), output CV 1.25 (median "
        "2,194, capped at 32,768; reference mean 4,043): " + LENGTHS_SOURCE + "; output mean "
        "3,886.2 tokens/sample (language/deepseek-r1/README.md mean-output-tok-len)",
    ),
}
"""Mean lengths per benchmark (see each ``source``; *estimate* marks polyfleet's judgement)."""


@dataclass
class Row:
    """One published result and the model's prediction."""

    round: str
    benchmark: str
    model: str
    scenario: str
    accelerator: str
    family: str
    chips: int
    dtype: str
    measured: float
    ttft_ms: float | None
    tpot_ms: float | None
    system: str
    perf: InferencePerf | None = None
    predicted: float | None = None

    @property
    def error(self) -> float | None:
        """Signed relative error, predicted / measured - 1."""
        if self.predicted is None or self.measured <= 0:
            return None
        return self.predicted / self.measured - 1


def read_rows(path: Path) -> list[Row]:
    """The rows of ``published_mlperf.csv`` (prediction not yet made)."""
    catalog = load_bundled()
    out = []
    with path.open(newline="") as fh:
        for r in csv.DictReader(fh):
            acc = catalog.accelerators.get(r["accelerator"])
            out.append(
                Row(
                    round=r["round"],
                    benchmark=r["benchmark"],
                    model=r["model"],
                    scenario=r["scenario"],
                    accelerator=r["accelerator"],
                    family=f"{acc.vendor}/{acc.stack}" if acc else "?",
                    chips=int(r["chips"]),
                    dtype=r["weight_dtype"],
                    measured=float(r["output_tokens_per_s"]),
                    ttft_ms=float(r["ttft_p99_ms"]) if r["ttft_p99_ms"] else None,
                    tpot_ms=float(r["tpot_p99_ms"]) if r["tpot_p99_ms"] else None,
                    system=f"{r['submitter']} {r['system']}",
                )
            )
    return out


def predict(row: Row, **kwargs: object) -> Row:
    """Fill ``row.perf``/``row.predicted``: the best configuration under the row's scenario.

    ``kwargs`` go to ``best_inference_perf`` (e.g. ``batching="chunked"``).
    """
    catalog = load_bundled()
    card = catalog.models.get(row.model)
    acc = catalog.accelerators.get(row.accelerator)
    data = DATASETS.get(row.model)
    if card is None or acc is None or data is None:
        return row  # unpredicted (counted as over 50%): no card, chip or data set lengths
    card = card.model_copy(update={"dtype": row.dtype})
    slo: dict[str, object] = {"percentile": 0.5}  # Offline: a full batch, occupancy at its mean
    if row.scenario != "Offline":
        slo = {"ttft_ms": row.ttft_ms, "tpot_ms": row.tpot_ms, "percentile": PERCENTILE}
    perf = best_inference_perf(
        card,
        acc,
        input_tokens=data.input_tokens,
        output_tokens=data.output_tokens,
        output_tokens_cv=data.output_tokens_cv,
        input_tokens_cv=data.input_tokens_cv,
        chips_per_node=min(row.chips, defaults.SCALEUP_DOMAIN_CHIPS.get(row.accelerator, 8)),
        **slo,
        **kwargs,  # type: ignore[arg-type]
    )
    row.perf = perf
    row.predicted = perf.output_tokens_per_s_per_chip * row.chips if perf.feasible else None
    return row


def _pct(x: float) -> str:
    return f"{x * 100:+.1f}%"


def print_rows(rows: list[Row]) -> None:
    """The per-row markdown table."""
    print("| round | benchmark | scenario | accelerator | chips | dtype | measured tok/s/chip "
          "| predicted | error | configuration | limit | system |")  # fmt: skip
    print("|---|---|---|---|---:|---|---:|---:|---:|---|---|---|")
    for r in rows:
        pred = "-" if r.predicted is None else f"{r.predicted / r.chips:,.0f}"
        err = "-" if r.error is None else _pct(r.error)
        conf = r.perf.configuration if r.perf and r.perf.feasible else (r.perf.reason if r.perf else "")
        limit = (r.perf.limit or r.perf.bound) if r.perf else ""
        print(
            f"| {r.round} | {r.benchmark} | {r.scenario} | {r.accelerator} | {r.chips} | {r.dtype} "
            f"| {r.measured / r.chips:,.0f} | {pred} | {err} | {conf} | {limit} | {r.system} |"
        )


def group_table(rows: list[Row]) -> tuple[float, float, int]:
    """Median/max |error| by group; returns (median, max, rows over CHECK_MAX or unpredicted)."""
    scored = [r for r in rows if r.error is not None]
    errs = [abs(r.error) for r in scored if r.error is not None]
    over = sum(e > CHECK_MAX for e in errs) + len(rows) - len(scored)
    print()
    print("| group | rows | median abs error | median signed error | max abs error |")
    print("|---|---:|---:|---:|---:|")

    def group(label: str, members: list[Row]) -> None:
        e = [r.error for r in members if r.error is not None]
        if e:
            print(
                f"| {label} | {len(e)} | {statistics.median(abs(x) for x in e) * 100:.1f}% "
                f"| {_pct(statistics.median(e))} | {max(abs(x) for x in e) * 100:.1f}% |"
            )

    group("all (held out)", scored)
    for key, label in (
        ("scenario", "scenario"),
        ("family", "chip family"),
        ("dtype", "precision"),
        ("benchmark", "benchmark"),
        ("round", "round"),
        ("accelerator", "accelerator"),
    ):
        for value in dict.fromkeys(getattr(r, key) for r in scored):
            group(f"{label} {value}", [r for r in scored if getattr(r, key) == value])
    if not errs:
        return float("inf"), float("inf"), over
    return statistics.median(errs), max(errs), over


def ratio_table(rows: list[Row]) -> None:
    """Server/Offline and Interactive/Offline per system, published vs predicted."""
    offline = {(r.round, r.benchmark, r.accelerator): r for r in rows if r.scenario == "Offline"}
    print()
    print("| round | benchmark | accelerator | scenario | published / Offline | predicted / Offline |")
    print("|---|---|---|---|---:|---:|")
    for r in rows:
        base = offline.get((r.round, r.benchmark, r.accelerator))
        if r.scenario == "Offline" or base is None:
            continue
        pub = (r.measured / r.chips) / (base.measured / base.chips)
        pred = (
            "-"
            if r.predicted is None or not base.predicted
            else f"{(r.predicted / r.chips) / (base.predicted / base.chips):.2f}"
        )
        print(f"| {r.round} | {r.benchmark} | {r.accelerator} | {r.scenario} | {pub:.2f} | {pred} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measurements", type=Path, default=DEFAULT_MEASUREMENTS)
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"exit 1 unless median |error| <= {CHECK_MEDIAN * 100:.0f}%% and none > {CHECK_MAX * 100:.0f}%%",
    )
    parser.add_argument("--rows", action="store_true", help="print every row, not only the summary")
    parser.add_argument(
        "--batching",
        choices=["serial", "chunked"],
        default=None,
        help="prompt scheduling of the model (default: the planner's, defaults.BATCHING)",
    )
    args = parser.parse_args(argv)
    if not args.measurements.is_file():
        print(f"mlperf_validation: --measurements file not found: {args.measurements}", file=sys.stderr)
        return 2
    extra = {} if args.batching is None else {"batching": args.batching}
    rows = [predict(r, **extra) for r in read_rows(args.measurements)]
    print(f"# Inference model vs MLPerf Inference ({args.measurements.name}, {len(rows)} rows, all held out)")
    print()
    print(f"- latency targets (p99 TTFT/TPOT): {MLPERF_CONF}")
    print(f"- prompt scheduling: {args.batching or defaults.BATCHING}")
    for name, d in DATASETS.items():
        print(
            f"- {name}: mean input {d.input_tokens} (CV {d.input_tokens_cv:g}), output {d.output_tokens} "
            f"(CV {d.output_tokens_cv:g}) tokens ({d.source})"
        )
    if args.rows:
        print()
        print_rows(rows)
    median_abs, max_abs, over = group_table(rows)
    ratio_table(rows)
    print()
    print(
        f"- median |error| {median_abs * 100:.1f}%, max {max_abs * 100:.1f}%, "
        f"rows over 50% or unpredicted: {over}"
    )
    if args.check:
        ok = median_abs <= CHECK_MEDIAN and over == 0
        print(f"check: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
