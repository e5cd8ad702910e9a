"""The "Should we sign?" section of ``polyfleet report --deal`` (issue 17, ``docs/report.md``).

The figures are exactly ``polyfleet deal``'s JSON: :func:`deal_figures` calls the same
:func:`polyfleet.deals.analysis.analyse`; :func:`deal_html` writes them as the page shows
them (USD to the cent, so each cell equals the JSON's value).
"""

from __future__ import annotations

import html
from typing import Any

from polyfleet.errors import SpecError
from polyfleet.spec import Spec

#: the alternatives' columns: (key in the deal JSON, header)
DEAL_COLUMNS = (
    ("alternative", "alternative"),
    ("deals", "deals"),
    ("expected_usd", "expected"),
    ("p50_usd", "p50"),
    ("p95_usd", "p95"),
    ("cvar_usd", "CVaR"),
    ("minus_recommended_usd", "minus recommended"),
    ("se_usd", "+-SE"),
)


def deal_figures(spec: Spec) -> dict[str, Any]:
    """``polyfleet deal``'s answer for ``spec`` (evpi on, one local process), or a flag error."""
    from polyfleet.deals.analysis import analyse
    from polyfleet.deals.evaluate import local_mapper

    if not spec.model.deals or spec.model.uncertainty is None:
        raise SpecError("--deal needs a spec with a deals: and an uncertainty: section", file="--deal")
    return analyse(spec, local_mapper)


def usd(value: float) -> str:
    """``$1,234.50``; negative as ``-$482.00`` (every USD figure of the section)."""
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _size(d: dict[str, Any]) -> str:
    if "usd_per_year" in d:
        return f"{usd(d['usd_per_year'])} a year"
    return f"{d['instances']:g} instances"


def deal_html(deal: dict[str, Any]) -> str:
    """The section's HTML (the chart's ``<div id="chart-deal">`` included)."""
    rec = deal["recommended"]
    items = (
        "".join(
            f'<li data-deal="{_e(d["deal"])}">{_e(d["deal"])} ({_e(d["kind"])}): {_e(_size(d))}</li>'
            for d in rec["deals"]
        )
        or "<li>no deal: none of them pays</li>"
    )
    sc = deal["scenarios"]
    parts = [
        f'<p id="deal-recommended-label">Sign: <b>{_e(rec["label"])}</b></p>',
        f'<ul id="deal-recommended">{items}</ul>',
        f'<p class="note">Objective {_e(sc["objective"])} over {sc["in_sample"]} scenarios in sample '
        f"({_e(usd(rec['objective_usd']))}, within {rec['gap'] * 100:.2f}% of the bound); "
        f"the table is {sc['out_of_sample']} {'named' if sc['source'] == 'named' else 'out-of-sample'} "
        "scenarios, USD over the horizon.</p>",
    ]
    head = "".join(f"<th>{_e(label)}</th>" for _, label in DEAL_COLUMNS)
    body = []
    for a in deal["alternatives"]:
        cells = "".join(
            f'<td data-deal-key="{k}" data-value="{_e(a[k])}"{" class=num" if k.endswith("_usd") else ""}>'
            f"{_e(usd(a[k]) if k.endswith('_usd') else a[k])}</td>"
            for k, _ in DEAL_COLUMNS
        )
        body.append(f"<tr>{cells}</tr>")
    parts.append(
        f'<table id="deal-alternatives"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'
    )
    parts.append('<div class="chart" id="chart-deal"></div>')
    vss = deal["vss"]
    line = (
        f'<p id="deal-value">Value of the stochastic solution (VSS): <span id="deal-vss" '
        f'data-value="{vss["usd"]}">{_e(usd(vss["usd"]))}</span> (+- {_e(usd(vss["se_usd"]))}; '
        f"sized for the mean scenario: {_e(vss['mean_value_deals'])})"
    )
    if "evpi" in deal:
        ev = deal["evpi"]["usd"]
        line += f'; expected value of perfect information (EVPI): <span id="deal-evpi" data-value="{ev}">'
        line += f"{_e(usd(ev))}</span>"
    parts.append(line + ".</p>")
    if deal["unused_worst_5pct"]:
        rows = []
        for u in deal["unused_worst_5pct"]:
            idle = u.get("idle_instance_months", "")
            rows.append(
                f'<tr><td data-deal-key="deal" data-value="{_e(u["deal"])}">{_e(u["deal"])}</td>'
                f'<td data-deal-key="unused_usd" data-value="{u["unused_usd"]}" class=num>'
                f"{_e(usd(u['unused_usd']))}</td>"
                f'<td data-deal-key="idle_instance_months" data-value="{idle}" class=num>{_e(idle)}</td></tr>'
            )
        parts.append(
            "<p>Unused commitment, mean over the worst 5% of scenarios (by the recommendation's cost):</p>"
            '<table id="deal-unused"><thead><tr><th>deal</th><th>unused USD</th><th>idle instance-months</th>'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    return '<section id="deal"><h2>Should we sign?</h2>' + "".join(parts) + "</section>"
