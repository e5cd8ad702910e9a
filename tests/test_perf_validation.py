"""bench/perf_validation.py on the published inference points: the figures the README quotes."""

from __future__ import annotations

import statistics

from conftest import load_bench


def test_published_points_are_predicted_within_the_targets_the_readme_states() -> None:
    bench = load_bench("perf_validation")
    rows = bench.load_rows(bench.DEFAULT_MEASUREMENTS)
    assert len(rows) == 74 and all(r.error is not None for r in rows)
    errors = [abs(r.error) for r in rows]
    assert statistics.median(errors) < 0.10  # README: 7.4%
    over = {(r.accelerator, r.tp, r.input_tokens, r.output_tokens) for r in rows if abs(r.error) > 0.5}
    assert over == {("amd-mi300x", 8, 128, 2048), ("intel-gaudi2", 4, 128, 2048)}
    by_acc = {
        acc: statistics.median(abs(r.error) for r in rows if r.accelerator == acc)
        for acc in {r.accelerator for r in rows}
    }
    assert by_acc["intel-gaudi3"] < 0.10  # was 27% before the full-mesh links
    assert all(r.error < 0.7 for r in rows if r.accelerator == "amd-mi300x")  # was +85%, +111%


def test_full_mesh_links_are_what_bring_gaudi3_tp2_down() -> None:
    # The same rows with the mesh switched off (a switched fabric): Gaudi 3's TP2 rows are
    # predicted faster, since a 2-card group would then use all 21 scale-up ports.
    bench = load_bench("perf_validation")
    rows = [r for r in bench.load_rows(bench.DEFAULT_MEASUREMENTS) if r.accelerator == "intel-gaudi3"]
    catalog = bench.load_bundled()
    acc = catalog.accelerators["intel-gaudi3"]
    switched = acc.model_copy(update={"scaleup_links": None})
    for r in rows:
        if r.tp != 2:
            continue
        card = catalog.models[bench.MODEL_NAMES[r.model]].model_copy(update={"dtype": r.dtype})
        value, _, _ = bench.predict(card, switched, r.tp, r.input_tokens, r.output_tokens, r.perf.max_batch)
        assert value > r.predicted * 1.05


# ------------------------------------------------ MLPerf Inference (bench/mlperf_validation.py)

LOADGEN_TARGETS = {  # loadgen/mlperf.conf: (p99 TTFT ms, p99 TPOT ms)
    ("llama2-70b-99", "Server"): (2000, 200),
    ("llama2-70b-99", "Interactive"): (450, 40),
    ("mixtral-8x7b", "Server"): (2000, 200),
    ("llama3.1-405b", "Server"): (6000, 175),
    ("llama3.1-405b", "Interactive"): (4500, 80),
    ("llama3.1-8b", "Server"): (2000, 100),
    ("deepseek-r1", "Server"): (2000, 80),
}


def test_mlperf_rows_are_sourced_and_carry_the_loadgen_targets() -> None:
    import csv

    bench = load_bench("mlperf_validation")
    with bench.DEFAULT_MEASUREMENTS.open(newline="") as fh:
        recs = list(csv.DictReader(fh))
    assert len(recs) == 64
    dates = {"v4.1": "2024-08-28", "v5.1": "2025-09-09"}
    for r in recs:
        assert r["source"].startswith(
            f"https://github.com/mlcommons/inference_results_{r['round']}/tree/main/"
        )
        assert r["round_date"] == dates[r["round"]]
        assert int(r["chips"]) >= 1 and float(r["output_tokens_per_s"]) > 0
        if r["scenario"] == "Offline":
            assert r["ttft_p99_ms"] == r["tpot_p99_ms"] == ""
        else:
            got = (float(r["ttft_p99_ms"]), float(r["tpot_p99_ms"]))
            assert got == LOADGEN_TARGETS[(r["benchmark"], r["scenario"])]
    # every (round, benchmark, accelerator) has its Offline row and at least a Server one
    keys = {(r["round"], r["benchmark"], r["accelerator"]) for r in recs}
    for scen in ("Offline", "Server"):
        assert keys == {(r["round"], r["benchmark"], r["accelerator"]) for r in recs if r["scenario"] == scen}


def test_mlperf_scenarios_are_predicted_in_order_and_within_the_documented_figures() -> None:
    bench = load_bench("mlperf_validation")
    rows = [bench.predict(r) for r in bench.read_rows(bench.DEFAULT_MEASUREMENTS)]
    assert all(r.error is not None for r in rows)
    per_chip = {(r.round, r.benchmark, r.accelerator, r.scenario): r.predicted / r.chips for r in rows}
    for (rnd, bm, acc, scen), value in per_chip.items():
        # a load held at p99 targets never beats the full batch of the same system
        if scen != "Offline":
            assert value <= per_chip[(rnd, bm, acc, "Offline")] * (1 + 1e-9)
        if scen == "Interactive" and (rnd, bm, acc, "Server") in per_chip:
            assert value <= per_chip[(rnd, bm, acc, "Server")] * (1 + 1e-9)
    errors = [abs(r.error) for r in rows]
    assert statistics.median(errors) < 0.16  # docs/perf-validation.md: 14.8%
    worst = max(rows, key=lambda r: abs(r.error))
    assert worst.benchmark == "deepseek-r1"  # the documented open case (Server)
    over = {(r.benchmark, r.accelerator, r.scenario) for r in rows if abs(r.error) > 0.5}
    assert len(over) <= 5 and sum(b == "deepseek-r1" for b, _, _ in over) == 3
    # PCIe and the H100 NVL bridge at their measured shares of the line rate (defaults.LINK_EFFICIENCY)
    assert not any(acc in ("nvidia-h100-nvl", "nvidia-l40s") and b == "llama2-70b-99" for b, acc, _ in over)
    # the two 405B H200 rows the M/M/1 prefill queue put at -51%/-62% are within 15%
    h200_405b = [r for r in rows if r.benchmark == "llama3.1-405b" and r.accelerator == "nvidia-h200"]
    assert len(h200_405b) == 3 and all(abs(r.error) < 0.15 for r in h200_405b)


def test_mlperf_lengths_are_the_data_sets_own() -> None:
    bench = load_bench("mlperf_validation")
    d = bench.DATASETS
    # mean prompt tokens of MLCommons' data set files, not estimates
    assert {k: v.input_tokens for k, v in d.items()} == {
        "llama-2-70b": 222, "mixtral-8x7b": 427, "llama-3.1-405b": 9429,
        "llama-3.1-8b": 871, "deepseek-r1": 804,
    }  # fmt: skip
    assert all(bench.LENGTHS_SOURCE in v.source for v in d.values())
    assert d["deepseek-r1"].output_tokens_cv == 1.25  # long-tailed reasoning outputs


def test_mlperf_import_maps_accelerators_and_picks_the_best_system_per_chip() -> None:
    imp = load_bench("mlperf_import")
    assert imp.accelerator_id("NVIDIA H200-SXM-141GB") == "nvidia-h200"
    assert imp.accelerator_id("NVIDIA GB200") == "nvidia-gb200"
    assert imp.accelerator_id("NVIDIA B200-SXM-180GB") == "nvidia-b200"
    assert imp.accelerator_id("AMD Instinct MI325X 256GB HBM3e") == "amd-mi325x"
    for left_out in ("NVIDIA H200-NVL-141GB", "NVIDIA GH200 Grace Hopper Superchip 144GB", "NVIDIA A100"):
        assert imp.accelerator_id(left_out) is None

    def row(system: str, scenario: str, chips: int, tps: float) -> dict:
        base = {"round": "v5.1", "benchmark": "llama2-70b-99", "accelerator": "nvidia-h200", "submitter": "S"}
        return {**base, "system": system, "scenario": scenario, "chips": chips, "tokens_per_s": tps}

    rows = [
        row("a", "Offline", 8, 32_000),  # 4,000 per chip
        row("a", "Server", 8, 30_000),
        row("b", "Offline", 4, 17_000),  # 4,250 per chip: the best Offline system
        row("b", "Server", 4, 15_000),
        row("a", "Interactive", 8, 20_000),  # b submitted none: the best per chip that did
    ]
    picked = [(r["system"], r["scenario"]) for r in imp.select(rows)]
    assert picked == [("b", "Offline"), ("b", "Server"), ("a", "Interactive")]


def test_mlperf_import_reads_the_v61_summary_layout() -> None:
    imp = load_bench("mlperf_import")
    base = {
        "Organization": "AMD", "Availability": "available", "Division": "closed", "SystemType": "datacenter",
        "Platform": "8xMI355X_2xEPYC_9575F", "accelerator_model_name": "AMD Instinct MI355X 288GB HBM3e",
        "total_accelerators": 8, "number_of_nodes": 1, "Units": "Tokens/s", "weight_data_types": "fp4",
        "inferred": 0,
    }  # fmt: skip
    where = "./closed/AMD/results/8xMI355X_2xEPYC_9575F/llama2-70b-99.9/{}/performance/run_1"
    summary = {
        "9": {
            **base,
            "MlperfModel": "llama2-70b-99.9",
            "Scenario": "Offline",
            "Result": 106517.0,
            "Location": where.format("Offline"),
        },
        "8": {
            **base,
            "MlperfModel": "llama2-70b-99.9",
            "Scenario": "Interactive",
            "Result": 73191.5,
            "Location": where.format("Interactive"),
            "inferred": 1,
        },
        "0": {
            **base,
            "MlperfModel": "dlrm-v3",
            "Scenario": "Offline",
            "Result": 10891.1,
            "Units": "Samples/s",
            "Location": "./closed/AMD/results/x/dlrm-v3/Offline/performance/run_1",
        },
    }
    rows = imp.rows_v61(summary)
    assert len(rows) == 1  # the inferred Interactive result and the recommender are left out
    row = imp.to_csv_row(rows[0])
    assert (row["benchmark"], row["accelerator"], row["chips"], row["weight_dtype"]) == (
        "llama2-70b-99", "amd-mi355x", 8, "fp4",
    )  # fmt: skip
    assert row["output_tokens_per_s"] == 106517.0 and row["round_date"] == ""
    assert row["source"].endswith("closed/AMD/results/8xMI355X_2xEPYC_9575F/llama2-70b-99.9/Offline")


def test_mlperf_import_reads_the_results_table_export_and_infers_the_precision() -> None:
    imp = load_bench("mlperf_import")
    head = ["Public ID", "Organization", "Availability", "System Name (click + for details)",
            "Accelerator (click + for details)", "Model MLC", "Scenario", "Units", "Division/Power",
            "# of Nodes", "Total Accelerators", "Avg. Result at System Name"]  # fmt: skip
    lines = [
        head,
        ["v6.0-1", "A", "available", "s1", "AMD Instinct MI355X 288GB HBM3e (x87)", "llama2-70b-99.9",
         "Offline", "Tokens/s", "Closed ", "11", "87", "1042110"],
        ["v6.0-1", "A", "available", "s1", "AMD Instinct MI355X 288GB HBM3e (x87)", "llama2-70b-99",
         "Offline", "Tokens/s", "Closed ", "11", "87", "1100000"],  # the same system at 99%: kept instead
        ["v6.0-2", "N", "available", "s2", "NVIDIA H200-SXM-141GB", "llama3.1-8b", "Server", "Tokens/s",
         "Closed ", "1", "8", "64000"],
        ["v6.0-3", "N", "available", "s3", "NVIDIA H200-SXM-141GB", "gpt-oss-120b", "Offline", "Tokens/s",
         "Closed ", "1", "8", "1"],  # no data set lengths: left out
        ["v6.0-4", "N", "available", "s4", "NVIDIA H200-NVL-141GB", "llama3.1-8b", "Offline", "Tokens/s",
         "Closed ", "1", "8", "1"],  # not in the catalog
    ]  # fmt: skip
    rows = imp.rows_table("\n".join("\t".join(r) for r in lines), "v6.0", "table.csv")
    assert [
        (r["benchmark"], r["accelerator"], r["chips"], r["nodes"], r["dtype"], r["tokens_per_s"])
        for r in rows
    ] == [
        ("llama2-70b-99", "amd-mi355x", 87, 11, "fp4", 1_100_000),
        ("llama3.1-8b", "nvidia-h200", 8, 1, "fp8", 64_000),
    ]
    assert rows[0]["source"] == "table.csv (Public ID v6.0-1; weight precision inferred: fp4)"
    assert imp.to_csv_row(rows[1])["tpot_p99_ms"] == 100 and imp.to_csv_row(rows[1])["round_date"] == ""


def test_mlperf_v60_round_is_predicted_as_well_as_the_rounds_before_it() -> None:
    # A later round the model was never looked at while it was built (docs/perf-validation.md):
    # 49 results, median 14.4%, the 2 over 50% both B300 x8 Interactive (DeepSeek-R1 at 15 ms
    # TPOT, 405B).  GB200/GB300 NVL72 DeepSeek-R1 Interactive (-60% when the search stopped at
    # 8 chips) may use the rack's 72-GPU NVLink domain (defaults.SCALEUP_DOMAIN_CHIPS): TP16.
    bench = load_bench("mlperf_validation")
    path = bench.REPO_ROOT / "examples" / "published_mlperf_v6.0.csv"
    rows = [bench.predict(r) for r in bench.read_rows(path)]
    assert len(rows) == 49 and all(r.error is not None for r in rows)
    assert statistics.median(abs(r.error) for r in rows) < 0.16
    over = [r for r in rows if abs(r.error) > 0.5]
    assert len(over) <= 2 and all((r.scenario, r.accelerator) == ("Interactive", "nvidia-b300") for r in over)
    nvl72 = [r for r in rows if (r.benchmark, r.scenario, r.chips) == ("deepseek-r1", "Interactive", 72)]
    assert len(nvl72) == 2 and all(r.perf.tensor_parallel == 16 and -0.3 < r.error < -0.2 for r in nvl72)


def test_mlperf_import_reads_the_v50_pivot_export() -> None:
    imp = load_bench("mlperf_import")
    blank = [""] * 15
    mi300x = ["5.0-1", "M", "available", "four-node", "4", "", "", "AMD Instinct MI300X 192GB HBM3"]
    h200 = ["5.0-2", "N", "available", "h200", "1", "", "", "NVIDIA H200-SXM-141GB"]
    closed = ["8", "", "", "", "", "", "Closed "]  # columns 8..14
    result = "Avg. Result at System Name"
    lines = [
        [*blank, "", "llama2-70b-99", "", "llama2-70b-interactive-99", "", "llama3.1-405b", "", "gptj-99"],
        [*blank, "", "Offline", "Server", "Offline", "Server", "Offline", "Server", "Offline"],
        ["Public ID", "Org", "Avail", "System", "Nodes", "Proc", "#", "Acc", "#", "Avail", "Acc", "Cores",
         "Proc", "Sum", "Division/Power", "", "Tokens/s", "Tokens/s", "Tokens/s", "Tokens/s",
         "Samples/s", "Queries/s", "Tokens/s"],
        [*mi300x, *closed, "# of Accelerators", "8", "8", "8", "8", "", "", "8"],
        [*blank, "# of Nodes", "4", "4", "4", "4", "", "", "4"],
        [*blank, result, "103,182.00", "93,039.93", "103,182.00", "40,000.00", "", "", "9"],
        [*h200, *closed, "# of Accelerators", "", "", "", "", "8", "8", ""],
        [*blank, "# of Nodes", "", "", "", "", "1", "1", ""],
        [*blank, result, "", "", "", "", "558.53", "288.60", ""],
    ]  # fmt: skip
    text = "\n".join(",".join(f'"{c}"' for c in r) for r in lines)
    rows = imp.rows_pivot(text, "v5.0", "t.csv")
    got = [
        (r["benchmark"], r["scenario"], r["accelerator"], r["chips"], r["dtype"], r["tokens_per_s"])
        for r in rows
    ]
    assert got == [
        ("llama2-70b-99", "Offline", "amd-mi300x", 32, "fp8", 103_182.0),  # 8 per node x 4 nodes
        ("llama2-70b-99", "Server", "amd-mi300x", 32, "fp8", 93_039.93),
        ("llama2-70b-99", "Interactive", "amd-mi300x", 32, "fp8", 40_000.0),  # the interactive Server column
        ("llama3.1-405b", "Offline", "nvidia-h200", 8, "fp8", 558.53),  # tokens/s whatever the units row says
        ("llama3.1-405b", "Server", "nvidia-h200", 8, "fp8", 288.60),
    ]


def test_mlperf_v50_round_is_predicted_within_the_target() -> None:
    # 34 results the model was not built on (docs/perf-validation.md): median 14.7%, none
    # over 50% (L40S Llama 2 70B Server was +58.0% before PCIe ran at its measured NCCL share,
    # now +40.9%); Llama 3.1 405B within 15% on every row.
    bench = load_bench("mlperf_validation")
    rows = [
        bench.predict(r) for r in bench.read_rows(bench.REPO_ROOT / "examples" / "published_mlperf_v5.0.csv")
    ]
    assert len(rows) == 34 and all(r.error is not None for r in rows)
    assert statistics.median(abs(r.error) for r in rows) < 0.16
    assert [(r.accelerator, r.scenario) for r in rows if abs(r.error) > 0.5] == []
    l40s = [r.error for r in rows if r.accelerator == "nvidia-l40s" and r.scenario == "Server"]
    assert l40s and all(0.3 < e < 0.45 for e in l40s)
    assert all(abs(r.error) < 0.16 for r in rows if r.benchmark == "llama3.1-405b")
