"""Tables for a monthly plan: the migration schedule, spend by month and provider, commitments."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from polyfleet.report.tables import _usd


def monthly_tables(plan: dict[str, Any]) -> RenderableType:
    """A monthly plan as a person reads it: what moves when, and what each month costs."""
    parts: list[RenderableType] = [
        Text.assemble(
            ("monthly plan ", "bold"),
            (plan["status"], "green"),
            f"  total {_usd(plan['total_usd'])} over {plan['horizon_months']:g} months"
            f" (incl. {_usd(plan.get('commitment_usd_after_horizon', 0))} of reserved terms after it"
            f" and {_usd(plan.get('move_usd', 0))} moving capacity)",
            f"  solved in {plan['solve_seconds']:.2f} s",
        )
    ]
    months = plan["months"]
    alloc = Table(
        title="Where each workload runs, month by month (replicas; api: share)", title_justify="left"
    )
    alloc.add_column("workload")
    alloc.add_column("offer")
    alloc.repeat_columns = 2  # type: ignore[attr-defined]  # a narrow terminal: months in parts
    for t in range(len(months)):
        alloc.add_column(f"m{t}", justify="right")
    rows: dict[tuple[str, str], list[str]] = {}
    for t, month in enumerate(months):
        for w in month["workloads"]:
            for a in w["allocations"]:
                cells = rows.setdefault((w["name"], a["offer"]), [""] * len(months))
                cells[t] = str(a["replicas"]) if a["replicas"] else f"{100 * a['share']:.0f}%"
    for (name, offer), cells in sorted(rows.items()):
        alloc.add_row(name, offer, *cells)
    parts.append(alloc)

    spend = Table(title="Spend by month and provider", title_justify="left")
    spend.add_column("provider")
    spend.repeat_columns = 1  # type: ignore[attr-defined]
    for t in range(len(months)):
        spend.add_column(f"m{t}", justify="right")
    providers = sorted({p["provider"] for m in months for p in m["purchases"]})
    for provider in providers:
        cells = [
            _usd(sum(p["usd"] for p in m["purchases"] if p["provider"] == provider) or None) for m in months
        ]
        spend.add_row(provider, *cells)
    spend.add_row(Text("total", style="bold"), *[_usd(m["total_usd"]) for m in months])
    parts.append(spend)

    if plan.get("schedule"):
        parts.append(Text("Schedule\n" + "\n".join(f"  {line}" for line in plan["schedule"])))
    if plan.get("commitments"):
        c = Table(title="Commitments (reserved terms; capacity blocks: one month each)", title_justify="left")
        for col in ("offer", "month", "instances", "term", "usd_after_horizon"):
            c.add_column(col)
        for row in plan["commitments"]:
            c.add_row(row["offer"], str(row["month"]), str(row["instances"]), row["term"],
                      _usd(row["usd_after_horizon"]))  # fmt: skip
        parts.append(c)
    for row in plan.get("porting", []):
        parts.append(Text(f"porting {row['workload']} to {row['stack']}: {_usd(row['usd'])} once"))
    return Group(*parts)
