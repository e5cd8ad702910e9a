"""Bad input: every class of mistake is one line on stderr and exit 2.

Each message must name ``file:LINE:`` (the YAML line with the problem), the field path
(``workloads[0].slo.tpot_ms``) and what was expected, and never show a traceback.  The
expected line is found by searching the spec text for a marker, so the tables below can be
read without counting lines.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

import polyfleet
from conftest import SVC, run_cli, write_spec
from polyfleet.errors import SpecError
from polyfleet.spec import load_spec

SVC_ITEM = SVC.removeprefix("workloads:\n")

H100_OFFER = """\
offers:
  - id: own-h100
    provider: own
    accelerator: nvidia-h100-sxm
    chips_per_instance: 8
    usd_per_chip_hour: 2
    available_instances: 2
"""

API = """\
workloads:
  - name: office
    kind: api
    model: claude-sonnet-4.5
    mtok_in_per_month: 10
    mtok_out_per_month: 2
"""


def line_of(text: str, marker: str) -> int:
    """1-based number of the first line of ``text`` containing ``marker``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if marker in line:
            return number
    raise AssertionError(f"marker {marker!r} not in spec text")


def one_line_error(result, exit_code: int = 2) -> str:
    """The single stderr line of a failed run (asserting exit code, no traceback, no stdout)."""
    assert result.exit_code == exit_code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def assert_points_at(message: str, path: Path, line: int, field: str, expected: tuple[str, ...]) -> None:
    assert f"{path}:{line}:" in message, message
    assert f" {field}:" in message, message
    for part in expected:
        assert part in message, (part, message)


# (id, spec text, line marker, field path, expected substrings)
LOAD_CASES = [
    (
        "malformed-yaml",
        "workloads:\n  - name: a\n    kind: inference\n   model: x\n",
        "   model: x",
        None,
        ("malformed YAML",),
    ),
    ("tab-in-yaml", "workloads:\n\t- name: a\n", "\t- name", None, ("malformed YAML", "'\\t'")),
    ("top-level-list", "- a\n- b\n", "- a", None, ("expected a mapping", "workloads")),
    ("top-level-scalar", "just a string\n", "just", None, ("expected a mapping",)),
    (
        "unknown-top-field",
        "horizon_month: 1\n" + SVC,
        "horizon_month:",
        "horizon_month",
        ("unknown field 'horizon_month'", "did you mean 'horizon_months'?"),
    ),
    (
        "unknown-workload-field",
        SVC + "    requests_per_sec: 3\n",
        "requests_per_sec",
        "workloads[0].requests_per_sec",
        ("unknown field 'requests_per_sec'", "did you mean 'requests_per_s'"),
    ),
    (
        "unknown-slo-field",
        SVC + "    slo: {tpot: 30}\n",
        "slo:",
        "workloads[0].slo.tpot",
        ("unknown field 'tpot'", "did you mean 'tpot_ms'?"),
    ),
    (
        "unknown-max-share-field",
        "policy:\n  max_share:\n    providr: 0.5\n" + SVC,
        "providr",
        "policy.max_share.providr",
        ("unknown field 'providr'", "did you mean 'provider'?"),
    ),
    (
        "unknown-offer-field",
        H100_OFFER + "    price_per_hour: 3\n" + SVC,
        "price_per_hour",
        "offers[0].price_per_hour",
        ("unknown field 'price_per_hour'", "did you mean 'usd_per_chip_hour'?"),
    ),
    (
        "unknown-accelerator",
        H100_OFFER.replace("nvidia-h100-sxm", "nvidia-h100") + SVC,
        "accelerator:",
        "offers[0].accelerator",
        ("unknown accelerator 'nvidia-h100'", "did you mean", "'nvidia-h100-sxm'"),
    ),
    (
        "unknown-model",
        SVC.replace("llama-3.1-8b", "llama-3.1-8"),
        "model:",
        "workloads[0].model",
        ("unknown model 'llama-3.1-8'", "did you mean 'llama-3.1-8b'"),
    ),
    (
        "unknown-throughput-key",
        SVC + "    throughput:\n      nvidia-h100:\n"
        "        chips_per_replica: 1\n        requests_per_s: 10\n",
        "      nvidia-h100:",
        "workloads[0].throughput.nvidia-h100",
        ("unknown accelerator or offer id 'nvidia-h100'", "'nvidia-h100-sxm'"),
    ),
    (
        "api-without-offer",
        API.replace("claude-sonnet-4.5", "llama-3.1-8"),
        "model:",
        "workloads[0].model",
        ("no api offer sells model 'llama-3.1-8'", "did you mean 'llama-3.1-8b'"),
    ),
    (
        "zero-rate",
        SVC.replace("requests_per_s: 5", "requests_per_s: 0"),
        "requests_per_s",
        "workloads[0].requests_per_s",
        ("greater than 0", "(got 0)"),
    ),
    (
        "negative-rate",
        SVC.replace("requests_per_s: 5", "requests_per_s: -5"),
        "requests_per_s",
        "workloads[0].requests_per_s",
        ("greater than 0", "(got -5)"),
    ),
    (
        "non-number-rate",
        SVC.replace("requests_per_s: 5", "requests_per_s: lots"),
        "requests_per_s",
        "workloads[0].requests_per_s",
        ("valid number", "'lots'"),
    ),
    (
        "zero-tokens",
        SVC.replace("input_tokens: 1000", "input_tokens: 0"),
        "input_tokens",
        "workloads[0].input_tokens",
        ("greater than 0", "(got 0)"),
    ),
    (
        "negative-price",
        H100_OFFER.replace("usd_per_chip_hour: 2", "usd_per_chip_hour: -1") + SVC,
        "usd_per_chip_hour",
        "offers[0].usd_per_chip_hour",
        ("greater than 0", "(got -1)"),
    ),
    (
        "negative-api-tokens",
        API.replace("mtok_in_per_month: 10", "mtok_in_per_month: -3"),
        "mtok_in",
        "workloads[0].mtok_in_per_month",
        ("greater than or equal to 0", "(got -3)"),
    ),
    (
        "negative-slo",
        SVC + "    slo:\n      tpot_ms: -1\n",
        "tpot_ms",
        "workloads[0].slo.tpot_ms",
        ("greater than 0", "(got -1)"),
    ),
    (
        "share-cap-zero",
        "policy:\n  max_share: {provider: 0}\n" + SVC,
        "max_share",
        "policy.max_share.provider",
        ("greater than 0", "(got 0)"),
    ),
    (
        "share-cap-above-one",
        "policy:\n  max_share:\n    vendor: 1.5\n" + SVC,
        "vendor:",
        "policy.max_share.vendor",
        ("less than or equal to 1", "(got 1.5)"),
    ),
    (
        "share-cap-negative",
        "policy:\n  max_share:\n    provider: -0.2\n" + SVC,
        "provider:",
        "policy.max_share.provider",
        ("greater than 0", "(got -0.2)"),
    ),
    (
        "survival-above-one",
        "policy:\n  survive_provider_loss: 1.2\n" + SVC,
        "survive_provider_loss",
        "policy.survive_provider_loss",
        ("less than or equal to 1", "(got 1.2)"),
    ),
    (
        "negative-budget",
        "policy:\n  budget_usd: -1\n" + SVC,
        "budget_usd",
        "policy.budget_usd",
        ("greater than 0",),
    ),
    (
        "zero-horizon",
        "horizon_months: 0\n" + SVC,
        "horizon_months",
        "horizon_months",
        ("greater than 0",),
    ),
    (
        "missing-required-field",
        SVC.replace("    input_tokens: 1000\n", ""),
        "- name: svc",
        "workloads[0].input_tokens",
        ("required field is missing",),
    ),
    (
        "missing-workloads",
        "horizon_months: 1\n",
        "horizon_months",
        "workloads",
        ("required field is missing",),
    ),
    ("empty-workloads", "workloads: []\n", "workloads", "workloads", ("at least 1 item",)),
    (
        "wrong-kind",
        SVC.replace("kind: inference", "kind: serving"),
        "kind:",
        "workloads[0].kind",
        ("expected kind: inference, training or api",),
    ),
    (
        "no-kind",
        "workloads:\n  - name: a\n    model: x\n",
        "- name: a",
        "workloads[0].kind",
        ("expected kind",),
    ),
    (
        "wrong-stack",
        SVC + "    stacks: [cuda, metal]\n",
        "stacks",
        "workloads[0].stacks[1]",
        ("'cuda'", "'maia'", "(got 'metal')"),
    ),
    (
        "bad-catalog-word",
        "catalog: bundeled\n" + SVC,
        "catalog:",
        "catalog",
        ("'bundled' or 'none'", "(got 'bundeled')"),
    ),
    (
        "duplicate-workload-name",
        SVC + SVC_ITEM,
        "- name: svc",
        "workloads[1].name",
        ("duplicate name 'svc'",),
    ),
    (
        "missing-catalog-file",
        "catalog: [bundled, missing.yaml]\n" + SVC,
        "catalog:",
        "catalog[1]",
        ("catalog file not found", "missing.yaml"),
    ),
]
# duplicate-workload-name: the second "- name: svc" is the one at fault
_DUPLICATE_LINE = 8


def _expected_line(case_id: str, text: str, marker: str) -> int:
    return _DUPLICATE_LINE if case_id == "duplicate-workload-name" else line_of(text, marker)


@pytest.mark.parametrize(
    ("text", "marker", "field", "expected"), [pytest.param(*c[1:], id=c[0]) for c in LOAD_CASES]
)
def test_cli_reports_bad_spec_on_one_line(tmp_path, request, text, marker, field, expected):
    path = write_spec(tmp_path, text)
    line = _expected_line(request.node.callspec.id, text, marker)
    message = one_line_error(run_cli("plan", path))
    assert message.startswith("polyfleet: ")
    if field is None:
        assert f"{path}:{line}: " in message, message
        for part in expected:
            assert part in message, (part, message)
    else:
        assert_points_at(message, path, line, field, expected)


@pytest.mark.parametrize(
    ("text", "marker", "field", "expected"), [pytest.param(*c[1:], id=c[0]) for c in LOAD_CASES]
)
def test_load_spec_raises_spec_error_with_location(tmp_path, request, text, marker, field, expected):
    path = write_spec(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    err = info.value
    assert isinstance(err, polyfleet.PolyfleetError) and isinstance(err, ValueError)
    assert err.file == str(path)
    assert err.line == _expected_line(request.node.callspec.id, text, marker)
    assert err.path == (field or "")
    assert "\n" not in str(err)
    assert str(err) == err.render()


def test_duplicate_line_constant_matches_text():
    assert (SVC + SVC_ITEM).splitlines()[_DUPLICATE_LINE - 1] == "  - name: svc"


# --- problems found after loading, when candidates are built ------------------------------

PLAN_CASES = [
    (
        "offer-no-workload-can-use",
        "offers:\n  - id: own-tpu\n    provider: own\n    accelerator: google-tpu-v6e\n"
        "    chips_per_instance: 8\n    usd_per_chip_hour: 1\n    available_instances: 2\n"
        + SVC
        + "    stacks: [cuda]\n",
        "- id: own-tpu",
        "offers[0]",
        ("no workload can use offer 'own-tpu'", "google-tpu-v6e", "stack xla"),
    ),
    (
        "no-offer-for-stack",
        SVC + "    stacks: [maia]\n    allow_api: false\n",
        "- name: svc",
        "workloads[0]",
        ("no offer can host workload 'svc'", "by stack"),
    ),
]


@pytest.mark.parametrize(
    ("text", "marker", "field", "expected"), [pytest.param(*c[1:], id=c[0]) for c in PLAN_CASES]
)
def test_unusable_offer_or_unhostable_workload_is_bad_input(tmp_path, text, marker, field, expected):
    path = write_spec(tmp_path, text)
    message = one_line_error(run_cli("plan", path))
    assert_points_at(message, path, line_of(text, marker), field, expected)
    # loading alone succeeds: the problem shows when candidates are built
    spec = load_spec(path)
    with pytest.raises(SpecError) as info:
        polyfleet.plan(spec)
    assert info.value.path == field
    assert info.value.line == line_of(text, marker)


# --- an SLO, deadline or model no offer can meet: infeasible (exit 1), not bad input --------

UNPLACEABLE_CASES = [
    (
        "model-too-big",
        SVC.replace(
            "model: llama-3.1-8b",
            "model: {name: huge, params_b: 3000, layers: 200, kv_heads: 16, head_dim: 128}",
        )
        + "    stacks: [cuda]\n",
        "- name: svc",
        "workloads[0]",
        ("no offer can host workload 'svc'", "by memory", "GB"),
    ),
    (
        "slo-too-tight",
        SVC + "    slo: {tpot_ms: 0.01}\n    allow_api: false\n",
        "- name: svc",
        "workloads[0]",
        ("no offer can host workload 'svc'", "by slo", "tpot 0.01 ms"),
    ),
    (
        "training-needs-too-many-chips",
        "workloads:\n  - name: t\n    kind: training\n    model: llama-3.1-405b\n"
        "    tokens_b: 100000\n    deadline_days: 1\n",
        "- name: t",
        "workloads[0]",
        ("no offer can host workload 't'", "by capacity"),
    ),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(c[1], c[4], id=c[0]) for c in UNPLACEABLE_CASES])
def test_unreachable_slo_deadline_or_memory_is_infeasible_naming_the_closest_offer(tmp_path, text, expected):
    path = write_spec(tmp_path, text)
    result = run_cli("plan", path)
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    for part in (*expected, "closest: "):
        assert part in result.stderr
    plan = polyfleet.plan(load_spec(path))
    assert plan.status == "infeasible" and plan.infeasibility.subject in ("svc", "t")


# --- files ---------------------------------------------------------------------------------


def test_missing_spec_file(tmp_path):
    path = tmp_path / "nope.yaml"
    message = one_line_error(run_cli("plan", path))
    assert str(path) in message and "cannot read spec" in message
    with pytest.raises(SpecError, match="cannot read spec"):
        load_spec(path)


def test_catalog_entry_that_is_a_directory(tmp_path):
    (tmp_path / "extra").mkdir()
    path = write_spec(tmp_path, "catalog: [bundled, extra]\n" + SVC)
    message = one_line_error(run_cli("plan", path))
    assert "extra" in message and "cannot read catalog file" in message


def test_malformed_extra_catalog_is_one_line_with_its_line(tmp_path):
    (tmp_path / "extra.yaml").write_text("accelerators:\n  - id: x\n   vendor: y\n", encoding="utf-8")
    path = write_spec(tmp_path, "catalog: [bundled, extra.yaml]\n" + SVC)
    message = one_line_error(run_cli("plan", path))
    assert f"{tmp_path / 'extra.yaml'}:3:" in message and "malformed YAML" in message


def test_non_utf8_spec_is_bad_input(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"workloads:\n  - name: \xff\xfe\n")
    message = one_line_error(run_cli("plan", path))
    assert str(path) in message


def test_api_workload_with_no_tokens(tmp_path):
    text = API.replace("mtok_in_per_month: 10", "mtok_in_per_month: 0").replace(
        "mtok_out_per_month: 2", "mtok_out_per_month: 0"
    )
    path = write_spec(tmp_path, text)
    message = one_line_error(run_cli("plan", path))
    assert "needs mtok_in_per_month or mtok_out_per_month > 0" in message
    assert f"{path}:2: workloads[0]:" in message


def test_api_workload_with_no_tokens_is_still_bad_input(tmp_path):
    """The part of the case above that holds today: exit 2, one line, the right line number."""
    text = API.replace("mtok_in_per_month: 10", "mtok_in_per_month: 0").replace(
        "mtok_out_per_month: 2", "mtok_out_per_month: 0"
    )
    path = write_spec(tmp_path, text)
    message = one_line_error(run_cli("plan", path))
    assert f"{path}:2: workloads[0]" in message
    assert "mtok_in_per_month or mtok_out_per_month > 0" in message


def test_unclosed_bracket_points_at_its_line(tmp_path):
    path = write_spec(tmp_path, "workloads:\n  - name: a\n    kind: [inference\n")
    message = one_line_error(run_cli("plan", path))
    assert f"{path}:3:" in message


def test_infinite_rate_is_bad_input(tmp_path):
    path = write_spec(tmp_path, SVC.replace("requests_per_s: 5", "requests_per_s: .inf"))
    message = one_line_error(run_cli("plan", path))
    assert "workloads[0].requests_per_s" in message


def test_duplicate_yaml_key_is_bad_input(tmp_path):
    text = SVC + "    requests_per_s: 6\n"
    path = write_spec(tmp_path, text)
    message = one_line_error(run_cli("plan", path))
    assert f"{path}:8:" in message and "requests_per_s" in message


# --- nothing already written is lost --------------------------------------------------------


def test_out_file_untouched_when_spec_is_bad(tmp_path):
    out = tmp_path / "plan.json"
    out.write_text('{"previous": "plan"}\n', encoding="utf-8")
    path = write_spec(tmp_path, SVC.replace("requests_per_s: 5", "requests_per_s: -5"))
    message = one_line_error(run_cli("plan", path, "--format", "json", "--out", out))
    assert "workloads[0].requests_per_s" in message
    assert out.read_text(encoding="utf-8") == '{"previous": "plan"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plan.json", "spec.yaml"]  # no temp left


def test_out_file_untouched_when_no_offer_can_host(tmp_path):
    out = tmp_path / "plan.yaml"
    out.write_text("keep: me\n", encoding="utf-8")
    path = write_spec(tmp_path, SVC + "    stacks: [maia]\n    allow_api: false\n")
    one_line_error(run_cli("plan", path, "--format", "yaml", "--out", out))
    assert out.read_text(encoding="utf-8") == "keep: me\n"


def test_spec_text_helper_dedents(tmp_path):
    path = write_spec(tmp_path, textwrap.indent(SVC, "    "))
    assert load_spec(path).workloads[0].name == "svc"
