"""Broken inputs the fuzz corpus (``test_fuzz_cli.py``) missed, each a one-line error and exit 2.

Found by hand and by a mutation run over every field of a spec with every term, api
quota, lengths histogram and egress; each case runs in-process in milliseconds (no
plan is solved, no Ray is imported).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import run_cli
from polyfleet.cli.deal import parse_sweep
from polyfleet.errors import SpecError
from polyfleet.plan import plan
from polyfleet.spec import build_spec


def _invoke(args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``polyfleet ARGS`` (exceptions propagate: a traceback fails)."""
    result = run_cli(*args)
    return result.exit_code, result.stderr


ACCEPTED = "expected auto, HOST:PORT or ray://HOST:PORT"


@pytest.mark.parametrize("command", ["risk", "deal"])
@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("nonsense", f"{ACCEPTED}, got 'nonsense'"),  # Ray retried this for minutes
        ("garbage:://", f"{ACCEPTED}, got 'garbage:://'"),  # Ray: RuntimeError traceback
        ("ray://host:port", f"{ACCEPTED}, got 'ray://host:port'"),
        ("127.0.0.1:1", "cannot reach 127.0.0.1:1 (Connection refused)"),
    ],
)
def test_a_ray_address_nobody_answers_is_one_line(tmp_path, command, address, says):
    path = tmp_path / "in.yaml"  # never read: the address is refused before any work
    code, err = _invoke([command, str(path), "--engine", "ray", "--address", address])
    assert code == 2
    assert err.startswith(f"polyfleet: --address: {says}") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "flag", "most"),
    [
        (["risk", "plan.json", "--scenarios", "100000000000"], "--scenarios", "10000000"),
        (["frontier", "spec.yaml", "--scenarios", "10000000000000"], "--scenarios", "1000000"),
        (["deal", "spec.yaml", "--out-of-sample", "100000000000"], "--out-of-sample", "1000000"),
    ],
)
def test_scenario_counts_that_would_run_for_hours_are_refused(args, flag, most):
    code, err = _invoke(args)
    assert code == 2
    assert f"'{flag}': {args[-1]} is not in the range 1<=x<={most}" in err


@pytest.mark.parametrize("text", ["discount=nan:0.4:0.1", "discount=0.1:inf:0.1", "growth=0:1:nan"])
def test_a_sweep_with_a_non_finite_number_is_bad_input(text):
    with pytest.raises(SpecError) as info:  # was ValueError: cannot convert float NaN to integer
        parse_sweep(text)
    assert info.value.render().startswith("--sweep: expected PARAM=START:STOP:STEP")


HF_CONFIG = Path(__file__).parent / "data" / "hf" / "llama-3.1-8b-config.json"


@pytest.mark.parametrize(
    ("command", "csv"),
    [
        (["import-prices", "--genai", "{tmp}/x.json"], "api_offers.csv"),
        (["import-hf-config", str(HF_CONFIG), "--name", "x", "--params-b", "8"], "models.csv"),
    ],
)
def test_a_catalog_dir_without_the_csv_names_the_flag(tmp_path, command, csv):
    """Was a FileNotFoundError traceback."""
    (tmp_path / "x.json").write_text("{}")
    args = ["catalog", *(a.format(tmp=tmp_path) for a in command), "--catalog-dir", str(tmp_path)]
    code, err = _invoke(args)
    assert code == 2
    assert err == f"polyfleet: --catalog-dir {tmp_path}: no {csv} there (expected a folder of catalog CSVs)\n"


def test_a_catalog_csv_that_is_not_text_names_the_file(tmp_path):
    (tmp_path / "api_offers.csv").write_bytes(b"id,provider\n\xff\xfe\x00junk\n")
    (tmp_path / "x.json").write_text("{}")
    code, err = _invoke(
        ["catalog", "import-prices", "--genai", str(tmp_path / "x.json"), "--catalog-dir", str(tmp_path)]
    )
    assert code == 2
    assert (
        err == f"polyfleet: {tmp_path / 'api_offers.csv'}: not UTF-8 text (byte 12); expected a catalog CSV\n"
    )


API = {"id": "a", "provider": "p", "model": "m", "usd_per_mtok_in": 1, "usd_per_mtok_out": 1}
API_WORKLOAD = {"name": "x", "kind": "api", "model": "m", "mtok_in_per_month": 1, "mtok_out_per_month": 1}


def test_a_training_job_with_no_offers_at_all_is_bad_input():
    """Was a numpy TypeError: the empty list of offers made a float array, not a bool one."""
    spec = build_spec(
        {
            "catalog": "none",
            "api_offers": [API],
            "workloads": [
                {
                    "name": "ft",
                    "kind": "training",
                    "model": {"params_b": 1},
                    "tokens_b": 5,
                    "deadline_days": 20,
                },
                {"name": "x", "kind": "api", "model": "m", "mtok_in_per_month": 1, "mtok_out_per_month": 1},
            ],
        }
    )
    with pytest.raises(SpecError) as info:
        plan(spec)
    assert info.value.render() == (
        "<spec>: workloads[0]: no offer can host workload 'ft': 0 offers excluded, no offers in the catalog"
    )


def test_an_api_offer_whose_context_fits_no_request_says_so():
    """Was 'no api or inference workload wants model m', untrue: w wants it, 300-token requests."""
    spec = build_spec(
        {
            "catalog": "none",
            "api_offers": [API, dict(API, id="short", context_tokens=250)],
            "workloads": [
                {"name": "w", "kind": "inference", "model": {"name": "m", "params_b": 1}, "requests_per_s": 1,
                 "lengths": [{"input_tokens": 100, "output_tokens": 50, "weight": 1},
                             {"input_tokens": 200, "output_tokens": 100, "weight": 1}]},
            ],
        }
    )  # fmt: skip
    with pytest.raises(SpecError) as info:
        plan(spec)
    assert info.value.render() == (
        "<spec>: api_offers[1]: no workload can use api offer 'short': its context of 250 tokens is "
        "shorter than every request of the workloads that want model 'm' ('w': up to 300 tokens)"
    )


@pytest.fixture
def small_reads(monkeypatch):
    """Inputs capped at 1 MiB and a 0.05 s wait for a pipe: the same rules, in milliseconds."""
    import polyfleet.yamlio as yamlio

    monkeypatch.setattr(yamlio, "MAX_BYTES", 2**20)
    monkeypatch.setattr(yamlio, "READ_WAIT_S", 0.05)


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["plan", "{src}"], "spec"),
        (["risk", "{src}"], "plan"),
        (["export", "skypilot", "{src}", "--workload", "x"], "plan"),
        (["usage", "--routes", "{src}"], "routes file"),
        (["catalog", "import-hf-config", "{src}"], "config"),
        (["catalog", "import-prices", "--genai", "{src}"], "price file"),
    ],
)
@pytest.mark.parametrize("source", ["/dev/zero", "fifo"])
def test_an_endless_device_or_a_silent_pipe_is_refused_not_a_hang(tmp_path, small_reads, args, what, source):
    """Was a MemoryError traceback (/dev/zero) or a hang (a named pipe nobody writes to)."""
    import os

    if source == "fifo":
        source = str(tmp_path / "fifo")
        os.mkfifo(source)
    code, err = _invoke([a.format(src=source) for a in args])
    assert code == 2
    why = "more than 1 MiB (an endless device?)" if source == "/dev/zero" else "no data for 0.05 s"
    assert err.startswith(f"polyfleet: {source}: cannot read {what}: {why}") and err.count("\n") == 1


def test_a_spec_catalog_entry_that_never_ends_is_refused(tmp_path, small_reads):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "catalog: [/dev/zero]\n"
        "workloads: [{name: x, kind: api, model: m, mtok_in_per_month: 1, mtok_out_per_month: 1}]\n"
    )
    code, err = _invoke(["plan", str(spec)])
    assert (code, err) == (
        2,
        "polyfleet: /dev/zero: cannot read catalog file: more than 1 MiB (an endless device?)\n",
    )


@pytest.mark.parametrize(
    ("deal", "field"),
    [
        ({"kind": "spend", "name": "sp", "provider": "p", "discount": 0.2, "usd_per_year": [], "years": 1},
         "usd_per_year"),
        ({"kind": "reservation", "name": "blk", "offer": "o", "instances": [], "usd_per_instance_month": 9000,
          "months": 6}, "instances"),
    ],
)  # fmt: skip
def test_a_deal_with_an_empty_size_grid_is_bad_input(deal, field):
    """Was ValueError: max() arg is an empty sequence, out of the deal's problem builder."""
    data = {
        "catalog": "none",
        "periods": "monthly",
        "horizon_months": 12,
        "accelerators": [
            {"id": "a", "vendor": "v", "hbm_gb": 80, "hbm_tbps": 3, "bf16_tflops": 1000, "stack": "cuda"}
        ],
        "offers": [
            {"id": "o", "provider": "p", "accelerator": "a", "chips_per_instance": 8,
             "usd_per_chip_hour": 2, "available_instances": 4},
        ],
        "api_offers": [API],
        "workloads": [API_WORKLOAD],
        "deals": [deal],
    }  # fmt: skip
    with pytest.raises(SpecError) as info:
        build_spec(data)
    assert info.value.render() == (
        f"<spec>: deals[0].{field}: expected a number, a non-empty list of sizes or {{min, max}}, got []"
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("models: abc\nbackends: {a: {url: 'http://x/v1'}}\n",
         ":1: models: expected a mapping of workload name -> served model name, got 'abc'"),
        ("models: {chat: null}\nbackends: {a: {url: 'http://x/v1'}}\n",
         ":1: models.chat: expected a served model name (text), got None"),
        ("backends: []\n", ":1: backends: expected a mapping of offer id -> {url: …}, got []"),
        ("backends:\n  a: x\n", ":2: backends.a: expected a mapping with at least 'url' (text), got 'x'"),
        ("backends: {a: {url: 'http://x/v1'}}\nroutes: 5\n",
         ":2: routes: expected a mapping of routes file settings, got 5"),
        ("- a\n", ":1: expected a mapping with a 'backends' section"),
        ("backends:\n  a:\n    url: ftp://x\n",  # was named by the routes built from it, no line
         ":3: backends.a.url: String should match pattern '^https?://' (got 'ftp://x')"),
        ("backends:\n  a: {url: 'http://x/v1', timeouts: {connect_s: -1}}\n",
         ":2: backends.a.timeouts.connect_s: Input should be greater than 0 (got -1)"),
    ],
)  # fmt: skip
def test_a_broken_backends_file_is_refused_before_planning(tmp_path, text, says):
    """The spec is never read: the backends file's shape is checked first, with its lines
    (``models: abc`` was an AttributeError traceback from the gateway's routes builder)."""
    backends = tmp_path / "backends.yaml"
    backends.write_text(text)
    args = [
        "plan",
        str(tmp_path / "absent.yaml"),
        "--routes",
        str(tmp_path / "r.yaml"),
        "--backends",
        str(backends),
    ]
    code, err = _invoke(args)
    assert (code, err) == (2, f"polyfleet: {backends}{says}\n")


def _tiny_plan(tmp_path):
    """A feasible plan of one inference service on api offers a (quota) and b, as JSON on disk."""
    import json

    spec = {
        "catalog": "none",
        "api_offers": [dict(API, max_tokens_per_minute=60000), dict(API, id="b", provider="q")],
        "policy": {"survive_provider_loss": 0.5},
        "workloads": [
            {"name": "w", "kind": "inference", "model": {"name": "m", "params_b": 1}, "requests_per_s": 1,
             "input_tokens": 100, "output_tokens": 100},
        ],
    }  # fmt: skip
    (tmp_path / "spec.yaml").write_text(json.dumps(spec))
    out = plan(build_spec(spec)).to_dict()
    assert out["status"] == "optimal"
    return out


def test_a_backends_entry_the_gateway_refuses_is_named_with_its_line(tmp_path):
    backends = tmp_path / "backends.yaml"
    backends.write_text("backends:\n  a: {url: 'http://x/v1'}\n  b:\n    url: 'http://y/v1'\n    weight: 3\n")
    _tiny_plan(tmp_path)
    code, err = _invoke(
        [
            "plan",
            str(tmp_path / "spec.yaml"),
            "--routes",
            str(tmp_path / "r.yaml"),
            "--backends",
            str(backends),
        ]
    )
    assert code == 2  # (after the catalog's undated-row warning)
    assert err.splitlines()[-1] == f"polyfleet: {backends}:5: backends.b.weight: 'weight' comes from the plan"


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda p: p["workloads"][0]["demand"].update(requests_per_s="abc"),
         "workloads[0].demand.requests_per_s: expected a number, got 'abc'"),  # was ValueError in survival
        (lambda p: p["workloads"][0].update(api_fallbacks=None),
         "workloads[0].api_fallbacks: expected a list of api fallbacks, got None"),
        (lambda p: p["workloads"][0]["api_fallbacks"][0].update(usd_per_request=[]),
         "workloads[0].api_fallbacks[0].usd_per_request: expected a number, got []"),
        (lambda p: p["workloads"][0]["allocations"][0].update(offer=[]),
         "workloads[0].allocations[0].offer: expected an offer id, got []"),  # was 'unhashable type'
        (lambda p: p.update(policy="abc"), "policy: expected a mapping of the plan's policy, got 'abc'"),
    ],
)  # fmt: skip
def test_a_hand_edited_plan_names_the_field_and_its_line(tmp_path, edit, says):
    import json

    data = _tiny_plan(tmp_path)
    assert data["workloads"][0]["api_fallbacks"]  # the quota'd offer is a fallback
    edit(data)
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, indent=2))
    code, err = _invoke(["risk", str(path), "--scenarios", "10"])
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"polyfleet: {path}:") and f": {says}" in err, err


def test_a_skypilot_csv_that_is_not_text_names_the_file(tmp_path):
    """Was a UnicodeDecodeError traceback from the SkyPilot reader (import-skypilot, cheapest)."""
    import shutil

    folder = tmp_path / "sky"
    shutil.copytree(Path(__file__).parent / "data" / "skypilot", folder)
    bad = folder / "catalogs" / "v8" / "lambda" / "vms.csv"
    bad.write_bytes(b"Instance\xc0\xff,Price\n")
    for args in (["import-skypilot", str(folder)], ["cheapest", "H100:8", "--catalog", f"skypilot:{folder}"]):
        code, err = _invoke(["catalog", *args])
        assert (code, err) == (
            2,
            f"polyfleet: {bad}: not UTF-8 text (byte 8): expected a SkyPilot catalog CSV\n",
        )


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("total_usd", "abc", "a number"),  # was 'ValueError: could not convert string to float'
        ("purchases", "x", "a list of purchases"),  # was "AttributeError: 'str' object has no ..."
        ("capacity_shares", 5, "a mapping of group -> value -> share"),
    ],
)
def test_report_of_a_hand_edited_plan_names_the_field(tmp_path, key, value, what):
    import json

    data = _tiny_plan(tmp_path)
    data[key] = value
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data, indent=2))
    line = json.dumps(data, indent=2).splitlines().index(f'  "{key}": {json.dumps(value)},') + 1
    code, err = _invoke(["report", str(path), "--out", str(tmp_path / "r.html")])
    assert (code, err) == (
        2,
        f"polyfleet: {path}:{line}: {key}: expected {what}"
        f" (a plan written by `polyfleet plan --format json`), got {value!r}\n",
    )
    assert not (tmp_path / "r.html").exists()


def test_a_deadline_too_short_to_count_chips_is_bad_input():
    """Was an OverflowError traceback: chips = FLOPs / (rate x 5e-300 days) is infinite."""
    spec = build_spec(
        {
            "catalog": "bundled",
            "workloads": [
                {
                    "name": "ft",
                    "kind": "training",
                    "model": {"params_b": 1},
                    "tokens_b": 5,
                    "deadline_days": 5e-300,
                }
            ],
        }
    )
    with pytest.raises(SpecError) as info:
        plan(spec)
    assert info.value.render() == (
        "<spec>: workloads[0].deadline_days: 5e-300 days for 5B tokens needs more chips than can be "
        "counted: expected a deadline of a realistic length"
    )


def test_a_tiny_demand_keeps_its_peak_in_the_plan():
    """peak_requests_per_s was rounded to 6 decimals: 2e-7 req/s read back as 0 in risk and the gateway."""
    spec = build_spec(
        {
            "catalog": "bundled",
            "workloads": [
                {
                    "name": "svc",
                    "kind": "inference",
                    "model": "llama-3.1-8b",
                    "requests_per_s": 2e-7,
                    "input_tokens": 1200,
                    "output_tokens": 250,
                    "allow_api": False,
                },
            ],
        }
    )
    result = plan(spec)
    demand = result.to_dict()["workloads"][0]["demand"]
    assert demand["peak_requests_per_s"] == pytest.approx(2e-7)
