"""A wide month-by-month table split for the terminal (session-8 fuzz: a 60-month plan's table
took a minute to render, ~1,200 whole-table measures; the plan itself took 2 s)."""

from __future__ import annotations

import pytest
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from polyfleet.cli import _terminal


def _months_table(months: int, rows: int) -> Table:
    table = Table(title="capacity by month")
    table.add_column("offer", no_wrap=True)
    for m in range(months):
        table.add_column(f"m{m}", justify="right")
    for r in range(rows):
        table.add_row(f"offer-{r}-{'x' * (r % 7)}", *(f"{(r * 37 + m * 11) % 1000:,}" for m in range(months)))
    table.repeat_columns = 1  # type: ignore[attr-defined]
    return table


@pytest.mark.parametrize("width", [40, 80, 133])
def test_each_part_fits_and_takes_as_many_months_as_fit(monkeypatch, width):
    console = Console(width=width, file=None, force_terminal=False, color_system=None)
    unbounded = console.options.update_width(_terminal.WIDE_COLUMNS)
    measured: list[int] = []
    real_get = Measurement.get

    def counting(console_, options, renderable):
        if isinstance(renderable, Table):
            measured.append(1)
        return real_get(console_, options, renderable)

    monkeypatch.setattr(Measurement, "get", staticmethod(counting))
    table = _months_table(60, 30)
    parts = _terminal._split(table, console)
    whole_table_measures = len(measured)
    monkeypatch.setattr(Measurement, "get", staticmethod(real_get))
    assert [c.header for p in parts for c in p.columns[1:]] == [f"m{m}" for m in range(60)]
    for i, part in enumerate(parts):
        assert Measurement.get(console, unbounded, part).maximum <= width or len(part.columns) == 2
        if i + 1 < len(parts):  # maximal: one more month would not fit
            bigger = _terminal._part(
                table, table.columns[:1], [*part.columns[1:], parts[i + 1].columns[1]], i > 0
            )
            assert Measurement.get(console, unbounded, bigger).maximum > width
    assert whole_table_measures <= 3 * len(parts) + 1
