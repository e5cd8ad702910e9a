"""Plain-text tables for a person: plans, catalog listings and perf results (rich renderables)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0:
        return "-" + _usd(-value)  # -$482.00, not $-482.00
    if abs(value) >= 1e6:
        return f"${value / 1e6:,.2f}M"
    if abs(value) >= 1e3:
        return f"${value / 1e3:,.1f}k"
    return f"${value:,.2f}"


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}%"


def _where(alloc: dict[str, Any]) -> str:
    if alloc.get("accelerator"):
        low = " (low confidence)" if alloc.get("confidence") == "low" and not alloc.get("measured") else ""
        return f"{alloc['accelerator']} @ {alloc['provider']}{low}"
    resold = f", resells {alloc['resells']}" if alloc.get("resells") else ""
    return f"per-token @ {alloc['provider']}{resold}"


def _gap_note(plan: dict[str, Any]) -> Text:
    """For a plan stopped by the time limit: how far it may be from the best (gap to the bound)."""
    if plan["status"] != "feasible":
        return Text("")
    gap = plan.get("gap")
    told = "unknown" if gap is None else f"{100 * gap:.1f}%"
    how = {
        "restricted-milp": "HiGHS on the LP's columns; gap to the LP bound",
        "dive": "LP dive; gap to the LP bound",
        "greedy": "greedy plan; gap to the LP bound",
        "lns": "greedy or LP dive plan improved a few workloads at a time; gap to the LP bound",
        "rounding": "rounded LP; gap to the LP bound",
    }.get(plan.get("method", "highs"), "HiGHS, stopped early")
    return Text(
        f"  time limit: within {told} of the best possible ({how}; raise --time-limit)", style="yellow"
    )


def plan_tables(plan: dict[str, Any]) -> RenderableType:
    """A plan as a person reads it: where each workload runs and why, then spend vs caps."""
    if plan["status"] in ("infeasible", "unknown"):
        info = plan.get("infeasible", {})
        word = plan["status"].upper()
        return Text(f"{word} ({info.get('family', '?')}): {info.get('message', '')}", style="bold red")
    parts: list[RenderableType] = []
    head = Text.assemble(
        ("plan ", "bold"),
        (plan["status"], "green"),
        f"  total {_usd(plan['total_usd'])} over {plan['horizon_months']:g}"
        f" month{'' if plan['horizon_months'] == 1 else 's'}",
        f"  solved in {plan['solve_seconds']:.2f} s",
        _gap_note(plan),
    )
    parts.append(head)
    t = Table(title="Workloads: where each runs and what it costs", title_justify="left")
    t.drop_order = ("offer", "kind", "chips", "replicas")  # type: ignore[attr-defined]  # narrow terminals
    for col, justify in (
        ("workload", "left"),
        ("kind", "left"),
        ("runs on", "left"),
        ("offer", "left"),
        ("replicas", "right"),
        ("chips", "right"),
        ("share", "right"),
        ("usd", "right"),
    ):
        t.add_column(col, justify=justify)  # type: ignore[arg-type]
    for w in plan["workloads"]:
        first = True
        for a in w["allocations"]:
            replicas = str(a["replicas"]) if a.get("accelerator") else "-"
            if w["kind"] == "training":
                replicas = f"{a.get('run_hours', 0):,.0f} h"
            t.add_row(
                w["name"] if first else "",
                w["kind"] if first else "",
                _where(a),
                a["offer"],
                replicas,
                str(a["chips"]) if a["chips"] else "-",
                _pct(a["share"]),
                _usd(a["usd"]),
            )
            first = False
        t.add_row(
            "",
            "",
            Text("subtotal", style="dim"),
            "",
            "",
            "",
            "",
            Text(_usd(w["usd"]), style="bold"),
            end_section=True,
        )
    parts.append(t)
    if plan.get("commitments"):
        parts.append(commitments_note(plan))
    caps = plan.get("policy", {}).get("max_spend_share", {})
    capacity_caps = plan.get("policy", {}).get("max_share", {})
    if plan.get("capacity_shares") and any(v is not None for v in capacity_caps.values()):
        c = Table(
            title="Largest share of any service's peak one provider / vendor serves, against max_share",
            title_justify="left",
        )
        for col in ("group", "value", "share", "cap"):
            c.add_column(col, justify="left" if col in ("group", "value") else "right")
        for group in ("provider", "vendor"):
            cap = capacity_caps.get(group)
            for value, share in sorted(plan["capacity_shares"].get(group, {}).items(), key=lambda kv: -kv[1]):
                style = "bold yellow" if cap is not None and share >= cap - 1e-6 else ""
                c.add_row(group, value, Text(_pct(share), style=style), _pct(cap))
        parts.append(c)
    s = Table(title="Spend by provider and chip vendor against max_spend_share", title_justify="left")
    for col in ("group", "value", "usd", "share", "cap"):
        s.add_column(col, justify="left" if col in ("group", "value") else "right")
    total = plan["total_usd"] or 1.0
    for group in ("provider", "vendor"):
        for value, share in sorted(plan["shares"].get(group, {}).items(), key=lambda kv: -kv[1]):
            cap = caps.get(group)
            style = "bold yellow" if cap is not None and share >= cap - 1e-6 else ""
            s.add_row(group, value, _usd(share * total), Text(_pct(share), style=style), _pct(cap))
    parts.append(s)
    if plan.get("survival"):
        f = plan.get("policy", {}).get("survive_provider_loss", 0)
        spot = "" if plan.get("policy", {}).get("spot_counts_for_survival") else "; spot not counted"
        v = Table(
            title=f"If one provider fails (policy keeps {_pct(f)} of every service{spot})",
            title_justify="left",
        )
        v.add_column("provider lost")
        v.add_column("worst service still served", justify="right")
        carried = {p: _fallbacks(plan, p) for p in plan["survival"]}
        if any(carried.values()):
            v.add_column("api fallback carrying the loss ($ per month of outage)")
        for provider, frac in plan["survival"].items():
            v.add_row(provider, _pct(frac), *([carried[provider] or "-"] if any(carried.values()) else []))
        parts.append(v)
    if "explain" in plan:
        ex = plan["explain"]
        e = Table(title="What each policy costs", title_justify="left")
        e.add_column("item")
        e.add_column("usd", justify="right")
        e.add_row("lock-in caps premium", _usd(ex.get("lock_in_premium_usd")))
        if ex.get("dilution_usd"):
            e.add_row("spend only diluting max_spend_share", _usd(ex.get("dilution_usd")))
        e.add_row("survival (N-1) premium", _usd(ex.get("survival_premium_usd")))
        e.add_row("budget slack", _usd(ex.get("budget_slack_usd")))
        e.add_row("markup paid to resellers", _usd(ex.get("reseller_markup_usd")))
        for m in ex.get("reseller_markups", []):
            e.add_row(f"  {m['workload']}: {m['offer']} vs {m['direct_offer']}", _usd(m["markup_usd"]))
        parts.append(e)
        if ex.get("configurations"):
            cfg = Table(title="Serving configuration per offer (perf model)", title_justify="left")
            for col in ("service", "offer", "configuration", "chips/replica", "req/s/replica"):
                cfg.add_column(col, justify="right" if col.endswith("replica") else "left")
            for c in ex["configurations"]:
                cfg.add_row(
                    c["workload"], c["offer"], c["configuration"], str(c["chips_per_replica"]),
                    f"{c['requests_per_s_per_replica']:,.3f}",
                )  # fmt: skip
            parts.append(cfg)
    return Group(*parts)


def _term_words(row: dict[str, Any]) -> str:
    if row["term"] == "capacity-block":
        return f"{row['block_days']}-day capacity block" if row.get("block_days") else "capacity block"
    months = int(row.get("term_months", 0))
    return f"{months // 12}-year commitment" if months % 12 == 0 else f"{months}-month commitment"


def commitments_note(plan: dict[str, Any]) -> Text:
    """The plan's commitments said plainly: term, size, monthly price, obligation, end month."""
    horizon = plan["horizon_months"]
    lines = ["Commitments this plan signs (its total prices reserved rows by the hour, without the lock):"]
    for row in plan["commitments"]:
        beyond = (
            f"; {_usd(row['beyond_plan_usd'])} of it beyond this plan's {horizon:g}-month total"
            if row["beyond_plan_usd"] > 0
            else ""
        )
        lines.append(
            f"  {row['offer']}: a {_term_words(row)} of {row['instances']} instance"
            f"{'' if row['instances'] == 1 else 's'} ({row['chips']} chip{'' if row['chips'] == 1 else 's'}),"
            f" {_usd(row['usd_per_month'])}/month,"
            f" {_usd(row['obligation_usd'])} in all, ending month {row['end_month']}{beyond}"
        )
    return Text("\n".join(lines), style="yellow")


def _fallbacks(plan: dict[str, Any], provider: str) -> str:
    """Api offers survival relies on beyond what the plan buys, when ``provider`` is lost."""
    out = []
    for w in plan.get("workloads", []):
        for r in w.get("survival", {}).get(provider, {}).get("relies_on", []):
            if r["kind"] == "api-fallback":
                out.append(f"{w['name']}: {r['offer']} {_usd(r['usd_per_month_of_outage'])}")
    return "; ".join(out)


_HEADERS = {
    "usd_per_chip_hour": "$/chip-h",
    "chips_per_instance": "chips/inst",
    "available_instances": "avail",
    "usd_per_mtok_in": "$/Mtok in",
    "usd_per_mtok_out": "$/Mtok out",
    "active_params_b": "active_b",
}


def records_table(
    title: str, rows: Sequence[dict[str, Any]], columns: Iterable[str], drop_order: Sequence[str] = ()
) -> Table:
    """A generic table of dict rows with the given columns (empty cells as '-').

    ``drop_order``: headers a narrow terminal hides first (cli/_terminal.py).
    """
    t = Table(title=title, title_justify="left")
    if drop_order:
        t.drop_order = tuple(_HEADERS.get(c, c) for c in drop_order)  # type: ignore[attr-defined]
    cols = list(columns)
    for i, col in enumerate(cols):
        t.add_column(_HEADERS.get(col, col), no_wrap=i == 0)
    for row in rows:
        t.add_row(*["-" if row.get(c) in (None, "") else str(row.get(c)) for c in cols])
    return t
