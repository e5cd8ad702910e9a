"""Charts for a person: the accelerator comparison of ``polyfleet perf`` as a bar chart.

Built on ``matplotlib.figure.Figure`` with the Agg canvas directly, never ``pyplot``, so
no global state or GUI backend is touched; save with ``fig.savefig(path_or_buffer)``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import StrMethodFormatter

from polyfleet.report.colours import OTHER as _OTHER
from polyfleet.report.colours import VENDOR_COLOURS

_WRAP = 130  # footnote characters per line


def _footnote(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Lines naming the accelerators without a bar, and why."""
    no_offer = [r for r in rows if r["feasible"] and r.get("usd_per_mtok_out") is None]
    infeasible = [r for r in rows if not r["feasible"]]
    lines: list[str] = []
    if no_offer:
        text = "No offer to price (tokens/s/chip): " + ", ".join(
            f"{r['accelerator']} ({r['output_tokens_per_s_per_chip']:,.0f})" for r in no_offer
        )
        lines += textwrap.wrap(text, _WRAP, subsequent_indent="    ", break_on_hyphens=False)
    if infeasible:
        text = "Infeasible: " + "; ".join(f"{r['accelerator']}: {r['reason']}" for r in infeasible)
        lines += textwrap.wrap(text, _WRAP, subsequent_indent="    ", break_on_hyphens=False)
    return lines


def perf_chart(rows: Sequence[dict[str, Any]], title: str) -> Figure:
    """Horizontal bars of $/Mtok out per accelerator, cheapest at the top.

    ``rows`` are :func:`polyfleet.perf.compare.compare_accelerators` rows.  Each bar is
    annotated with its output tokens/s per chip and coloured by vendor; accelerators
    that are infeasible or have no offer are listed in a footnote instead.
    """
    priced = [r for r in rows if r["feasible"] and r.get("usd_per_mtok_out") is not None]
    priced.sort(key=lambda r: r["usd_per_mtok_out"])
    notes = _footnote(rows)

    bar_h = 0.38  # inches per bar
    top_in, axis_in, note_in = 0.6, 0.7, 0.16 * len(notes) + (0.2 if notes else 0.05)
    plot_in = max(1.2, bar_h * len(priced))
    height = top_in + plot_in + axis_in + note_in
    fig = Figure(figsize=(12, height), dpi=110)
    FigureCanvasAgg(fig)
    left, right = 0.2, 0.8
    ax = fig.add_axes((left, (axis_in + note_in) / height, right - left, plot_in / height))
    fig.suptitle(title, x=0.02, y=1 - 0.12 / height, ha="left", va="top", fontsize=12, fontweight="bold")

    if priced:
        names = [r["accelerator"] for r in priced]
        values = [r["usd_per_mtok_out"] for r in priced]
        colours = [VENDOR_COLOURS.get(r["vendor"], _OTHER) for r in priced]
        y = list(range(len(priced)))
        ax.barh(y, values, color=colours, height=0.7)
        ax.set_yticks(y, names, fontsize=9)
        ax.invert_yaxis()  # cheapest at the top
        ax.set_ylim(len(priced) - 0.5, -0.5)
        vmax = max(values)
        ax.set_xlim(0, vmax * 1.45)
        for yi, r in zip(y, priced, strict=True):
            label = (
                f"${r['usd_per_mtok_out']:,.2f}  ·  {r['output_tokens_per_s_per_chip']:,.0f} tok/s/chip"
                f"  ·  {r['chips_per_replica']} chip/replica  ·  {r['provider']}"
            )
            ax.text(r["usd_per_mtok_out"] + vmax * 0.01, yi, label, va="center", fontsize=8)
        vendors = list(dict.fromkeys(r["vendor"] for r in priced))
        ax.legend(
            handles=[Patch(color=VENDOR_COLOURS.get(v, _OTHER), label=v) for v in vendors],
            title="vendor",
            loc="center left",
            bbox_to_anchor=(1.01, 0.5),
            fontsize=8,
            title_fontsize=8,
            frameon=False,
        )
    else:
        ax.set_yticks([])
        ax.text(
            0.5,
            0.5,
            "no accelerator is both feasible and priced",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.xaxis.set_major_formatter(StrMethodFormatter("${x:,.0f}"))
    ax.set_xlabel("USD per million output tokens (cheapest offer, $/Mtok out)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    if notes:
        fig.text(
            0.02,
            (note_in - 0.08) / height,
            "\n".join(notes),
            ha="left",
            va="top",
            fontsize=7.5,
            color="#444444",
            family="monospace",
        )
    return fig
