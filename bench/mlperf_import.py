"""Rebuild ``examples/published_mlperf.csv`` from local clones of MLCommons' results repositories.

Run from the repository root (nothing downloads; clone the repositories first)::

    git clone https://github.com/mlcommons/inference_results_v4.1
    git clone https://github.com/mlcommons/inference_results_v5.1
    .venv/bin/python bench/mlperf_import.py --v41 inference_results_v4.1 \\
        --v51 inference_results_v5.1 --out examples/published_mlperf.csv

Rows: closed division, datacenter suite, LLM benchmarks (Llama 2 70B at the 99% accuracy
target, Llama 3.1 8B and 405B, Mixtral 8x7B, DeepSeek-R1), systems "available" or
"preview", accelerators the catalog has (H200 NVL, GH200 and mixed-GPU systems are left
out).  v5.1 comes from ``summary_results.json`` (its ``a#`` is per node, so chips =
``a# x Nodes``); v4.1 from each system's ``mlperf_log_summary.txt`` (VALID runs only),
``systems/*.json`` and ``measurements/*.json``.  v4.1 TensorRT-LLM rows state ``fp16``
weights with "quantization": the submission code quantises to FP8 weights and KV
(``closed/NVIDIA/code/llama2-70b/tensorrt/README.md``), so they are written as fp8.

v6.1 (optional ``--v61``, a clone of ``mlcommons/inference_results_v6.1``) comes from its
``summary.json`` (a dict of entries with ``total_accelerators``); its Llama 2 70B results
are at the 99.9% target and are written as ``llama2-70b-99`` (same model, lengths and
latency targets); inferred results are left out; its date was not read (left empty).

v6.0 (optional ``--table``, MLCommons' results table as exported from its Tableau page: a
UTF-16, tab-separated file such as ``mlperf-data/mlperf-6.0.csv`` of
``openshift-psap/performance-dashboard``): the table names no weight precision, so it is
*inferred* by chip generation (FP4 on Blackwell and MI355X, which every LLM submission of
v5.1 on those chips used; FP8 elsewhere) and said in each row's source; its date was not
read (left empty).  ``--table`` alone writes only that round.  v5.0's export
(``mlperf-data/mlperf-5.0.csv``) is a comma-separated pivot of the same table
(``rows_pivot``); the layout is recognised by its first line.

Selection: for each (round, benchmark, accelerator) the system with the most Offline
tokens/s per chip, with that system's Server and Interactive results, or the
best-per-chip system's for a scenario it did not submit.  Latency targets are loadgen's
(``LOADGEN_P99_MS``).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

ROUNDS = {"v4.1": "2024-08-28", "v5.0": "", "v5.1": "2025-09-09", "v6.0": "", "v6.1": ""}
"""Publication date of each round (v5.0, v6.0, v6.1: not read, left empty)."""

FP4_CHIPS = {"nvidia-b200", "nvidia-b300", "nvidia-gb200", "nvidia-gb300", "amd-mi355x"}
"""Chips whose v5.1 LLM submissions all ran FP4 weights: the precision inferred for a table row."""

BENCHMARKS = {
    "llama2-70b-99": "llama-2-70b",
    "llama3.1-8b": "llama-3.1-8b",
    "llama3.1-405b": "llama-3.1-405b",
    "mixtral-8x7b": "mixtral-8x7b",
    "deepseek-r1": "deepseek-r1",
}
"""MLPerf benchmark name -> polyfleet model card."""

LOADGEN_P99_MS = {
    ("llama2-70b-99", "Server"): (2000, 200),
    ("llama2-70b-99", "Interactive"): (450, 40),
    ("mixtral-8x7b", "Server"): (2000, 200),
    ("llama3.1-405b", "Server"): (6000, 175),
    ("llama3.1-405b", "Interactive"): (4500, 80),
    ("llama3.1-8b", "Server"): (2000, 100),
    ("llama3.1-8b", "Interactive"): (500, 30),
    ("deepseek-r1", "Server"): (2000, 80),
    ("deepseek-r1", "Interactive"): (1500, 15),
}
"""(TTFT, TPOT) p99 targets: mlcommons/inference loadgen/mlperf.conf @ b66003e1, the same
in inference_policies inference_rules.adoc @ ac93e89."""

ACCELERATORS = [
    (r"H100-SXM|H100 SXM|H100_SXM", "nvidia-h100-sxm"),
    (r"H100-NVL|H100 NVL", "nvidia-h100-nvl"),
    (r"H200-NVL|GH200|^Virtualized|MI300X.*MI325X|MI325X.*MI300X", None),
    (r"H200", "nvidia-h200"),
    (r"GB200", "nvidia-gb200"),
    (r"GB300", "nvidia-gb300"),
    (r"B200", "nvidia-b200"),
    (r"B300", "nvidia-b300"),
    (r"MI300X", "amd-mi300x"),
    (r"MI325X", "amd-mi325x"),
    (r"MI355X", "amd-mi355x"),
    (r"L40S", "nvidia-l40s"),
    (r"Gaudi ?3|HL-325", "intel-gaudi3"),
    (r"Gaudi ?2|HL-225", "intel-gaudi2"),
    (r"TPU ?v6e|Trillium", "google-tpu-v6e"),
]
"""Accelerator name pattern -> catalog id, first match wins (None: left out)."""

_SUMMARY = re.compile(
    r"closed/([^/]+)/results/([^/]+)/([^/]+)/(Offline|Server|Interactive)/performance/run_1/mlperf_log_summary.txt"
)


def accelerator_id(name: str) -> str | None:
    """Catalog id of an MLPerf accelerator name (None: not in the catalog or left out)."""
    for pattern, acc in ACCELERATORS:
        if re.search(pattern, name, re.I):
            return acc
    return None


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True).stdout


def rows_v51(repo: Path) -> list[dict[str, Any]]:
    """Results of ``summary_results.json``."""
    out = []
    for r in json.loads(_git(repo, "show", "HEAD:summary_results.json")):
        acc = accelerator_id(r["Accelerator"])
        if (r["Category"], r["Suite"]) != ("closed", "datacenter") or r["Model"] not in BENCHMARKS:
            continue
        if (
            r["Performance_Units"] != "Tokens/s"
            or r.get("Availability") not in ("available", "preview")
            or not acc
        ):
            continue
        out.append(
            {"round": "v5.1", "benchmark": r["Model"], "scenario": r["Scenario"], "submitter": r["Submitter"],
             "system": r["Platform"], "accelerator_name": r["Accelerator"], "accelerator": acc,
             "chips": int(r["a#"]) * int(r["Nodes"]), "nodes": int(r["Nodes"]),
             "dtype": r["weight_data_types"], "tokens_per_s": float(r["Performance_Result"]),
             "location": r["Location"]}
        )  # fmt: skip
    return out


def rows_v61(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Results of v6.1's ``summary.json`` (a dict of entries; ``total_accelerators`` per system).

    Both Llama 2 70B accuracy targets are read (v6.1 lists 99.9 results), inferred
    results are left out.
    """
    out = []
    for r in summary.values():
        bench = str(r.get("MlperfModel") or r.get("Model"))
        if bench == "llama2-70b-99.9":
            bench = "llama2-70b-99"
        acc = accelerator_id(str(r.get("accelerator_model_name") or ""))
        if (r.get("Division"), r.get("SystemType")) != ("closed", "datacenter") or bench not in BENCHMARKS:
            continue
        if (
            r.get("Units") != "Tokens/s"
            or r.get("inferred")
            or r.get("Availability") not in ("available", "preview")
        ):
            continue
        if not acc or not r.get("total_accelerators"):
            continue
        out.append(
            {"round": "v6.1", "benchmark": bench, "scenario": r["Scenario"], "submitter": r["Organization"],
             "system": r["Platform"], "accelerator_name": r["accelerator_model_name"], "accelerator": acc,
             "chips": int(r["total_accelerators"]), "nodes": int(r.get("number_of_nodes") or 1),
             "dtype": str(r.get("weight_data_types") or ""), "tokens_per_s": float(r["Result"]),
             "location": str(r["Location"]).removeprefix("./").rsplit("/performance", 1)[0]}
        )  # fmt: skip
    return out


def rows_table(text: str, round_: str, source: str) -> list[dict[str, Any]]:
    """Results of MLCommons' results table export (tab-separated; columns by header name).

    ``Total Accelerators`` chips, ``# of Nodes`` nodes, ``Avg. Result at System Name``
    tokens/s; closed division, "available"/"preview" systems, LLM benchmarks in
    ``BENCHMARKS`` (99.9 Llama 2 70B as 99), accelerators the catalog has.  The weight
    precision is inferred (``FP4_CHIPS``), ``source`` names the file.
    """
    lines = list(csv.reader(text.splitlines(), delimiter="\t"))
    if not lines:
        return []
    head = [h.strip() for h in lines[0]]

    def col(row: list[str], name: str) -> str:
        return row[head.index(name)].strip() if name in head and head.index(name) < len(row) else ""

    out = []
    for row in lines[1:]:
        bench = col(row, "Model MLC")
        strict = bench == "llama2-70b-99.9"
        bench = "llama2-70b-99" if strict else bench
        name = re.sub(r"\s*\(.*\)$", "", col(row, "Accelerator (click + for details)"))
        acc = accelerator_id(name) if name else None
        if bench not in BENCHMARKS or not acc or not col(row, "Division/Power").startswith("Closed"):
            continue
        if col(row, "Units") != "Tokens/s" or col(row, "Availability") not in ("available", "preview"):
            continue
        try:
            chips, tps = int(col(row, "Total Accelerators")), float(col(row, "Avg. Result at System Name"))
        except ValueError:
            continue
        dtype = "fp4" if acc in FP4_CHIPS else "fp8"
        out.append(
            {"round": round_, "benchmark": bench, "scenario": col(row, "Scenario"),
             "submitter": col(row, "Organization"), "system": col(row, "System Name (click + for details)"),
             "accelerator_name": name, "accelerator": acc, "chips": chips,
             "nodes": int(col(row, "# of Nodes") or 1), "dtype": dtype, "tokens_per_s": tps,
             "source": f"{source} (Public ID {col(row, 'Public ID')}; weight precision inferred: {dtype})",
             "strict": strict}
        )  # fmt: skip
    # a system that submitted both accuracy targets counts once, at the 99% one
    loose = {(r["submitter"], r["system"], r["benchmark"], r["scenario"]) for r in out if not r["strict"]}
    return [
        r
        for r in out
        if not (r["strict"] and (r["submitter"], r["system"], r["benchmark"], r["scenario"]) in loose)
    ]


def rows_pivot(text: str, round_: str, source: str) -> list[dict[str, Any]]:
    """Results of MLCommons' results table exported as a pivot (comma-separated; v5.0's layout).

    Header rows above ``Public ID`` name, per column, the benchmark (blank: the one to its
    left), the scenario and the units; each system is a ``Public ID`` row and the rows
    under it, labelled ``# of Accelerators``, ``# of Nodes`` and ``Avg. Result at System
    Name`` in the label column.  ``llama2-70b-interactive-99``'s Server column is the
    Interactive scenario (its Offline column repeats the plain benchmark's: skipped).
    ``# of Accelerators`` is per node (MangoBoost's 4-node MI300X system lists 8), so
    chips = accelerators x nodes.  The units row is not read: it labels Llama 3.1 405B's
    columns Samples/s and Queries/s, yet their values are tokens/s (8 H200: 558.5, where
    v5.1's audited summary has 552.8 tokens/s for the same class of system).  Filters,
    precision and ``source`` as ``rows_table``.
    """
    lines = list(csv.reader(text.splitlines()))
    at = next((i for i, r in enumerate(lines) if r and r[0] == "Public ID"), None)
    if at is None or at < 2 or "" not in lines[at]:
        return []
    benches, scenarios, units = lines[at - 2], lines[at - 1], lines[at]
    label = units.index("")  # the column holding each row's label
    columns: dict[int, tuple[str, str]] = {}
    bench = ""
    for j in range(label + 1, len(units)):
        bench = (benches[j].strip() if j < len(benches) else "") or bench
        columns[j] = (bench, scenarios[j].strip() if j < len(scenarios) else "")
    out: list[dict[str, Any]] = []

    def flush(system: list[str], values: dict[str, list[str]]) -> None:
        name = re.sub(r"\s*\(.*\)$", "", system[7].strip()) if len(system) > 14 else ""
        acc = accelerator_id(name) if name else None
        if not acc or not system[14].startswith("Closed") or system[2] not in ("available", "preview"):
            return
        for j, (b, scenario) in columns.items():
            if b == "llama2-70b-interactive-99":
                if scenario != "Server":
                    continue
                b, scenario = "llama2-70b-99", "Interactive"
            if b not in BENCHMARKS:
                continue
            try:
                tps = float(values["Avg. Result at System Name"][j].replace(",", ""))
                nodes = int(values["# of Nodes"][j] or 1)
                chips = int(values["# of Accelerators"][j]) * nodes
            except (KeyError, IndexError, ValueError):
                continue
            dtype = "fp4" if acc in FP4_CHIPS else "fp8"
            out.append(
                {"round": round_, "benchmark": b, "scenario": scenario, "submitter": system[1],
                 "system": system[3], "accelerator_name": name, "accelerator": acc, "chips": chips,
                 "nodes": nodes, "dtype": dtype, "tokens_per_s": tps,
                 "source": f"{source} (Public ID {system[0]}; weight precision inferred: {dtype})"}
            )  # fmt: skip

    system: list[str] = []
    values: dict[str, list[str]] = {}
    for row in lines[at + 1 :]:
        if len(row) <= label:
            continue
        if row[0].strip():
            if system:
                flush(system, values)
            system, values = row, {}
        values[row[label].strip()] = row
    if system:
        flush(system, values)
    return out


def rows_v41(repo: Path) -> list[dict[str, Any]]:
    """Results of the per-system logs (VALID runs of available systems)."""
    out = []
    for path in _git(repo, "ls-tree", "-r", "--name-only", "HEAD", "closed").splitlines():
        m = _SUMMARY.match(path)
        if not m or m.group(3) not in BENCHMARKS:
            continue
        sub, system, bench, scenario = m.groups()
        log = _git(repo, "show", f"HEAD:{path}")
        rate = re.search(r"(?:Completed tokens per second|Tokens per second)\s*:\s*([\d.]+)", log)
        spec = json.loads(_git(repo, "show", f"HEAD:closed/{sub}/systems/{system}.json") or "{}")
        acc = accelerator_id(spec.get("accelerator_model_name", ""))
        if "Result is : VALID" not in log or not rate or spec.get("status") != "available" or not acc:
            continue
        meas = _git(
            repo,
            "show",
            f"HEAD:closed/{sub}/measurements/{system}/{bench}/{scenario}/{system}_{scenario}.json",
        )
        dtype = json.loads(meas).get("weight_data_types", "") if meas else ""
        if acc.startswith("nvidia") and dtype == "fp16":
            dtype = "fp8"  # TensorRT-LLM quantize.py --qformat fp8 --kv_cache_dtype fp8
        nodes = int(spec.get("number_of_nodes") or 1)
        out.append(
            {"round": "v4.1", "benchmark": bench, "scenario": scenario, "submitter": sub, "system": system,
             "accelerator_name": spec["accelerator_model_name"], "accelerator": acc,
             "chips": int(spec.get("accelerators_per_node", 0)) * nodes, "nodes": nodes, "dtype": dtype,
             "tokens_per_s": float(rate.group(1)), "location": path.rsplit("/performance", 1)[0]}
        )  # fmt: skip
    return out


def select(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (round, benchmark, accelerator): the best Offline system per chip and its other scenarios."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["round"], r["benchmark"], r["accelerator"])].append(r)
    out = []
    order = ["Offline", "Server", "Interactive"]
    for key in sorted(groups):
        members = groups[key]
        offline = [r for r in members if r["scenario"] == "Offline"]
        if not offline:
            continue
        best = max(offline, key=lambda r: r["tokens_per_s"] / r["chips"])
        pick = [r for r in members if (r["submitter"], r["system"]) == (best["submitter"], best["system"])]
        for scenario in order[1:]:
            others = [r for r in members if r["scenario"] == scenario]
            if others and not any(r["scenario"] == scenario for r in pick):
                pick.append(max(others, key=lambda r: r["tokens_per_s"] / r["chips"]))
        out.extend(sorted(pick, key=lambda r: order.index(r["scenario"])))
    return out


def to_csv_row(r: dict[str, Any]) -> dict[str, Any]:
    """The CSV columns of one selected result."""
    ttft, tpot = LOADGEN_P99_MS.get((r["benchmark"], r["scenario"]), ("", ""))
    repo = f"https://github.com/mlcommons/inference_results_{r['round']}/tree/main/"
    return {
        "round": r["round"], "round_date": ROUNDS[r["round"]], "benchmark": r["benchmark"],
        "model": BENCHMARKS[r["benchmark"]], "scenario": r["scenario"], "accelerator": r["accelerator"],
        "chips": r["chips"], "nodes": r["nodes"], "weight_dtype": r["dtype"],
        "output_tokens_per_s": round(r["tokens_per_s"], 2), "ttft_p99_ms": ttft, "tpot_p99_ms": tpot,
        "submitter": r["submitter"], "system": r["system"], "accelerator_name": r["accelerator_name"],
        "source": r.get("source") or repo + r["location"],
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--v41", type=Path, help="clone of mlcommons/inference_results_v4.1")
    parser.add_argument("--v51", type=Path, help="clone of mlcommons/inference_results_v5.1")
    parser.add_argument("--table", type=Path, help="MLCommons results table export (UTF-16 TSV)")
    parser.add_argument("--table-round", default="v6.0", choices=sorted(ROUNDS), help="round of --table")
    parser.add_argument("--table-source", default="", help="where --table came from (written per row)")
    parser.add_argument("--v61", type=Path, help="clone of mlcommons/inference_results_v6.1 (optional)")
    parser.add_argument("--out", type=Path, default=Path("examples/published_mlperf.csv"))
    args = parser.parse_args(argv)
    for flag, repo in (("--v41", args.v41), ("--v51", args.v51), ("--v61", args.v61)):
        if repo is None:
            continue
        if not (repo / "HEAD").exists() and not (repo / ".git").exists():
            print(f"mlperf_import: {flag} {repo}: not a git repository (clone it first)", file=sys.stderr)
            return 2
    if args.table is None and (args.v41 is None or args.v51 is None):
        print("mlperf_import: --v41 and --v51 are required unless --table is given", file=sys.stderr)
        return 2
    found = []
    if args.table is not None:
        if not args.table.is_file():
            print(f"mlperf_import: --table {args.table}: file not found", file=sys.stderr)
            return 2
        raw = args.table.read_bytes()
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        even = raw[: len(raw) // 2 * 2]
        text = even.decode("utf-16", "replace") if utf16 else raw.decode("utf-8", "replace")
        read = rows_table if "\t" in text.split("\n", 1)[0] else rows_pivot
        found += read(text, args.table_round, args.table_source or str(args.table))
    if args.v41 is not None and args.v51 is not None:
        found += rows_v41(args.v41) + rows_v51(args.v51)
    if args.v61 is not None:
        found += rows_v61(json.loads(_git(args.v61, "show", "HEAD:summary.json") or "{}"))
    rows = [to_csv_row(r) for r in select(found)]
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
