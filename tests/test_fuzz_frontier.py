"""``frontier`` and ``report --frontier`` on a monthly spec (session-8 fuzz): one line, exit 2,
before any plan is solved (was a KeyError traceback after the first plan)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

MONTHLY = """\
horizon_months: 2
periods: monthly
workloads:
  - {name: svc, kind: inference, model: llama-3.1-8b, requests_per_s: 1, input_tokens: 100, output_tokens: 10}
"""


def _invoke(args: list[str]) -> tuple[int, str]:
    """Exit code and stderr of ``polyfleet ARGS`` (exceptions propagate: a traceback fails)."""
    result = run_cli(*args)
    return result.exit_code, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["frontier", "{spec}", "--provider-caps", "0.5,1", "--survival", "0", "--scenarios", "10"],
        ["report", "{spec}", "--out", "{dir}/r.html", "--frontier"],
        ["report", "{plan}", "--spec", "{spec}", "--out", "{dir}/r.html", "--frontier"],
    ],
)
def test_a_monthly_spec_is_refused_naming_periods(tmp_path, monkeypatch, args):
    import sys

    import polyfleet.risk.frontier  # noqa: F401  (loads polyfleet.plan, whose plan() is patched)

    def no_plan(*args, **kwargs):
        raise AssertionError("planned before refusing")

    spec = tmp_path / "spec.yaml"
    spec.write_text(MONTHLY)
    plan = tmp_path / "plan.json"  # the shape report reads; never planned
    shape = {"status": "optimal", "horizon_months": 1, "total_usd": 1, "purchases": [], "workloads": [],
             "survival": {}, "capacity_shares": {}, "shares": {}, "policy": {}}  # fmt: skip
    plan.write_text(json.dumps(shape))
    monkeypatch.setattr(sys.modules["polyfleet.plan"], "plan", no_plan)
    monkeypatch.setattr(sys.modules["polyfleet.risk.frontier"], "plan", no_plan)
    code, err = _invoke([a.format(spec=spec, plan=plan, dir=tmp_path) for a in args])
    assert code == 2
    says = "periods: the frontier re-plans one period: expected periods: single"
    assert err.startswith(f"polyfleet: {spec}:2: {says}")
    assert err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()
