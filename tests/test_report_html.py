"""``polyfleet report``: every figure in the page equals the plan's, checked by parsing the HTML.

The spec is inline (``catalog: none``, measured throughput), so the plan can be redone by
hand.  A month is 730 h = 2,628,000 s; chat needs 4 requests/s (peak = mean), each
replica is 1 chip serving 1 request/s, 100 input + 100 output tokens per request.

- offers: ``a1`` (provider pa, chip acc-a of vendor va, $1/chip-h = $730/month),
  ``c1`` (pc, acc-a, $1.5 = $1,095), ``b1`` (pb, acc-b of vendor vb, $2 = $1,460);
- survival 0.5: without any one provider chat keeps >= 2 requests/s, so the cheapest plan
  is 2 replicas on a1 ($1,460) + 2 on c1 ($2,190) = $3,650, both survival rows at 50%;
- office buys 10 Mtok in at $1 + 5 Mtok out at $2 from api-x at pa: $20; total $3,670;
- best single provider: pa alone (survival dropped), 4 x $730 + $20 = $2,940, so the plan
  costs $730 a month more; pc alone is 4 x $1,095 + api-y's 10 x $2 + 5 x $4 = $4,420; pb
  sells no api tokens; best single vendor: va (a1 and c1) = the plan itself, $3,670,
  savings $0; vb (b1 only) cannot survive losing pb;
- $/Mtok: chat serves 4 x 200 x 2,628,000 = 2,102.4 Mtok a month, half on each offer:
  a1 $1,460 / 1,051.2 = $1.3889, c1 $2,190 / 1,051.2 = $2.0833; office $20 / 15 = $1.3333.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from polyfleet.cli import main
from polyfleet.plan import plan
from polyfleet.report.html import cell_text, collect, render
from polyfleet.report.html_runs import mark_dominated
from polyfleet.spec import build_spec

ACC = {"hbm_gb": 80, "hbm_tbps": 3, "bf16_tflops": 1000, "stack": "cuda"}
CARD = {"name": "m", "params_b": 1, "layers": 2, "kv_heads": 1, "head_dim": 8}


def offer(offer_id: str, provider: str, accelerator: str, price: float) -> dict[str, Any]:
    return {
        "id": offer_id,
        "provider": provider,
        "accelerator": accelerator,
        "chips_per_instance": 1,
        "usd_per_chip_hour": price,
        "available_instances": 100,
    }


def spec_data(**extra: Any) -> dict[str, Any]:
    return {
        "catalog": "none",
        "accelerators": [{"id": "acc-a", "vendor": "va", **ACC}, {"id": "acc-b", "vendor": "vb", **ACC}],
        "offers": [
            offer("a1", "pa", "acc-a", 1.0),
            offer("b1", "pb", "acc-b", 2.0),
            offer("c1", "pc", "acc-a", 1.5),
        ],
        "api_offers": [
            {"id": "api-x", "provider": "pa", "model": "m", "usd_per_mtok_in": 1, "usd_per_mtok_out": 2},
            {"id": "api-y", "provider": "pc", "model": "m", "usd_per_mtok_in": 2, "usd_per_mtok_out": 4},
        ],
        "models": [CARD],
        "policy": {"survive_provider_loss": 0.5},
        "workloads": [
            {
                "name": "chat",
                "kind": "inference",
                "model": "m",
                "requests_per_s": 4,
                "input_tokens": 100,
                "output_tokens": 100,
                "allow_api": False,
                "throughput": {a: {"chips_per_replica": 1, "requests_per_s": 1} for a in ("acc-a", "acc-b")},
            },
            {"name": "office", "kind": "api", "model": "m", "mtok_in_per_month": 10, "mtok_out_per_month": 5},
        ],
        **extra,
    }


class _Page(HTMLParser):
    """The allocations table's cells and the text of elements with an id."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, tuple[str, str]]] = []
        self.headers: list[str] = []
        self._cell: tuple[str, str] | None = None
        self._text: list[str] = []
        self.ids: dict[str, str] = {}
        self._open_ids: list[tuple[str, str, list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr":
            self.rows.append({})
        if tag == "th" and a.get("data-key"):
            self.headers.append(a["data-key"] or "")
        if tag == "td" and a.get("data-key"):
            self._cell = (a["data-key"] or "", a.get("data-value") or "")
            self._text = []
        if a.get("id"):
            self._open_ids.append((a["id"] or "", tag, []))

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            key, value = self._cell
            self.rows[-1][key] = (value, "".join(self._text))
            self._cell = None
        if self._open_ids and self._open_ids[-1][1] == tag:
            element_id, _, text = self._open_ids.pop()
            self.ids[element_id] = "".join(text)

    def handle_data(self, text: str) -> None:
        if self._cell is not None:
            self._text.append(text)
        for _, _, buffer in self._open_ids:
            buffer.append(text)


def embedded(page: str, element_id: str) -> Any:
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)
    assert match, element_id
    return json.loads(match.group(1).replace("<\\/", "</"))


@pytest.fixture(scope="module")
def built() -> tuple[dict[str, Any], dict[str, Any], str]:
    spec = build_spec(spec_data())
    plan_dict = plan(spec).to_dict()
    figures = collect(plan_dict, spec, risk_scenarios=400, seed=3)
    return plan_dict, figures, render(figures, "test report")


def test_plan_is_the_hand_computed_one(built: tuple[dict, dict, str]) -> None:
    plan_dict, _, _ = built
    assert plan_dict["total_usd"] == pytest.approx(3670.0)
    by_offer = {a["offer"]: a for w in plan_dict["workloads"] for a in w["allocations"]}
    assert by_offer["a1"]["replicas"] == 2 and by_offer["c1"]["replicas"] == 2
    assert "b1" not in by_offer


def test_headline_savings_and_binding(built: tuple[dict, dict, str]) -> None:
    _, figures, page = built
    head = embedded(page, "polyfleet-report-data")["headline"]
    assert head == figures["headline"]
    assert head["usd_per_month"] == pytest.approx(3670.0)
    assert head["single_provider"]["best"] == "pa"
    assert head["single_provider"]["total_usd"] == pytest.approx(2940.0)
    assert head["single_provider"]["savings_usd_per_month"] == pytest.approx(-730.0)
    assert head["single_vendor"]["best"] == "va"
    assert head["single_vendor"]["savings_usd_per_month"] == pytest.approx(0.0)
    tried = figures["baselines"]["provider"]["tried"]
    assert not tried["pb"]["feasible"]  # sells no api tokens
    assert tried["pc"]["total_usd"] == pytest.approx(4 * 1095 + 10 * 2 + 5 * 4)
    assert not figures["baselines"]["vendor"]["tried"]["vb"]["feasible"]  # pb alone cannot survive pb
    parsed = _Page()
    parsed.feed(page)
    assert parsed.ids["usd-per-month"] == "$3,670"
    assert "costs $730 a month more" in parsed.ids["vs-provider"]
    assert "saves $0 a month" in parsed.ids["vs-vendor"]
    binding = parsed.ids["binding"]
    assert "losing pa leaves chat 50.0% of its peak" in binding
    assert "losing pc leaves chat 50.0% of its peak" in binding


def test_every_table_cell_equals_the_plan(built: tuple[dict, dict, str]) -> None:
    plan_dict, figures, page = built
    parsed = _Page()
    parsed.feed(page)
    cells = [r for r in parsed.rows if r]
    expected = [(w, a) for w in plan_dict["workloads"] for a in w["allocations"]]
    assert len(cells) == len(expected) == len(figures["allocations"])
    mtok = {"a1": 1051.2, "c1": 1051.2, "api-x": 15.0}
    for row, (w, a) in zip(cells, expected, strict=True):
        assert row["service"][1] == w["name"]
        assert row["offer"][1] == a["offer"]
        assert row["provider"][1] == a["provider"]
        assert row["chips"][1] == f"{a['chips']:,d}"
        assert row["usd_per_month"][1] == f"${a['usd'] / plan_dict['horizon_months']:,.2f}"
        assert float(row["usd_per_month"][0]) == pytest.approx(a["usd"])
        assert float(row["usd_per_mtok"][0]) == pytest.approx(a["usd"] / mtok[a["offer"]], rel=1e-4)
        assert row["usd_per_mtok"][1] == cell_text("usd_per_mtok", round(a["usd"] / mtok[a["offer"]], 4))
    by_offer = {r["offer"][1]: r for r in cells}
    assert by_offer["a1"]["usd_per_mtok"][1] == "$1.3889"
    assert by_offer["c1"]["usd_per_mtok"][1] == "$2.0833"
    assert by_offer["api-x"]["usd_per_mtok"][1] == "$1.3333"
    assert by_offer["a1"]["instances"][1] == "2"


def test_every_chart_figure_equals_the_plan(built: tuple[dict, dict, str]) -> None:
    plan_dict, _, page = built
    data = embedded(page, "polyfleet-report-data")
    spend = {(r["group"], r["value"]): r for r in data["spend"]}
    for group in ("provider", "vendor"):
        assert {v for g, v in spend if g == group} == set(plan_dict["shares"][group])
        for value, share in plan_dict["shares"][group].items():
            assert spend[(group, value)]["share"] == share
            assert spend[(group, value)]["usd"] == pytest.approx(share * plan_dict["total_usd"], abs=0.01)
    assert spend[("provider", "pa")]["usd"] == pytest.approx(1460.0 + 20.0)
    for group in ("provider", "vendor"):
        for value, share in plan_dict["capacity_shares"][group].items():
            assert spend[(group, value)]["peak_share"] == share
    assert spend[("provider", "pa")]["peak_share"] == 1.0  # all of office's tokens
    assert spend[("provider", "pa")]["peak_service"] == "office"
    assert spend[("provider", "pc")]["peak_share"] == 0.5  # 2 of chat's 4 requests/s
    survival = {(r["service"], r["lost_provider"]): r["served_fraction"] for r in data["survival"]["rows"]}
    assert survival[("chat", "pa")] == pytest.approx(0.5)
    assert survival[("chat", "pc")] == pytest.approx(0.5)
    assert data["survival"]["floor"] == 0.5
    for provider, worst in plan_dict["survival"].items():
        assert min(v for (_, p), v in survival.items() if p == provider) == pytest.approx(worst)
    charts = embedded(page, "polyfleet-charts")
    assert set(charts) == {"spend", "survival", "risk", "accelerators"}
    values = json.dumps(charts["survival"])
    assert '"served_fraction": 0.5' in values or '"served_fraction":0.5' in values


def test_risk_figures_match_a_monte_carlo_of_the_plan(built: tuple[dict, dict, str]) -> None:
    import numpy as np

    from polyfleet.risk import RiskAssumptions, fleet_from_plan, monte_carlo

    plan_dict, _, page = built
    risk = embedded(page, "polyfleet-report-data")["risk"]
    cost = monte_carlo(fleet_from_plan(plan_dict), RiskAssumptions(), 400, 3).cost_usd
    assert risk["scenarios"] == 400 and sum(b["count"] for b in risk["histogram"]) == 400
    assert risk["p50_usd"] == pytest.approx(float(np.quantile(cost, 0.5)), abs=0.01)
    assert risk["p95_usd"] == pytest.approx(float(np.quantile(cost, 0.95)), abs=0.01)
    assert risk["cvar95_usd"] == pytest.approx(float(np.sort(cost)[380:].mean()), abs=0.01)  # worst 20 of 400
    assert risk["p50_usd"] <= risk["p95_usd"] <= risk["cvar95_usd"]
    assert risk["worst"][0]["cost_usd"] == pytest.approx(float(cost.max()), abs=0.01)
    assert f"{risk['p95_usd']:,.0f}" in page


def test_dominated_points_by_hand() -> None:
    points = [
        {"max_provider_share": 0.3, "total_usd": 120.0},
        {"max_provider_share": 0.5, "total_usd": 100.0},
        {"max_provider_share": 0.5, "total_usd": 110.0},  # same share as the 100 point, dearer
        {"max_provider_share": 0.7, "total_usd": 100.0},  # dearer share for the same cost
        {"max_provider_share": 0.9, "total_usd": 90.0},
    ]
    assert [p["dominated"] for p in mark_dominated(points)] == [False, False, True, True, False]
    # within a 1% gap $100 and $100.9 are one cost: 0.5 at $100.9 is dominated by 0.3 at $100,
    # and 0.3 at $100.9 is not dominated by 0.5 at $100 (the cheaper one's share is larger)
    near = [
        {"max_provider_share": 0.3, "total_usd": 100.0},
        {"max_provider_share": 0.5, "total_usd": 100.9},
        {"max_provider_share": 0.7, "total_usd": 98.0},  # 2% cheaper: beyond the gap
    ]
    assert [p["dominated"] for p in mark_dominated(near, rel_tol=0.01)] == [False, True, False]
    assert [p["dominated"] for p in mark_dominated(near)] == [False, True, False]
    tie = [{"max_provider_share": 0.3, "total_usd": 100.9}, {"max_provider_share": 0.5, "total_usd": 100.0}]
    assert [p["dominated"] for p in mark_dominated(tie, rel_tol=0.01)] == [False, True]
    assert [p["dominated"] for p in mark_dominated(tie)] == [False, False]


def test_frontier_points_by_hand() -> None:
    """Cap 50% of any service's peak per provider: chat stays 2 + 2 replicas, office splits
    api-x / api-y 50/50, $10 + $20 = $30 instead of $20: $3,680 at a largest share of 50%.
    Cap 70%: 0.7 x $20 + 0.3 x $40 = $26, so $3,676 at 70%.  The plan (no cap) buys all of
    office at pa: $3,670 at 100%.  None dominates another."""
    from polyfleet.report.html_runs import frontier_figures

    spec = build_spec(spec_data())
    plan_dict = plan(spec).to_dict()
    front = frontier_figures(spec, plan_dict, [0.5, 0.7, 1.0], scenarios=20)
    by_label = {p["label"]: p for p in front["points"]}
    assert by_label["cap 50%"]["total_usd"] == pytest.approx(3680.0)
    assert by_label["cap 50%"]["max_provider_share"] == pytest.approx(0.5)
    assert by_label["cap 70%"]["total_usd"] == pytest.approx(3676.0)  # 0.7 x $20 + 0.3 x $40 = $26
    assert by_label["cap 70%"]["max_provider_share"] == pytest.approx(0.7)
    assert by_label["this plan"]["chosen"] and by_label["this plan"]["max_provider_share"] == 1.0
    assert by_label["cap 100%"]["total_usd"] == pytest.approx(3670.0)
    assert not any(p["dominated"] for p in front["points"])
    assert front["infeasible_caps"] == []


def test_monthly_capacity_by_provider(tmp_path: Path) -> None:
    """--monthly on a 2-month spec: chips per provider each month are the monthly plan's purchases."""
    spec = build_spec(spec_data(horizon_months=2, periods="monthly"))
    plan_dict = plan(spec).to_dict()
    figures = collect(plan_dict, None)
    expected = {}
    for t, month in enumerate(plan_dict["months"]):
        for p in month["purchases"]:
            if p.get("chips"):
                expected[(t, p["provider"])] = expected.get((t, p["provider"]), 0) + p["chips"]
    assert {(r["month"], r["provider"]): r["chips"] for r in figures["monthly"]} == expected
    assert expected == {(0, "pa"): 2, (0, "pc"): 2, (1, "pa"): 2, (1, "pc"): 2}


def _write_spec(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec_data(**extra)))
    return path


def test_cli_plan_file_and_errors(tmp_path: Path) -> None:
    spec = build_spec(spec_data())
    plan_path = tmp_path / "plan.json"
    plan_path.write_text(json.dumps(plan(spec).to_dict()))
    out = tmp_path / "r.html"
    runner = CliRunner()
    result = runner.invoke(main, ["report", str(plan_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert len(page.encode()) < 5_000_000
    assert not re.search(r'(src|href)="https?:', page)  # nothing to fetch at view time
    assert "needs the spec" in page

    truncated = tmp_path / "bad.json"
    truncated.write_text(plan_path.read_text()[:200])
    out.write_text("keep me")
    result = runner.invoke(main, ["report", str(truncated), "--out", str(out)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert out.read_text() == "keep me"

    result = runner.invoke(main, ["report", str(plan_path), "--out", str(out), "--frontier"])
    assert result.exit_code == 2 and "--frontier needs the spec" in result.output

    broken = json.loads(plan_path.read_text())
    del broken["workloads"][0]["allocations"][0]["provider"]
    plan_path.write_text(json.dumps(broken))
    result = runner.invoke(main, ["report", str(plan_path), "--out", str(out)])
    assert result.exit_code == 2 and "provider" in result.output and "Traceback" not in result.output
    assert out.read_text() == "keep me"


def test_cli_infeasible_spec_exits_1_naming_the_workload(tmp_path: Path) -> None:
    path = _write_spec(tmp_path, policy={"survive_provider_loss": 0.5, "budget_usd": 100})
    out = tmp_path / "r.html"
    result = CliRunner().invoke(main, ["report", str(path), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "budget" in result.output
    assert not out.exists()


def test_cli_monthly_flag(tmp_path: Path) -> None:
    """--monthly re-plans a 2-month single-period spec month by month: 2 + 2 chips each month."""
    out = tmp_path / "r.html"
    runner = CliRunner()
    result = runner.invoke(
        main, ["report", str(_write_spec(tmp_path, horizon_months=2)), "--out", str(out), "--monthly"]
    )
    assert result.exit_code == 0, result.output
    rows = embedded(out.read_text(), "polyfleet-report-data")["monthly"]
    assert {(r["month"], r["provider"]): r["chips"] for r in rows} == {
        (0, "pa"): 2,
        (0, "pc"): 2,
        (1, "pa"): 2,
        (1, "pc"): 2,
    }
    result = runner.invoke(main, ["report", str(_write_spec(tmp_path)), "--out", str(out), "--monthly"])
    assert result.exit_code == 2 and "--monthly needs" in result.output


def test_cli_plan_with_odd_values_is_one_line(tmp_path: Path) -> None:
    data = plan(build_spec(spec_data())).to_dict()
    data["shares"]["provider"]["pa"] = "lots"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["report", str(path), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2, result.output
    assert "not a plan written by" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r.html").exists()
    data = plan(build_spec(spec_data())).to_dict()
    data["workloads"][0]["api_fallbacks"] = 3  # read by the plan reader before the report
    path.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["report", str(path), "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 2, result.output
    assert "plan.json:1: workloads[0].api_fallbacks: expected a list of api fallbacks, got 3" in result.output


def test_binding_constraints_in_words() -> None:
    """A hand-made plan: pa at the 60% spend cap, pb at the 50% capacity cap of chat, chat
    half on spot under a 50% spot limit, the $1,000 budget spent; pc has slack everywhere."""
    from polyfleet.report.html_data import binding_constraints

    def alloc(provider: str, share: float, term: str) -> dict[str, Any]:
        return {
            "offer": f"{provider}-{term}",
            "provider": provider,
            "vendor": "va",
            "share": share,
            "term": term,
        }

    plan_dict = {
        "status": "optimal",
        "total_usd": 1000.0,
        "horizon_months": 1.0,
        "shares": {"provider": {"pa": 0.6, "pb": 0.3, "pc": 0.1}, "vendor": {"va": 1.0}},
        "capacity_shares": {"provider": {"pa": 0.25, "pb": 0.5, "pc": 0.25}, "vendor": {"va": 1.0}},
        "policy": {
            "max_share": {"provider": 0.5, "vendor": None},
            "max_spend_share": {"provider": 0.6, "vendor": None},
            "survive_provider_loss": 0.0,
            "budget_usd": 1000.0,
            "max_spot_share": 0.5,
        },
        "workloads": [
            {
                "name": "chat",
                "kind": "inference",
                "allocations": [
                    alloc("pa", 0.25, "spot"),
                    alloc("pb", 0.5, "on-demand"),
                    alloc("pc", 0.25, "spot"),
                ],
            }
        ],
    }
    assert binding_constraints(plan_dict) == [
        "provider spend cap: pa takes 60.0% of spend, the most the 60.0% cap allows",
        "provider cap: pb serves 50.0% of chat's peak, the most the 50.0% cap allows",
        "budget: the plan spends the whole $1,000",
        "spot: chat has 50.0% of its peak on spot, the 50.0% limit",
    ]


def _deal_doc() -> dict[str, Any]:
    """A 12-month spec with two deals and three named scenarios (as in tests/test_deals.py)."""
    acc = {"id": "acc-a", "vendor": "va", **ACC}

    def on(oid: str, provider: str, price: float) -> dict[str, Any]:
        return offer(oid, provider, "acc-a", price) | {"available_instances": 50}

    chat = {"name": "chat", "kind": "inference", "model": {"name": "m", "params_b": 1}, "requests_per_s": 4.0,
            "input_tokens": 100, "output_tokens": 100, "growth_per_month": 0.05,
            "throughput": {"acc-a": {"chips_per_replica": 1, "requests_per_s": 1.0}}}  # fmt: skip
    deals = [
        {"kind": "spend", "name": "big-commit", "provider": "big", "discount": 0.3,
         "usd_per_year": [4000.0, 8000.0], "years": 1},
        {"kind": "reservation", "name": "block", "offer": "rival", "instances": [2, 4],
         "usd_per_instance_month": 900.0, "months": 6},
    ]  # fmt: skip
    unc = {"scenarios": [
        {"name": "base", "probability": 0.5},
        {"name": "slow", "probability": 0.25, "demand_growth_per_year": -0.5},
        {"name": "fast", "probability": 0.25, "demand_growth_per_year": 1.0},
    ], "gap": 1e-7}  # fmt: skip
    return {"horizon_months": 12, "periods": "monthly", "catalog": "none", "accelerators": [acc],
            "offers": [on("list", "big", 1.6), on("rival", "rival", 2.0)], "workloads": [chat],
            "deals": deals, "uncertainty": unc}  # fmt: skip


class _DealPage(HTMLParser):
    """Cells (``data-deal-key``: (data-value, text)) of the deal tables, and the deal spans' values."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[dict[str, tuple[str, str]]]] = {}
        self.spans: dict[str, tuple[str, list[str]]] = {}
        self._table = ""
        self._cell: tuple[str, str] | None = None
        self._span = ""
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = []
        if tag == "tr" and self._table and self._cell is None:
            self.tables[self._table].append({})
        if tag == "td" and a.get("data-deal-key"):
            self._cell, self._text = (a["data-deal-key"] or "", a.get("data-value") or ""), []
        if tag == "span" and (a.get("id") or "").startswith("deal-"):
            self._span = a["id"] or ""
            self.spans[self._span] = (a.get("data-value") or "", [])

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.tables[self._table][-1][self._cell[0]] = (self._cell[1], "".join(self._text))
            self._cell = None
        if tag == "span":
            self._span = ""
        if tag == "table":
            self._table = ""

    def handle_data(self, text: str) -> None:
        if self._cell is not None:
            self._text.append(text)
        if self._span:
            self.spans[self._span][1].append(text)


def test_cli_deal_section_equals_polyfleet_deal_json(tmp_path: Path) -> None:
    """--deal: every figure of "Should we sign?" (embedded data, table cells, chart, VSS, EVPI,
    unused commitment) equals `polyfleet deal --format json` on the same spec; no deals: exit 2."""
    from polyfleet.report.html_deal import usd

    path = tmp_path / "deal.yaml"
    path.write_text(yaml.safe_dump(_deal_doc(), sort_keys=False))
    runner = CliRunner()
    result = runner.invoke(main, ["deal", str(path), "--format", "json", "--out", str(tmp_path / "d.json")])
    assert result.exit_code == 0, result.output
    want = json.loads((tmp_path / "d.json").read_text())
    out = tmp_path / "r.html"
    result = runner.invoke(main, ["report", str(path), "--out", str(out), "--deal"])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    got = embedded(page, "polyfleet-report-data")["deal"]
    for volatile in ("seconds", "engine"):
        want.pop(volatile, None)
        got.pop(volatile, None)
    assert got == want
    assert want["recommended"]["deals"], "the instance should sign something"
    assert "Should we sign?" in page and want["recommended"]["label"] in page
    for d in want["recommended"]["deals"]:
        size = usd(d["usd_per_year"]) + " a year" if "usd_per_year" in d else f"{d['instances']:g} instances"
        assert f"{d['deal']} ({d['kind']}): {size}" in page

    parsed = _DealPage()
    parsed.feed(page)
    rows = [r for r in parsed.tables["deal-alternatives"] if r]  # the header row has no cells
    assert [r["alternative"][1] for r in rows] == [a["alternative"] for a in want["alternatives"]]
    assert {"recommended", "no deal", "big-commit alone", "block alone"} <= {
        r["alternative"][1] for r in rows
    }
    for row, alt in zip(rows, want["alternatives"], strict=True):
        assert row["deals"][1] == alt["deals"]
        for key in ("expected_usd", "p50_usd", "p95_usd", "cvar_usd", "minus_recommended_usd", "se_usd"):
            assert float(row[key][0]) == alt[key]
            assert row[key][1] == usd(alt[key])
    assert float(parsed.spans["deal-vss"][0]) == want["vss"]["usd"]
    assert "".join(parsed.spans["deal-vss"][1]) == usd(want["vss"]["usd"])
    assert float(parsed.spans["deal-evpi"][0]) == want["evpi"]["usd"]
    assert "".join(parsed.spans["deal-evpi"][1]) == usd(want["evpi"]["usd"])
    unused = [r for r in parsed.tables["deal-unused"] if r]
    assert [r["deal"][1] for r in unused] == [u["deal"] for u in want["unused_worst_5pct"]]
    for row, u in zip(unused, want["unused_worst_5pct"], strict=True):
        assert float(row["unused_usd"][0]) == u["unused_usd"] and row["unused_usd"][1] == usd(u["unused_usd"])
        assert row["idle_instance_months"][0] == str(u.get("idle_instance_months", ""))

    chart = embedded(page, "polyfleet-charts")["deal"]
    bars = {(v["alternative"], v["measure"]): v["usd"] for v in chart["data"]["values"]}
    measures = {"expected": "expected_usd", "p50": "p50_usd", "p95": "p95_usd", "CVaR": "cvar_usd"}
    assert bars == {(a["alternative"], m): a[k] for a in want["alternatives"] for m, k in measures.items()}

    plain = _write_spec(tmp_path)
    result = runner.invoke(main, ["report", str(plain), "--out", str(tmp_path / "p.html"), "--deal"])
    assert result.exit_code == 2 and "--deal needs a spec with a deals:" in result.output
    assert "Traceback" not in result.output
