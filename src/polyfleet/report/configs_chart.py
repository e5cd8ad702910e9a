"""Chart of ``polyfleet perf configs``: serving configurations, throughput per dollar vs TPOT.

Every evaluated configuration is a grey dot; the Pareto front (``polyfleet.perf.configs
.pareto_front``) is the labelled line.  The y axis is output tokens per dollar when the
rows carry a price (``tokens_per_usd``), else output tokens/s per chip.  Builds a
matplotlib ``Figure`` only; the CLI writes it through its atomic writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def configs_chart(rows: Sequence[dict[str, Any]], front: Sequence[dict[str, Any]], title: str) -> Figure:
    """Scatter of ``rows`` (dicts with ``tpot_ms`` and a rate) and the ``front`` through them."""
    priced = all(r.get("tokens_per_usd") for r in [*rows, *front]) and bool(rows)
    key = "tokens_per_usd" if priced else "output_tokens_per_s_per_chip"
    label = "output tokens per $" if priced else "output tokens/s per chip"
    fig = Figure(figsize=(10, 6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter([r["tpot_ms"] for r in rows], [r[key] for r in rows], s=12, color="#bbbbbb", label="evaluated")
    xs = [r["tpot_ms"] for r in front]
    ys = [r[key] for r in front]
    ax.plot(xs, ys, "-o", color="#1f77b4", label="Pareto front")
    for r in front:
        ax.annotate(
            r["configuration"], (r["tpot_ms"], r[key]), fontsize=7, xytext=(4, 4), textcoords="offset points"
        )
    ax.set_xlabel("TPOT, ms (at the percentile when one is set)")
    ax.set_ylabel(label)
    ax.set_title(title, fontsize=11, loc="left")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig
