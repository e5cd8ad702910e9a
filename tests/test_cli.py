"""The CLI and the Python API: output formats, the JSON contract, exit codes, perf, catalog."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import polyfleet
from conftest import EXAMPLES, run_cli, write_spec
from polyfleet.catalog.io import load_bundled

PURCHASE_KEYS = {
    "offer",
    "provider",
    "vendor",
    "accelerator",
    "region",
    "term",
    "instances",
    "chips",
    "usd",
}
ALLOCATION_KEYS = {
    "offer",
    "provider",
    "vendor",
    "accelerator",
    "replicas",
    "chips",
    "share",
    "usd",
}
EXPLAIN_KEYS = {"lock_in_premium_usd", "survival_premium_usd", "reseller_markup_usd"}

CAPPED = """
policy:
  max_share: {provider: 0.6}
workloads:
  - name: chat
    kind: inference
    model: llama-3.1-8b
    requests_per_s: 20
    input_tokens: 1000
    output_tokens: 200
    allow_api: false
  - name: office
    kind: api
    model: claude-sonnet-4.5
    mtok_in_per_month: 100
    mtok_out_per_month: 20
"""


def plan_json(*args: str) -> dict:
    result = run_cli("plan", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def startup() -> dict:
    return plan_json(str(EXAMPLES / "startup.yaml"), "--explain")


@pytest.fixture(scope="module")
def reseller() -> dict:
    return plan_json(str(EXAMPLES / "copilot-reseller.yaml"), "--explain")


def check_contract(data: dict, workload_names: list[str]) -> None:
    assert data["status"] in {"optimal", "feasible"}
    assert isinstance(data["horizon_months"], int | float) and data["horizon_months"] > 0
    assert data["total_usd"] > 0
    assert data["solve_seconds"] >= 0
    assert data["method"] in {"highs", "greedy", "restricted-milp", "dive", "lns", "rounding"}
    assert data["purchases"], "a feasible plan buys something"
    for purchase in data["purchases"]:
        assert set(purchase) >= PURCHASE_KEYS, PURCHASE_KEYS - set(purchase)
        assert purchase["usd"] >= 0
    assert [w["name"] for w in data["workloads"]] == workload_names
    for workload in data["workloads"]:
        assert {"name", "kind", "usd", "allocations"} <= set(workload)
        assert workload["allocations"], workload["name"]
        for alloc in workload["allocations"]:
            assert set(alloc) >= ALLOCATION_KEYS, ALLOCATION_KEYS - set(alloc)
            assert alloc["share"] > 0
        assert workload["usd"] == pytest.approx(sum(a["usd"] for a in workload["allocations"]), abs=0.05)
    assert set(data["shares"]) == {"provider", "vendor"}
    assert sum(data["shares"]["provider"].values()) == pytest.approx(1.0, abs=1e-4)
    assert isinstance(data["survival"], dict) and data["survival"]
    # egress lines are paid to where data sits, not capacity there: no survival row of their own
    capacity = {p["provider"] for p in data["purchases"] if not str(p.get("offer", "")).startswith("egress:")}
    assert set(data["survival"]) == capacity
    # money adds up: purchases and workloads both sum to the total
    assert sum(p["usd"] for p in data["purchases"]) == pytest.approx(data["total_usd"], abs=0.5)
    assert sum(w["usd"] for w in data["workloads"]) == pytest.approx(data["total_usd"], abs=0.5)


def test_plan_json_contract_startup(startup):
    check_contract(startup, ["support-bot"])
    assert set(startup["explain"]) >= EXPLAIN_KEYS
    allocs = [a for w in startup["workloads"] for a in w["allocations"]]
    assert allocs and all(a["replicas"] >= 1 and a["chips"] >= a["replicas"] for a in allocs)
    # capacity is bought for the peak: 5 req/s x peak_to_mean 2
    assert sum(a["share"] for a in startup["workloads"][0]["allocations"]) >= 1 - 1e-6
    assert startup["total_usd"] <= 20000
    assert startup["explain"]["budget_slack_usd"] == pytest.approx(20000 - startup["total_usd"], abs=0.01)


def test_plan_json_contract_copilot_reseller(reseller):
    check_contract(reseller, ["copilot-chat", "autocomplete"])
    explain = reseller["explain"]
    assert set(explain) >= EXPLAIN_KEYS
    chat = reseller["workloads"][0]
    shares = {a["offer"]: a["share"] for a in chat["allocations"]}
    assert sum(shares.values()) == pytest.approx(1.0, abs=1e-6)
    # 480,000 Mtok/month is ~10.96M tokens/min: the direct API's 4M/min limit holds at most 36.5%
    demand_tpm = 480_000 * 1e6 / (730 * 60)
    assert 0 < shares["anthropic-claude-sonnet-4.6-standard"] <= 4e6 / demand_tpm + 1e-6
    # the overflow past every list-price quota goes to Bedrock's regional endpoint at +10%
    assert shares.get("aws-claude-sonnet-4.6-regional", 0) > 0
    assert explain["reseller_markup_usd"] > 0
    assert explain["reseller_markup_usd"] == pytest.approx(
        sum(m["markup_usd"] for m in explain["reseller_markups"]), abs=0.05
    )
    # the own Maia offer is bought, within its instance limit
    own = [p for p in reseller["purchases"] if p["provider"] == "own"]
    assert own and own[0]["accelerator"] == "microsoft-maia-200" and own[0]["instances"] <= 6
    assert {a["accelerator"] for a in reseller["workloads"][1]["allocations"]} >= {"microsoft-maia-200"}


def test_frontier_lab_example_plans(tmp_path):
    result = run_cli("plan", EXAMPLES / "frontier-lab.yaml", "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    check_contract(data, ["chat", "code-assist", "pretrain-70b", "office-claude"])
    assert max(data["shares"]["provider"].values()) <= 0.5 + 1e-6
    assert max(data["shares"]["vendor"].values()) <= 0.7 + 1e-6
    assert data["total_usd"] <= 2.0e7


@pytest.mark.parametrize("name", ["startup", "copilot-reseller"])
def test_examples_plan_with_explain_table(name):
    result = run_cli("plan", EXAMPLES / f"{name}.yaml", "--explain")
    assert result.exit_code == 0, result.stderr
    assert "What each policy costs" in result.stdout
    assert "markup paid to resellers" in result.stdout


def test_plan_yaml_matches_json(tmp_path, startup):
    result = run_cli("plan", EXAMPLES / "startup.yaml", "--explain", "--format", "yaml")
    assert result.exit_code == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert isinstance(data, dict)
    data.pop("solve_seconds")
    expected = dict(startup)
    expected.pop("solve_seconds")
    assert data == expected


def test_plan_table_names_workloads_and_caps(tmp_path):
    result = run_cli("plan", write_spec(tmp_path, CAPPED))
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "chat" in out and "office" in out
    header = next(line for line in out.splitlines() if "group" in line)
    assert "cap" in header.split()[-2:] or header.rstrip("┃ ").endswith("cap")
    assert "60.0%" in out  # the provider cap is shown against each provider


def test_plan_out_writes_file(tmp_path):
    out = tmp_path / "plan.json"  # a missing parent is refused (issue 20), not created
    result = run_cli("plan", EXAMPLES / "startup.yaml", "--format", "json", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert str(out) in result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["workloads"][0]["name"] == "support-bot"


def test_plan_out_replaces_existing_file(tmp_path):
    out = tmp_path / "plan.json"
    out.write_text('{"old": "plan"}\n', encoding="utf-8")
    result = run_cli("plan", EXAMPLES / "startup.yaml", "--format", "json", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["status"] in {"optimal", "feasible"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json"]  # no temporary file left


def test_plan_yaml_format_without_inference_shares(tmp_path):
    """YAML output where no allocation share comes from NumPy (api workloads only)."""
    text = (
        "workloads:\n  - {name: office, kind: api, model: claude-sonnet-4.5,\n"
        "     mtok_in_per_month: 10, mtok_out_per_month: 2}\n"
    )
    result = run_cli("plan", write_spec(tmp_path, text), "--format", "yaml")
    assert result.exit_code == 0, result.stderr
    data = yaml.safe_load(result.stdout)
    assert data["workloads"][0]["name"] == "office"
    assert data["total_usd"] == pytest.approx(10 * 3 + 2 * 15, abs=0.01)


def _non_builtin(value, where="$"):
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_builtin(v, f"{where}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_builtin(v, f"{where}[{i}]")]
    ok = value is None or type(value) in (bool, int, float, str)
    return [] if ok else [f"{where}: {type(value).__name__}"]


def test_to_dict_has_only_builtin_types():
    data = polyfleet.plan(polyfleet.load_spec(EXAMPLES / "startup.yaml"), with_explain=True).to_dict()
    assert _non_builtin(data) == []


def test_infeasible_budget_exits_1_and_names_family(tmp_path):
    text = (EXAMPLES / "startup.yaml").read_text(encoding="utf-8")
    assert "budget_usd: 20000" in text
    path = write_spec(tmp_path, text.replace("budget_usd: 20000", "budget_usd: 1"))
    result = run_cli("plan", path, "--format", "json")
    assert result.exit_code == 1
    assert "Traceback" not in result.stderr
    assert "infeasible (budget)" in result.stderr
    data = json.loads(result.stdout)
    assert data["status"] == "infeasible"
    assert data["infeasible"]["family"] == "budget"


def test_perf_json_is_roofline_consistent():
    result = run_cli(
        "perf",
        "--model",
        "llama-3.1-70b",
        "--accelerator",
        "nvidia-h100-sxm",
        "--input-tokens",
        "1500",
        "--output-tokens",
        "300",
        "--tpot-ms",
        "40",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    for key in (
        "chips_per_replica",
        "max_batch",
        "tpot_ms",
        "ttft_ms",
        "replica_requests_per_s",
        "output_tokens_per_s_per_chip",
        "bound",
    ):
        assert key in data, key
    chips = data["chips_per_replica"]
    # 70.6B bf16 weights are 141 GB: more than one 80 GB H100
    assert isinstance(chips, int) and chips >= 2
    assert isinstance(data["max_batch"], int) and data["max_batch"] >= 1
    assert 0 < data["tpot_ms"] <= 40
    # a decode step reads every weight byte at least once at no more than 3.35 TB/s per chip
    assert data["tpot_ms"] >= 1000 * 70.6e9 * 2 / (chips * 3.35e12)
    assert data["ttft_ms"] > 0
    assert data["bound"] in {"memory", "compute"}
    assert data["replica_requests_per_s"] > 0
    assert data["output_tokens_per_s_per_chip"] == pytest.approx(
        data["replica_requests_per_s"] * 300 / chips, rel=1e-9
    )
    # a replica cannot emit more tokens/s than max_batch streams at tpot each
    assert data["replica_requests_per_s"] * 300 <= data["max_batch"] * 1000 / data["tpot_ms"] * (1 + 1e-9)


def test_perf_unknown_model_suggests():
    result = run_cli("perf", "--model", "llama-70b", "--accelerator", "nvidia-h100-sxm")
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "unknown model 'llama-70b'" in lines[0] and "did you mean" in lines[0]
    assert "'llama-3.1-70b'" in lines[0]


def test_perf_unknown_accelerator_suggests():
    result = run_cli("perf", "--model", "llama-3.1-70b", "--accelerator", "nvidia-h100")
    assert result.exit_code == 2
    assert "'nvidia-h100-sxm'" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_catalog_accelerators_vendor_filter():
    result = run_cli("catalog", "accelerators", "--vendor", "amd", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    bundled_amd = {a.id for a in load_bundled().accelerators.values() if a.vendor == "amd"}
    assert bundled_amd and {r["id"] for r in rows} == bundled_amd
    assert all(r["vendor"] == "amd" for r in rows)


def test_catalog_offers_provider_filter():
    result = run_cli("catalog", "offers", "--provider", "nebius")
    assert result.exit_code == 0, result.stderr
    nebius = [o.id for o in load_bundled().offers.values() if o.provider == "nebius"]
    assert nebius
    assert f"offers ({len(nebius)})" in result.stdout
    assert "nebius" in result.stdout and "aws-p5" not in result.stdout
    as_json = json.loads(run_cli("catalog", "offers", "--provider", "nebius", "--format", "json").stdout)
    assert sorted(r["id"] for r in as_json) == sorted(nebius)


def test_catalog_models():
    result = run_cli("catalog", "models")
    assert result.exit_code == 0, result.stderr
    models = load_bundled().models
    assert f"models ({len(models)})" in result.stdout
    for name in ("llama-3.1-8b", "llama-3.1-70b", "deepseek-v3"):
        assert name in result.stdout


def test_catalog_api_offers_resells():
    result = run_cli("catalog", "api-offers", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = {r["id"]: r for r in json.loads(result.stdout)}
    bedrock = [r for r in rows.values() if r["provider"] == "aws" and r["model"].startswith("claude-")]
    assert bedrock and all(r["resells"] == "anthropic" for r in bedrock)
    assert rows["anthropic-claude-sonnet-4.5-standard"]["resells"] == ""
    assert rows["aws-llama-3.1-70b-on-demand"]["resells"] == ""  # open weights: not resold


def test_catalog_unknown_section_is_usage_error():
    result = run_cli("catalog", "chips")
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("explain", [False, True])
def test_python_api_equals_cli_json(explain):
    path = EXAMPLES / "copilot-reseller.yaml"
    cli = plan_json(str(path), *(["--explain"] if explain else []))
    api = polyfleet.plan(polyfleet.load_spec(path), with_explain=explain).to_dict()
    api = json.loads(json.dumps(api))  # tuples -> lists, as the CLI writes
    for data in (cli, api):
        assert math.isfinite(data.pop("solve_seconds"))
    assert api == cli
    assert ("explain" in api) is explain


def test_public_api():
    assert sorted(polyfleet.__all__) == [
        "InfeasibleError",
        "Plan",
        "PolyfleetError",
        "SolveOptions",
        "Spec",
        "SpecError",
        "Status",
        "__version__",
        "build_spec",
        "load_spec",
        "plan",
    ]
    for name in polyfleet.__all__:
        assert hasattr(polyfleet, name), name
    assert issubclass(polyfleet.SpecError, polyfleet.PolyfleetError)
    assert issubclass(polyfleet.InfeasibleError, polyfleet.PolyfleetError)


def test_version_option():
    result = run_cli("--version")
    assert result.exit_code == 0
    assert polyfleet.__version__ in result.stdout


def test_batching_choice_reaches_the_perf_model_and_the_planner(tmp_path):
    from polyfleet.catalog.io import load_bundled
    from polyfleet.perf.configs import best_inference_perf
    from polyfleet.plan import build_candidates

    args = [
        "perf",
        "--model",
        "llama-3.1-8b",
        "--accelerator",
        "nvidia-h100-sxm",
        "--input-tokens",
        "1200",
        "--output-tokens",
        "250",
        "--tpot-ms",
        "50",
        "--format",
        "json",
    ]
    serial = json.loads(run_cli(*args).stdout)
    chunked = json.loads(run_cli(*args, "--batching", "chunked").stdout)
    cat = load_bundled()
    # the CLI's default: the best configuration within 8 chips, TPOT at p99 under Poisson load
    expected = best_inference_perf(
        cat.models["llama-3.1-8b"],
        cat.accelerators["nvidia-h100-sxm"],
        input_tokens=1200,
        output_tokens=250,
        tpot_ms=50,
        batching="chunked",
        chips_per_node=8,
        percentile=0.99,
    )
    assert chunked["max_batch"] == expected.max_batch
    # prompts chunked into the decode steps change each step: another admitted batch
    assert chunked["max_batch"] != serial["max_batch"]

    text = (
        "workloads:\n  - {name: svc, kind: inference, model: llama-3.1-8b, requests_per_s: 5,\n"
        "     input_tokens: 1200, output_tokens: 250, slo: {tpot_ms: 50}, allow_api: false,\n"
        "     stacks: [cuda], batching: BATCHING}\n"
    )
    rps = {}
    for mode in ("serial", "chunked"):
        spec = polyfleet.build_spec(yaml.safe_load(text.replace("BATCHING", mode)))
        cand = build_candidates(spec)
        k = next(i for i, o in enumerate(cand.inf_o) if cand.offers[o].accelerator == "nvidia-h100-sxm")
        rps[mode] = cand.inf_rps[k]
    assert rps["chunked"] != pytest.approx(rps["serial"])


def test_plan_json_on_real_stdout_is_pure_json(tmp_path):
    """Run the installed console script in a child process: stdout must be only the JSON.

    CliRunner captures Python's sys.stdout only; a C library writing to file descriptor 1
    (HiGHS 1.16 prints a banner there) is caught only by a real process.
    """
    exe = shutil.which("polyfleet") or str(Path(sys.executable).with_name("polyfleet"))
    proc = subprocess.run(
        [exe, "plan", str(EXAMPLES / "startup.yaml"), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["status"] == "optimal"


# --- terminal output (issue 16) -------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line]


def test_tables_fit_80_columns_when_not_a_tty(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    result = run_cli("plan", EXAMPLES / "frontier-lab.yaml", "--time-limit", "20")
    assert result.exit_code == 0, result.stderr
    assert max(len(line) for line in _lines(result.stdout)) <= 80
    assert "hidden to fit 80 columns: offer" in result.stdout
    assert "\x1b" not in result.stdout + result.stderr  # piped: no escape codes anywhere


def test_wide_shows_every_column_and_columns_sets_the_width(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    wide = run_cli("catalog", "offers", "--provider", "aws", "--wide")
    assert wide.exit_code == 0
    header = next(line for line in wide.stdout.splitlines() if " id " in line)
    for column in ("region", "chips/inst", "avail", "as_of"):
        assert column in header
    assert "hidden" not in wide.stdout
    monkeypatch.setenv("COLUMNS", "120")
    mid = run_cli("catalog", "offers", "--provider", "aws")
    assert max(len(line) for line in _lines(mid.stdout)) <= 120
    assert max(len(line) for line in _lines(wide.stdout)) > 120


def test_number_columns_are_right_aligned(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    result = run_cli("catalog", "offers", "--provider", "aws")
    rows = [line for line in result.stdout.splitlines() if line.startswith("│ aws-p5-48xlarge-us-east-1-on")]
    cells = [c for c in rows[0].split("│")[1:-1]]
    price = cells[6]  # $/chip-h: padded on the left, ends one space before the border
    assert price.endswith(" ") and price.strip() and price.startswith("  ")
    assert price.rstrip().endswith(price.strip())


def test_money_and_months_read_as_words():
    from polyfleet.report.tables import _usd, plan_tables

    assert _usd(-482) == "-$482.00"
    assert _usd(-1_234_567) == "-$1.23M"
    assert _usd(1_234_567) == "$1.23M"
    from polyfleet.cli._terminal import render_table

    plan = {"status": "optimal", "total_usd": 10.0, "horizon_months": 1.0, "solve_seconds": 0.1,
            "workloads": [], "shares": {}, "policy": {}}  # fmt: skip
    assert "over 1 month " in render_table(plan_tables(plan))
    assert "over 2 months " in render_table(plan_tables({**plan, "horizon_months": 2.0}))


def test_progress_only_on_a_terminal():
    import io
    import time

    from polyfleet.cli._terminal import working

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    piped = io.StringIO()
    with working("planning", stream=piped):
        time.sleep(0.05)
    assert piped.getvalue() == ""
    tty = Tty()
    with working("planning spec.yaml", stream=tty):
        time.sleep(0.3)
    assert "planning spec.yaml" in tty.getvalue()
    late = Tty()
    with working("planning", delay_s=5.0, stream=late):  # a run shorter than the delay shows nothing
        time.sleep(0.05)
    assert late.getvalue() == ""


def test_latin1_terminal_gets_ascii_tables_and_no_traceback(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONIOENCODING": "latin-1", "COLUMNS": "100"}
    exe = str(Path(sys.executable).with_name("polyfleet"))
    cmd = [exe, "plan", str(EXAMPLES / "startup.yaml"), "--explain"]
    result = subprocess.run(cmd, capture_output=True, env=env, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr.decode("latin-1")
    text = result.stdout.decode("latin-1")
    assert "support-bot" in text and "+-" in text and "┃" not in text
    assert b"Traceback" not in result.stderr


def test_monthly_tables_split_into_parts_that_fit_80_columns():
    from polyfleet.cli._terminal import render_table
    from polyfleet.report.monthly import monthly_tables

    months = [
        {
            "workloads": [{"name": "assistant", "allocations": [
                {"offer": "verda-4b200-120v-fin-03-on-demand", "replicas": t + 1, "share": 0.5}]}],
            "purchases": [{"provider": "verda", "usd": 20_000 + 100 * t}],
            "total_usd": 20_000 + 100 * t,
        }
        for t in range(12)
    ]  # fmt: skip
    plan = {"status": "optimal", "total_usd": 246_600, "horizon_months": 12, "solve_seconds": 1.0,
            "months": months}  # fmt: skip
    text = render_table(monthly_tables(plan))
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "hidden" not in text  # no month is dropped: they continue in the next part
    for t in range(12):
        assert f" m{t} " in text
    assert "$21.1k" in text  # month 11's spend, 20,000 + 1,100
    assert text.count("(continued)") >= 2
