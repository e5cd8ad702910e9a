"""Tables that fit the terminal, and progress that only a terminal sees.

* Width: ``$COLUMNS`` when set, else the terminal's width when stdout is one, else 80
  columns; ``--wide`` (every table command) renders every column at its natural width.
* A table of many like columns (the months of a monthly plan; ``repeat_columns`` marks
  how many leading columns to repeat) is split into stacked tables that fit.
* A table wider than that drops its low-value columns first (a table's own
  ``drop_order``, a list of headers, else :data:`DROP_FIRST`), says which under the
  table, and rich wraps what is still too wide.
* Columns whose cells are all numbers (``$1.2k``, ``36.0%``, ``694 h``, ``-$482``) are
  right-aligned.
* Output for an encoding without box-drawing characters (a latin-1 terminal) uses ASCII
  boxes.
* :func:`working` shows a rich status on stderr while long work runs, only when stderr
  is a terminal: piped output never carries escape codes.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

#: width for ``--wide``: wide enough for any table polyfleet draws
WIDE_COLUMNS = 4000
DEFAULT_COLUMNS = 80

#: headers dropped first when a table has no ``drop_order`` of its own (lowest value first)
DROP_FIRST = (
    "as_of",
    "source",
    "notes",
    "confidence",
    "region",
    "stack",
    "avail",
    "chips/inst",
    "instance_type",
    "resells",
    "num_nodes",
    "reason",
)

_NUMBER = re.compile(
    r"^[-+x]?\$?-?[\d,]*\.?\d+(e[-+]?\d+)?\s*(%|[kMBT]|h|s|ms|months?|GB|TB/s|req/s|tok/s)?"
    r"(\s*\([^)]*\))?$"
)

_state = {"wide": False}


def set_wide(value: bool) -> None:
    """``--wide``: every column, at its natural width."""
    _state["wide"] = bool(value)


def is_wide() -> bool:
    return _state["wide"]


def terminal_columns(stream: Any = None) -> int:
    """``$COLUMNS``, else the terminal's width when ``stream`` (stdout) is one, else 80."""
    if is_wide():
        return WIDE_COLUMNS
    env = os.environ.get("COLUMNS", "")
    if env.strip().isdigit() and int(env) > 0:
        return int(env)
    stream = sys.stdout if stream is None else stream
    try:
        if stream.isatty():
            return shutil.get_terminal_size((DEFAULT_COLUMNS, 24)).columns
    except (AttributeError, ValueError, OSError):
        pass
    return DEFAULT_COLUMNS


def _encodes_boxes(stream: Any) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        "┏━┃│╇".encode(codecs.lookup(encoding).name)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def _tables(renderable: Any) -> Iterator[Table]:
    """Every table in a renderable tree (groups, grids of tables), outermost first."""
    if isinstance(renderable, Table):
        yield renderable
        for column in renderable.columns:
            for cell in column._cells:
                yield from _tables(cell)
    elif isinstance(renderable, Group):
        for part in renderable.renderables:
            yield from _tables(part)


def _plain(cell: Any) -> str | None:
    if isinstance(cell, str):
        return cell
    if isinstance(cell, Text):
        return cell.plain
    return None


def _align_numbers(table: Table) -> None:
    for column in table.columns:
        cells = [_plain(c) for c in column._cells]
        values = [c.strip() for c in cells if c is not None and c.strip() not in ("", "-")]
        if values and None not in cells and all(_NUMBER.match(v) for v in values):
            column.justify = "right"
            column.no_wrap = True  # a number is never cut: text columns give way instead
            column.min_width = max(len(v) for v in [*values, _header(column)])
        else:
            column.overflow = "fold"  # a long id folds onto the next line rather than losing its end
            column.no_wrap = False


def _header(column: Any) -> str:
    return _plain(column.header) or ""


def _fit(table: Table, console: Console) -> None:
    """Drop low-value columns until ``table`` fits the console; say which under it."""
    if not table.show_header:  # a layout grid, not a data table
        return
    order = list(getattr(table, "drop_order", None) or DROP_FIRST)
    hidden: list[str] = []
    unbounded = console.options.update_width(WIDE_COLUMNS)  # the natural width, not clamped
    while Measurement.get(console, unbounded, table).maximum > console.width:
        headers = [_header(c) for c in table.columns]
        victim = next((h for h in order if h in headers), None)
        if victim is None or len(table.columns) <= 2:
            break
        del table.columns[headers.index(victim)]
        hidden.append(victim)
    # still too wide even with text folded: drop from the right, keeping the first column
    while _narrowest(table, console) > console.width and len(table.columns) > 2:
        hidden.append(_header(table.columns[-1]))
        del table.columns[-1]
    if hidden:
        note = f"hidden to fit {console.width} columns: {', '.join(hidden)} (--wide shows all)"
        table.caption = f"{table.caption}\n{note}" if table.caption else note
        table.caption_justify = "left"


#: a text column folds down to this many characters before columns are dropped
_FOLD_MIN = 12


def _narrowest(table: Table, console: Console) -> int:
    """The table's width with text columns folded to ``_FOLD_MIN`` and numbers whole."""
    unbounded = console.options.update_width(WIDE_COLUMNS)
    edges = 2 if table.box is not None and table.show_edge else 0
    width = edges
    for column in table.columns:
        cells = [column.header, *column._cells]
        natural = max(Measurement.get(console, unbounded, c).maximum for c in cells if c is not None)
        width += (natural if column.no_wrap else min(natural, _FOLD_MIN)) + 2 * table.padding[1]
    return width + max(len(table.columns) - 1, 0) * (1 if table.box is not None else 0)


def _split(table: Table, console: Console) -> list[Table]:
    """A table of many like columns (months) too wide for the console, as stacked tables.

    The first ``table.repeat_columns`` columns (a marker set where the table is built) are
    repeated in each part; the rest are dealt out in order, as many as fit.
    """
    keep = getattr(table, "repeat_columns", 0)
    unbounded = console.options.update_width(WIDE_COLUMNS)
    if not keep or Measurement.get(console, unbounded, table).maximum <= console.width:
        return [table]
    key, rest = table.columns[:keep], table.columns[keep:]
    pad = 2 * table.padding[1]
    width = {id(c): _natural(c, console, unbounded) + pad for c in table.columns}
    rule = 1 if table.box is not None else 0
    edges = 2 if table.box is not None and table.show_edge else 0
    parts: list[Table] = []

    def fits(take: int) -> bool:
        part = _part(table, key, rest[:take], bool(parts))
        return Measurement.get(console, unbounded, part).maximum <= console.width

    while rest:
        # columns measured once each (a 60-month plan measured ~1,200 whole tables: a minute);
        # the sum is a guess, checked against the table's own measure and moved by one
        used = edges + sum(width[id(c)] for c in key)
        take = 0
        while take < len(rest) and used + width[id(rest[take])] + rule * (len(key) + take) <= console.width:
            used += width[id(rest[take])]
            take += 1
        take = max(take, 1)
        while take < len(rest) and fits(take + 1):
            take += 1
        while take > 1 and not fits(take):
            take -= 1
        parts.append(_part(table, key, rest[:take], bool(parts)))
        rest = rest[take:]
    return parts


def _natural(column: Any, console: Console, options: Any) -> int:
    """The widest cell (header included) of ``column`` unwrapped, in console cells."""
    cells = [column.header, *column._cells]
    return max(Measurement.get(console, options, c).maximum for c in cells if c is not None)


def _part(table: Table, key: list[Any], columns: list[Any], continued: bool) -> Table:
    title = table.title if not continued else f"{_plain(table.title) or ''} (continued)"
    part = Table(title=title, title_justify=table.title_justify, box=table.box)
    for column in [*key, *columns]:
        part.add_column(
            column.header, justify=column.justify, no_wrap=column.no_wrap, overflow=column.overflow
        )
        part.columns[-1].min_width = column.min_width
    for i, row in enumerate(table.rows):
        part.add_row(*[c._cells[i] for c in [*key, *columns]], end_section=row.end_section)
    return part


def _split_all(renderable: Any, console: Console) -> Any:
    """``renderable`` with every splittable table replaced by its stacked parts."""
    if isinstance(renderable, Table):
        parts = _split(renderable, console)
        return parts[0] if len(parts) == 1 else Group(*parts)
    if isinstance(renderable, Group):
        renderable.renderables[:] = [_split_all(r, console) for r in renderable.renderables]
    return renderable


def render_table(renderable: RenderableType, stream: Any = None) -> str:
    """Render for a person at the terminal's width (see the module docstring)."""
    stream = sys.stdout if stream is None else stream
    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=terminal_columns(stream),
        force_terminal=False,
        color_system=None,
        soft_wrap=False,
    )
    ascii_only = not _encodes_boxes(stream)
    for table in _tables(renderable):
        _align_numbers(table)
    if not is_wide():
        renderable = _split_all(renderable, console)
    for table in _tables(renderable):
        if not is_wide():
            _fit(table, console)
        if ascii_only and table.box is not None:
            table.box = box.ASCII
    console.print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().split("\n"))


@contextlib.contextmanager
def working(message: str, delay_s: float = 0.0, stream: Any = None) -> Iterator[None]:
    """A spinner with ``message`` on stderr while the block runs, after ``delay_s``.

    Only when stderr is a terminal: under a pipe, a file or a test runner nothing is
    written, so captured output never carries escape codes.
    """
    stream = sys.stderr if stream is None else stream
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if not tty:
        yield
        return
    console = Console(file=stream, stderr=True)
    status = console.status(message, spinner="dots")
    lock = threading.Lock()
    started = {"on": False, "done": False}

    def start() -> None:
        with lock:
            if not started["done"]:
                status.start()
                started["on"] = True

    timer = threading.Timer(delay_s, start) if delay_s > 0 else None
    if timer is None:
        start()
    else:
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
        with lock:
            started["done"] = True
            if started["on"]:
                status.stop()
