"""Retired api offers: never planned, and named with their successors when a spec asks for one."""

from __future__ import annotations

import json
from datetime import date

import pytest

from conftest import run_cli, write_spec
from polyfleet.catalog.io import Catalog, load_bundled
from polyfleet.catalog.lifecycle import retired_message, without_retired
from polyfleet.catalog.models import ApiOffer

DAY = date(2026, 12, 7)


def _api(id_: str, provider: str, model: str, retired: str = "", usd: float = 3.0) -> ApiOffer:
    return ApiOffer(
        id=id_, provider=provider, model=model, usd_per_mtok_in=usd, usd_per_mtok_out=5 * usd, retired=retired
    )


def test_retired_rows_are_set_aside_on_and_after_their_date():
    cat = Catalog(api_offers={"a": _api("a", "x", "m-1", retired="2026-12-07"), "b": _api("b", "y", "m-1")})
    assert set(without_retired(cat, date(2026, 12, 6)).api_offers) == {"a", "b"}
    after = without_retired(cat, DAY)
    assert set(after.api_offers) == {"b"} and set(after.retired_api_offers) == {"a"}
    assert after.api_models() == {"m-1"}


def test_message_names_date_hosts_and_successors_of_the_bundled_sonnet():
    cat = without_retired(load_bundled(), DAY)
    message = retired_message(cat, "claude-sonnet-4.5")
    assert message is not None
    assert message.startswith("claude-sonnet-4.5 retired 2026-11-30 on anthropic, azure")
    assert "still sold by aws, gcp" in message
    assert message.endswith("did you mean claude-sonnet-4.6 or claude-sonnet-5?")
    assert retired_message(cat, "claude-sonnet-4.6") is None


def test_audit_rows_fixed():
    cat = load_bundled()
    sonnet5 = cat.api_offers["anthropic-claude-sonnet-5-standard"]
    assert (sonnet5.usd_per_mtok_in, sonnet5.usd_per_mtok_out) == (2, 10)
    assert cat.api_offers["aws-claude-sonnet-5-global"].usd_per_mtok_out == 10
    retired = {a.id for a in cat.api_offers.values() if a.retired}
    assert retired == {
        "anthropic-claude-sonnet-4.5-standard",
        "azure-claude-sonnet-4.5-global-standard",
        "anthropic-claude-haiku-3.5-standard",
        "anthropic-claude-opus-4.1-standard",
        "azure-claude-opus-4.1-global-standard",
        "groq-llama-3.1-70b-versatile",
    }


def test_restating_a_retired_row_keeps_its_date():
    base = Catalog(api_offers={"a": _api("a", "x", "m-1", retired="2026-01-01")})
    merged = base.merged(Catalog(api_offers={"a": _api("a", "x", "m-1")}))
    assert merged.api_offers["a"].retired == "2026-01-01"


API_SPEC = """
workloads:
  - {name: chat, kind: api, model: MODEL, mtok_in_per_month: 100, mtok_out_per_month: 10}
"""


def test_spec_naming_a_model_retired_everywhere_is_bad_input(tmp_path):
    result = run_cli("plan", str(write_spec(tmp_path, API_SPEC.replace("MODEL", "claude-haiku-3.5"))))
    assert result.exit_code == 2
    line = result.stderr.strip()
    assert (
        "claude-haiku-3.5 retired 2026-02-19 on anthropic; did you mean claude-haiku-4.5 or claude-haiku-5.5?"
        in line
    )
    assert len(line.splitlines()) == 1 and "Traceback" not in line


def test_plan_never_buys_a_retired_row(tmp_path):
    # Sonnet 4.5 is still sold by Bedrock and Vertex at 3 / 15; the retired direct row is not bought
    result = run_cli(
        "plan", str(write_spec(tmp_path, API_SPEC.replace("MODEL", "claude-sonnet-4.5"))), "--format", "json"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    offers = {a["offer"] for a in data["workloads"][0]["allocations"]}
    assert offers and not offers & {
        "anthropic-claude-sonnet-4.5-standard",
        "azure-claude-sonnet-4.5-global-standard",
    }
    # 100 Mtok in x $3 + 10 Mtok out x $15 = $450 a month at the cheapest non-retired rows
    assert data["total_usd"] == pytest.approx(450, abs=0.01)
    # the spec named a model retired on its maker's own API: said on stderr, even --offline-ok
    quiet = run_cli("plan", str(tmp_path / "spec.yaml"), "--offline-ok")
    assert "warning: claude-sonnet-4.5 retired 2026-11-30 on anthropic, azure" in quiet.stderr


def test_inline_row_restating_a_retired_one_is_named(tmp_path):
    text = (
        API_SPEC.replace("MODEL", "claude-sonnet-4.6")
        + """
api_offers:
  - {id: anthropic-claude-haiku-3.5-standard, provider: anthropic, model: claude-haiku-3.5,
     usd_per_mtok_in: 0.8, usd_per_mtok_out: 4}
"""
    )
    result = run_cli("plan", str(write_spec(tmp_path, text)))
    assert result.exit_code == 2
    assert "api_offers" in result.stderr and "claude-haiku-3.5 retired 2026-02-19" in result.stderr
