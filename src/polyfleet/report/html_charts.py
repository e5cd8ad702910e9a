"""The charts of ``polyfleet report`` as Vega-Lite specifications, built with altair.

Each function takes rows from :mod:`polyfleet.report.html_data` and returns a
Vega-Lite spec (a dict) with the rows inlined, which the page renders with the
vega-embed bundle it carries (no network at view time).
"""

from __future__ import annotations

from typing import Any

import altair as alt

WIDTH = 720


def _spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    return chart.to_dict()


def spend_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per provider and per vendor: share of spend, and the largest share of one service's peak,
    side by side; each cap a rule in its bar's colour (spend cap solid, capacity cap dashed)."""
    measures = {"share": "share of spend", "peak_share": "largest share of a service's peak"}
    colours = alt.Scale(domain=list(measures.values()), range=["#4c78a8", "#f58518"])
    panels = []
    for group in ("provider", "vendor"):
        data = [r for r in rows if r["group"] == group]
        if not data:
            continue
        long = [
            {
                "value": r["value"],
                "measure": label,
                "fraction": r[key],
                "usd": r["usd"],
                "service": r["peak_service"] if key == "peak_share" else "",
            }
            for r in data
            for key, label in measures.items()
        ]
        bars = (
            alt.Chart(alt.Data(values=long))
            .mark_bar()
            .encode(
                x=alt.X("value:N", sort=[r["value"] for r in data], title=group),
                xOffset=alt.XOffset("measure:N", sort=list(measures.values())),
                y=alt.Y("fraction:Q", axis=alt.Axis(format="%"), title=None, scale=alt.Scale(domain=[0, 1])),
                color=alt.Color("measure:N", scale=colours, title=None, legend=alt.Legend(orient="bottom")),
                tooltip=[
                    alt.Tooltip("value:N", title=group),
                    "measure:N",
                    alt.Tooltip("fraction:Q", format=".1%"),
                    alt.Tooltip("usd:Q", format="$,.0f", title="spend, USD"),
                    "service:N",
                ],
            )
        )
        layers: list[Any] = [bars]
        caps = [
            {"cap": data[0][key], "label": f"{label} {data[0][key]:.0%}", "measure": measure, "dash": dash}
            for key, label, measure, dash in (
                ("cap", "spend cap", measures["share"], "solid"),
                ("capacity_cap", "capacity cap", measures["peak_share"], "dashed"),
            )
            if data[0][key] is not None
        ]
        if caps:
            rule = alt.Chart(alt.Data(values=caps))
            layers.append(
                rule.mark_rule(strokeWidth=2).encode(
                    y="cap:Q",
                    color=alt.Color("measure:N", scale=colours, title=None),
                    strokeDash=alt.StrokeDash(
                        "dash:N",
                        scale=alt.Scale(domain=["solid", "dashed"], range=[[1, 0], [6, 3]]),
                        legend=None,
                    ),
                )
            )
            layers.append(
                rule.mark_text(align="right", dy=-6, x="width", fontSize=10).encode(
                    y="cap:Q", text="label:N", color=alt.Color("measure:N", scale=colours, title=None)
                )
            )
        panels.append(alt.layer(*layers).properties(width=380, height=220, title=f"by {group}"))
    return _spec(alt.hconcat(*panels))


def survival_chart(rows: list[dict[str, Any]], floor: float) -> dict[str, Any]:
    """Service x lost provider, coloured red below the policy's floor, amber at it, green above."""
    mid = min(max(floor, 0.001), 0.999)
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("lost_provider:N", title="provider lost"), y=alt.Y("service:N", title=None)
    )
    rect = base.mark_rect().encode(
        color=alt.Color(
            "served_fraction:Q",
            title="share of peak served",
            scale=alt.Scale(domain=[0, mid, 1], range=["#d62728", "#fdd835", "#2ca02c"]),
            legend=alt.Legend(format="%"),
        ),
        tooltip=[
            "service:N",
            alt.Tooltip("lost_provider:N", title="provider lost"),
            alt.Tooltip("served_fraction:Q", format=".1%", title="served"),
        ],
    )
    text = base.mark_text(fontSize=11).encode(text=alt.Text("served_fraction:Q", format=".0%"))
    title = f"share of peak still served (policy floor {floor:.0%})"
    return _spec(
        (rect + text).properties(
            width=WIDTH, height=max(60, 36 * len({r["service"] for r in rows})), title=title
        )
    )


def frontier_chart(points: list[dict[str, Any]], measure: str = "capacity") -> dict[str, Any]:
    """Cost against the largest provider share; the non-dominated points joined, this plan marked."""
    line_rows = sorted((p for p in points if not p["dominated"]), key=lambda p: p["max_provider_share"])
    title = (
        "largest share of one service's peak at one provider"
        if measure == "capacity"
        else "largest provider share of spend"
    )
    x = alt.X("max_provider_share:Q", title=title, axis=alt.Axis(format="%"))
    y = alt.Y(
        "total_usd:Q", title="plan cost, USD", axis=alt.Axis(format="$,.3s"), scale=alt.Scale(zero=False)
    )
    tip = [
        "label:N",
        alt.Tooltip("max_provider_share:Q", format=".1%"),
        alt.Tooltip("total_usd:Q", format="$,.0f"),
        "dominated:N",
    ]
    line = alt.Chart(alt.Data(values=line_rows)).mark_line(color="#4c78a8").encode(x=x, y=y)
    pts = (
        alt.Chart(alt.Data(values=points))
        .mark_point(size=90, filled=True)
        .encode(
            x=x,
            y=y,
            shape=alt.Shape(
                "chosen:N", scale=alt.Scale(domain=[False, True], range=["circle", "diamond"]), legend=None
            ),
            color=alt.Color(
                "kind:N",
                title=None,
                scale=alt.Scale(
                    domain=["frontier", "dominated", "this plan"], range=["#4c78a8", "#bbbbbb", "#d62728"]
                ),
            ),
            size=alt.condition("datum.chosen", alt.value(260), alt.value(90)),
            tooltip=tip,
        )
        .transform_calculate(kind="datum.chosen ? 'this plan' : (datum.dominated ? 'dominated' : 'frontier')")
    )
    same: dict[tuple[float, float], list[str]] = {}  # one label per spot: "cap 50% = cap 70%"
    for p in points:
        same.setdefault((p["max_provider_share"], p["total_usd"]), []).append(p["label"])
    spots = [{"max_provider_share": x, "total_usd": y, "label": " = ".join(n)} for (x, y), n in same.items()]
    labels = (
        alt.Chart(alt.Data(values=spots))
        .mark_text(align="left", dx=8, dy=-8, fontSize=10)
        .encode(x=x, y=y, text="label:N")
    )
    return _spec((line + pts + labels).properties(width=WIDTH, height=300, title="cost vs lock-in"))


def risk_chart(risk: dict[str, Any]) -> dict[str, Any]:
    """Histogram of Monte Carlo cost with p50, p95 and CVaR95 as labelled rules."""
    bars = (
        alt.Chart(alt.Data(values=risk["histogram"]))
        .mark_bar(color="#9ecae1")
        .encode(
            x=alt.X(
                "bin_start:Q", bin="binned", title="cost over the horizon, USD", axis=alt.Axis(format="$,.3s")
            ),
            x2="bin_end:Q",
            y=alt.Y("count:Q", title="scenarios"),
            tooltip=[
                alt.Tooltip("bin_start:Q", format="$,.0f"),
                alt.Tooltip("bin_end:Q", format="$,.0f"),
                "count:Q",
            ],
        )
    )
    marks = [
        {"name": "p50", "usd": risk["p50_usd"]},
        {"name": "p95", "usd": risk["p95_usd"]},
        {"name": "CVaR95", "usd": risk["cvar95_usd"]},
    ]
    rule_base = alt.Chart(alt.Data(values=marks))
    colour = alt.Color(
        "name:N",
        title=None,
        scale=alt.Scale(domain=["p50", "p95", "CVaR95"], range=["#2ca02c", "#ff7f0e", "#d62728"]),
    )
    rules = rule_base.mark_rule(strokeWidth=2).encode(x="usd:Q", color=colour)
    text = rule_base.mark_text(angle=270, align="left", dx=4, dy=-6, y=0, baseline="bottom").encode(
        x="usd:Q", text="name:N", color=colour
    )
    return _spec((bars + rules + text).properties(width=WIDTH, height=260, title="Monte Carlo cost"))


def monthly_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Chips held each month, stacked by provider."""
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_area()
        .encode(
            x=alt.X("month:Q", title="month", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("chips:Q", stack="zero", title="chips held"),
            color=alt.Color("provider:N"),
            tooltip=["month:Q", "provider:N", "chips:Q"],
        )
    )
    return _spec(chart.properties(width=WIDTH, height=260, title="capacity by provider"))


def accelerator_chart(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """$/Mtok per accelerator on a log axis, one colour per service; the plan's chips filled."""
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_point(size=80)
        .encode(
            x=alt.X("usd_per_mtok:Q", scale=alt.Scale(type="log"), title="USD per million tokens (log)"),
            y=alt.Y("accelerator:N", sort="x", title=None),
            color=alt.Color("service:N", legend=alt.Legend(title="service")),
            fill=alt.condition(
                "datum.in_plan",
                alt.Color("service:N", legend=alt.Legend(title="service")),
                alt.value("white"),
            ),
            tooltip=[
                "service:N",
                "accelerator:N",
                alt.Tooltip("usd_per_mtok:Q", format="$,.3f"),
                "in_plan:N",
            ],
        )
    )
    height = max(120, 18 * len({r["accelerator"] for r in rows}))
    return _spec(chart.properties(width=WIDTH, height=height, title="$/Mtok per accelerator"))


def deal_chart(alternatives: list[dict[str, Any]]) -> dict[str, Any]:
    """Expected cost, p50, p95 and CVaR of each alternative of ``polyfleet deal``, side by side."""
    measures = {"expected_usd": "expected", "p50_usd": "p50", "p95_usd": "p95", "cvar_usd": "CVaR"}
    rows = [
        {"alternative": a["alternative"], "deals": a["deals"], "measure": label, "usd": a[key]}
        for a in alternatives
        for key, label in measures.items()
    ]
    order = [a["alternative"] for a in alternatives]
    chart = (
        alt.Chart(alt.Data(values=rows))
        .mark_bar()
        .encode(
            x=alt.X("alternative:N", sort=order, title=None, axis=alt.Axis(labelAngle=-20)),
            xOffset=alt.XOffset("measure:N", sort=list(measures.values())),
            y=alt.Y("usd:Q", title="cost over the horizon, USD", axis=alt.Axis(format="$,.3s")),
            color=alt.Color("measure:N", sort=list(measures.values()), title=None),
            tooltip=["alternative:N", "deals:N", "measure:N", alt.Tooltip("usd:Q", format="$,.2f")],
        )
    )
    return _spec(chart.properties(width=WIDTH, height=260, title="should we sign? cost by alternative"))
