"""The price of diversification for a person: a table and a chart of ``polyfleet frontier``.

Input is :func:`polyfleet.risk.frontier.frontier`'s dictionary.  The chart is a
``matplotlib.figure.Figure`` on the Agg canvas (no pyplot, no global state): plan cost on
x, the worst single-provider loss (unserved share of peak inference demand) on y, one
line per survival fraction through the provider caps; infeasible points are listed in a
footnote.
"""

from __future__ import annotations

import textwrap
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from polyfleet.report.tables import _pct


def _usd(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 0:
        return "-" + _usd(-value)  # -$482, not $-482
    return f"${value / 1e6:,.3f}M" if abs(value) >= 1e6 else f"${value / 1e3:,.1f}k"


def frontier_table(result: dict[str, Any]) -> RenderableType:
    """One row per grid point: cost, premium over the unconstrained plan, risk figures."""
    base = result["unconstrained"]
    head = Text(
        "unconstrained (no provider cap, survival 0): "
        + (f"{_usd(base['total_usd'])}" if base["feasible"] else f"infeasible ({base['reason']})")
        + f"; Monte Carlo: {result['scenarios']:,} scenarios, seed {result['seed']}"
    )
    table = Table(title="Price of diversification")
    columns = (
        "provider cap",
        "survival",
        "plan cost",
        "premium",
        "max provider share",
        "worst loss unserved",
        "worst loss extra",
        "MC expected",
        "MC P95",
    )
    for col in columns:
        table.add_column(col, justify="right")
    for row in result["points"]:
        cap, survival = f"{row['provider_cap']:g}", f"{row['survival']:g}"
        if not row["feasible"]:
            table.add_row(cap, survival, Text(str(row["status"]), style="red"), *["-"] * 6)
            continue
        table.add_row(
            cap,
            survival,
            _usd(row["total_usd"]),
            _pct(row.get("premium_fraction")),
            _pct(row["max_provider_share"]),
            _pct(row["worst_loss_unserved_fraction"]),
            _usd(row["worst_loss_extra_usd"]),
            _usd(row["expected_usd"]),
            _usd(row["p95_usd"]),
        )
    notes = [
        Text(f"cap {row['provider_cap']:g} / survival {row['survival']:g}: {row['reason']}")
        for row in result["points"]
        if not row["feasible"]
    ]
    return Group(head, table, *notes)


def frontier_chart(result: dict[str, Any], title: str) -> Figure:
    """Cost (x) against worst single-provider loss (y), a line per survival fraction."""
    points = result["points"]
    infeasible = [p for p in points if not p["feasible"]]
    notes = (
        textwrap.wrap(
            "Infeasible: "
            + "; ".join(f"cap {p['provider_cap']:g} / survival {p['survival']:g}" for p in infeasible),
            120,
        )
        if infeasible
        else []
    )
    fig = Figure(figsize=(9, 5.5 + 0.18 * len(notes)), dpi=110)
    FigureCanvasAgg(fig)
    bottom = 0.12 + 0.03 * len(notes)
    ax = fig.add_axes((0.1, bottom, 0.85, 0.8 - bottom))
    fig.suptitle(title, x=0.02, ha="left", fontsize=12, fontweight="bold")
    for survival in sorted({p["survival"] for p in points}):
        line = sorted(
            (p for p in points if p["feasible"] and p["survival"] == survival), key=lambda p: p["total_usd"]
        )
        if not line:
            continue
        xs = [p["total_usd"] / 1e3 for p in line]
        ys = [100 * p["worst_loss_unserved_fraction"] for p in line]
        ax.plot(xs, ys, marker="o", label=f"survival {survival:g}")
        labels: dict[tuple[float, float], list[str]] = {}
        for p, x, y in zip(line, xs, ys, strict=True):
            labels.setdefault((round(x, 6), round(y, 6)), []).append(f"{p['provider_cap']:g}")
        for (x, y), caps in labels.items():
            ax.annotate(
                f"cap {', '.join(caps)}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8
            )
    base = result["unconstrained"]
    if base["feasible"]:
        ax.axvline(
            base["total_usd"] / 1e3, color="#999999", linestyle="--", linewidth=1, label="unconstrained"
        )
    ax.set_xlabel("plan cost over the horizon (k$)")
    ax.set_ylabel("worst single-provider loss: unserved peak inference (%)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=9)
    for i, note in enumerate(notes):
        fig.text(0.02, 0.02 + 0.03 * (len(notes) - 1 - i), note, fontsize=8, color="#aa0000")
    return fig
