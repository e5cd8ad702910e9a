"""``polyfleet report``: one self-contained HTML page a CFO and a platform team can read.

:func:`collect` gathers the figures (:mod:`polyfleet.report.html_data`), :func:`render`
writes the page: the headline in words, an allocations table sortable by any column, and
Vega-Lite charts (:mod:`polyfleet.report.html_charts`) rendered in the browser by the
vega-embed / Vega-Lite / Vega bundle that ``vl-convert-python`` ships, inlined once, so
the file opens with no network.  The page also carries every figure as JSON
(``<script type="application/json" id="polyfleet-report-data">``) so tests can check
it against the plan, and records chart errors on ``<body data-errors>``.
Sections are described in ``docs/report.md``.
"""

from __future__ import annotations

import dataclasses
import functools
import html
import json
from collections.abc import Sequence
from typing import Any

from polyfleet.plan import SolveOptions
from polyfleet.report import html_charts as charts
from polyfleet.report import html_data as data
from polyfleet.report import html_deal as deal_section
from polyfleet.report import html_runs as runs
from polyfleet.spec import Spec

#: the provider caps the frontier section plans at (plus the spec's own)
FRONTIER_CAPS = (0.3, 0.4, 0.5, 0.7, 1.0)
#: relative MIP gap of each frontier plan
FRONTIER_GAP = 1e-3


@functools.cache
def vega_bundle() -> str:
    """vega-embed + Vega-Lite + Vega as one script (from vl-convert-python), made safe to inline."""
    import vl_convert

    return vl_convert.javascript_bundle().replace("</script", "<\\/script")


def collect(
    plan_dict: dict[str, Any],
    spec: Spec | None = None,
    *,
    risk_scenarios: int | None = None,
    frontier: bool = False,
    monthly_plan: dict[str, Any] | None = None,
    deal: bool = False,
    seed: int = 0,
    options: SolveOptions | None = None,
    progress: data.Progress = data._quiet,
) -> dict[str, Any]:
    """Every figure of the report, JSON-ready.

    ``spec`` (when known) adds the single-provider / single-vendor baselines, the
    perf-model $/Mtok per accelerator, and makes ``risk_scenarios`` (a Monte Carlo run)
    use its ``risk:`` assumptions and ``frontier`` (plans at each provider cap) possible.
    ``monthly_plan`` is a monthly plan of the same spec shown as the capacity area chart
    (the plan itself when it is monthly).  ``deal`` adds ``polyfleet deal``'s answer for
    the spec's ``deals:`` (the same dictionary as its JSON).
    """
    from polyfleet.risk.assumptions import RiskAssumptions

    base = runs.baselines(spec, options, progress) if spec is not None else None
    figures: dict[str, Any] = {
        "status": plan_dict["status"],
        "periods": plan_dict.get("periods", "single"),
        "headline": data.headline(plan_dict, base),
        "baselines": base,
        "spend": data.spend_rows(plan_dict),
        "allocations": data.allocation_rows(plan_dict, spec),
        "survival": {
            "floor": float(plan_dict.get("policy", {}).get("survive_provider_loss") or 0.0),
            "rows": data.survival_rows(plan_dict),
        },
    }
    monthly_source = monthly_plan or (plan_dict if plan_dict.get("periods") == "monthly" else None)
    figures["monthly"] = data.monthly_rows(monthly_source) if monthly_source else []
    modelled = runs.accelerator_rows(spec, plan_dict) if spec is not None else []
    figures["accelerators"] = modelled or data.plan_accelerator_rows(plan_dict, spec)
    figures["risk"] = None
    if risk_scenarios:
        progress(f"risk: {risk_scenarios:,} scenarios")
        assumptions = spec.model.risk if spec is not None else RiskAssumptions()
        figures["risk"] = runs.risk_figures(plan_dict, assumptions, risk_scenarios, seed)
        figures["risk"]["stressed"] = "month 0" if plan_dict.get("periods") == "monthly" else "the plan"
    figures["frontier"] = None
    if frontier and spec is not None:
        progress("frontier: a plan per provider cap")
        own = spec.model.policy.max_share.provider
        caps = sorted({*FRONTIER_CAPS, *([own] if own else [])})
        # a chart point, not a bill: stop each plan within 0.1% of its bound
        sweep = dataclasses.replace(options or SolveOptions(), mip_rel_gap=FRONTIER_GAP)
        figures["frontier"] = runs.frontier_figures(spec, plan_dict, caps, seed=seed, options=sweep)
    figures["deal"] = None
    if deal and spec is not None:
        progress("deal: should we sign?")
        figures["deal"] = deal_section.deal_figures(spec)
    return figures


# --- the page ---------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _json_script(element_id: str, value: Any) -> str:
    text = json.dumps(value, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def money(value: float | None, digits: int = 2) -> str:
    """``$1,234.57``; negative as ``-$482.00``; empty for None (the table's cell text)."""
    if value is None:
        return ""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{digits}f}"


def _headline_html(head: dict[str, Any], figures: dict[str, Any]) -> str:
    months = head["horizon_months"]
    parts = [
        f'<p class="big"><span id="usd-per-month">{_e(money(head["usd_per_month"], 0))}</span> a month'
        f' <span class="dim">({_e(money(head["total_usd"], 0))} over {months:g}'
        f" month{'' if months == 1 else 's'})</span></p>"
    ]
    for group in ("provider", "vendor"):
        b = head.get(f"single_{group}")
        if b is None:
            why = (
                "needs the spec (pass a spec, or --spec with a plan file)"
                if figures["baselines"] is None
                else f"no single {group} can run every workload"
            )
            parts.append(f'<p id="vs-{group}">Best single-{group} plan: {why}.</p>')
            continue
        saving = b["savings_usd_per_month"]
        verdict = (
            f"saves <b>{_e(money(saving, 0))}</b> a month"
            if saving >= 0
            else f"costs <b>{_e(money(-saving, 0))}</b> a month more"
        )
        parts.append(
            f'<p id="vs-{group}">Against the best single-{group} plan '
            f"(<b>{_e(b['best'])}</b> only, {_e(money(b['usd_per_month'], 0))} a month): "
            f"this plan {verdict}.</p>"
        )
    binding = head["binding"]
    items = "".join(f"<li>{_e(b)}</li>" for b in binding) or "<li>none: every policy has slack</li>"
    parts.append(f'<p>Binding constraints:</p><ul id="binding">{items}</ul>')
    return "\n".join(parts)


_COLUMNS: Sequence[tuple[str, str, str]] = (
    ("service", "service", "text"),
    ("offer", "offer", "text"),
    ("provider", "provider", "text"),
    ("accelerator", "accelerator", "text"),
    ("term", "term", "text"),
    ("chips", "chips", "num"),
    ("instances", "instances", "num"),
    ("usd_per_month", "$/month", "num"),
    ("usd_per_mtok", "$/Mtok", "num"),
)


def cell_text(key: str, value: Any) -> str:
    """How the allocations table writes one value."""
    if value is None or value == "":
        return ""
    if key == "usd_per_month":
        return money(value)
    if key == "usd_per_mtok":
        return money(value, 4)
    if key == "instances":
        return f"{value:g}"
    if key == "chips":
        return f"{value:,d}"
    return str(value)


def _table_html(rows: list[dict[str, Any]]) -> str:
    head = "".join(
        f'<th data-key="{k}" data-type="{t}" title="sort by {_e(label)}">{_e(label)}</th>'
        for k, label, t in _COLUMNS
    )
    body = []
    for r in rows:
        cells = "".join(
            f'<td data-key="{k}" data-value="{_e("" if r[k] is None else r[k])}"'
            f"{' class=num' if t == 'num' else ''}>{_e(cell_text(k, r[k]))}</td>"
            for k, _, t in _COLUMNS
        )
        body.append(f"<tr>{cells}</tr>")
    return f'<table id="allocations"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _risk_html(risk: dict[str, Any]) -> str:
    stats = (
        f'<p id="risk-stats">{risk["scenarios"]:,} scenarios (seed {risk["seed"]}): '
        f"p50 <b>{_e(money(risk['p50_usd'], 0))}</b>, p95 <b>{_e(money(risk['p95_usd'], 0))}</b>, "
        f"CVaR95 <b>{_e(money(risk['cvar95_usd'], 0))}</b> ({_e(risk.get('stressed', 'the plan'))} "
        f"costs {_e(money(risk['plan_usd'], 0))} as bought).</p>"
    )
    worst = "".join(
        f"<li>scenario {w['scenario']}: {_e(money(w['cost_usd'], 0))} &mdash; {_e(w['name'])}</li>"
        for w in risk["worst"]
    )
    return f'{stats}<p>Costliest scenarios:</p><ol id="risk-worst">{worst}</ol>'


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;
  max-width:1180px;padding:16px 28px;color:#222}
h1{font-size:22px;margin:8px 0} h2{font-size:17px;margin:28px 0 6px;border-bottom:1px solid #ddd}
.big{font-size:28px;margin:6px 0} .dim{color:#777;font-size:14px} .note{color:#666;font-size:12px}
table{border-collapse:collapse;font-size:12.5px;width:100%}
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
th{cursor:pointer;background:#f4f6f8;position:sticky;top:0}
th.asc:after{content:" \\25B2"} th.desc:after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums} .chart{min-height:80px}
"""

#: before the vega bundle: any error or console.error lands on <body data-errors> (tests read it)
_ERRORS_JS = """
(function(){
  var errors=[];
  function note(msg){
    errors.push(String(msg));
    if(document.body){document.body.setAttribute('data-errors',JSON.stringify(errors));}
  }
  window.polyfleetErrors=errors;
  window.addEventListener('error',function(e){note(e.message||e);});
  window.addEventListener('unhandledrejection',function(e){note(e.reason);});
  var origError=console.error;
  console.error=function(){
    note(Array.prototype.join.call(arguments,' '));origError.apply(console,arguments);
  };
  document.addEventListener('DOMContentLoaded',function(){
    if(errors.length){document.body.setAttribute('data-errors',JSON.stringify(errors));}
  });
})();
"""

#: the allocations table sorts on a header click; each chart is embedded, then its box recorded
_JS = """
(function(){
  var table=document.getElementById('allocations');
  function sortBy(th,col){
    var asc=!th.classList.contains('asc');
    table.querySelectorAll('th').forEach(function(h){h.classList.remove('asc','desc');});
    th.classList.add(asc?'asc':'desc');
    var num=th.getAttribute('data-type')==='num';
    var tb=table.tBodies[0];
    var rows=Array.prototype.slice.call(tb.rows);
    rows.sort(function(a,b){
      var x=a.cells[col].getAttribute('data-value'),y=b.cells[col].getAttribute('data-value');
      var c=num?((x===''?-Infinity:+x)-(y===''?-Infinity:+y)):x.localeCompare(y);
      return asc?c:-c;
    });
    rows.forEach(function(r){tb.appendChild(r);});
  }
  if(table){
    table.querySelectorAll('th').forEach(function(th,col){
      th.addEventListener('click',function(){sortBy(th,col);});
    });
  }
  var specs=JSON.parse(document.getElementById('polyfleet-charts').textContent);
  var jobs=Object.keys(specs).map(function(id){
    var el=document.getElementById('chart-'+id);
    return vegaEmbed(el,specs[id],{actions:false,renderer:'svg'}).then(function(){
      var r=el.getBoundingClientRect();
      var box=[r.left+window.scrollX,r.top+window.scrollY,r.width,r.height].map(Math.round);
      el.setAttribute('data-rendered','1');
      el.setAttribute('data-box',box.join(','));
    }).catch(function(err){console.error('chart '+id+': '+err);});
  });
  Promise.all(jobs).then(function(){document.body.setAttribute('data-charts-done',String(jobs.length));});
})();
"""


def render(figures: dict[str, Any], title: str) -> str:
    """The HTML page for ``figures`` (from :func:`collect`)."""
    specs: dict[str, Any] = {"spend": charts.spend_chart(figures["spend"])}
    sections = [
        f"<h1>{_e(title)}</h1>",
        f'<section id="headline"><h2>Headline</h2>{_headline_html(figures["headline"], figures)}</section>',
        '<section id="spend"><h2>Spend by provider and vendor against each cap</h2>'
        '<div class="chart" id="chart-spend"></div></section>',
    ]
    note = '<p class="note">Month 0 of a monthly plan.</p>' if figures.get("periods") == "monthly" else ""
    sections.append(
        '<section id="allocations-section"><h2>Allocations: service x offer</h2>'
        f'<p class="note">Click a column to sort. $/Mtok: USD per million tokens (input + output) the '
        f"allocation serves, trains on or buys.</p>{note}{_table_html(figures['allocations'])}</section>"
    )
    surv = figures["survival"]
    if surv["rows"]:
        specs["survival"] = charts.survival_chart(surv["rows"], surv["floor"])
        sections.append(
            '<section id="survival"><h2>If one provider fails</h2>'
            '<div class="chart" id="chart-survival"></div></section>'
        )
    if figures.get("frontier"):
        front = figures["frontier"]
        specs["frontier"] = charts.frontier_chart(front["points"], front.get("measure", "capacity"))
        infeasible = ", ".join(f"{c:.0%}" for c in front["infeasible_caps"])
        sections.append(
            '<section id="frontier"><h2>Cost vs lock-in</h2><p class="note">A plan at each provider cap, '
            f"keeping {front['survival']:.0%} after losing a provider; grey points are dominated (another "
            "plan is no dearer with no larger provider share)."
            f"{f' No plan at caps {infeasible}.' if infeasible else ''}</p>"
            '<div class="chart" id="chart-frontier"></div></section>'
        )
    if figures.get("risk"):
        specs["risk"] = charts.risk_chart(figures["risk"])
        sections.append(
            '<section id="risk"><h2>Risk</h2><div class="chart" id="chart-risk"></div>'
            f"{_risk_html(figures['risk'])}</section>"
        )
    if figures.get("deal"):
        specs["deal"] = charts.deal_chart(figures["deal"]["alternatives"])
        sections.append(deal_section.deal_html(figures["deal"]))
    if figures.get("monthly"):
        specs["monthly"] = charts.monthly_chart(figures["monthly"])
        sections.append(
            '<section id="monthly"><h2>Capacity by provider, month by month</h2>'
            '<div class="chart" id="chart-monthly"></div></section>'
        )
    if figures.get("accelerators"):
        specs["accelerators"] = charts.accelerator_chart(figures["accelerators"])
        basis = figures["accelerators"][0]["basis"]
        sections.append(
            '<section id="accelerators"><h2>$/Mtok per accelerator</h2>'
            f'<p class="note">Basis: {_e(basis)}; filled points are chips this plan uses.</p>'
            '<div class="chart" id="chart-accelerators"></div></section>'
        )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{_e(title)}</title><style>{_CSS}</style>",
            f"<script>{_ERRORS_JS}</script>",
            f"<script>{vega_bundle()}</script>",
            "</head><body>",
            *sections,
            _json_script("polyfleet-report-data", figures),
            _json_script("polyfleet-charts", specs),
            f"<script>{_JS}</script>",
            "</body></html>",
        ]
    )
