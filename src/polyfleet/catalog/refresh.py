"""Refresh a bundled catalog CSV from an import: a diff first, the file only when asked.

Every importer (SkyPilot offers, genai-prices / LiteLLM api offers, config.json model
cards) produces rows keyed like the bundled file.  ``refresh`` compares them with the rows
already there: new keys are *added*, keys whose compared fields differ are *changed*
(old -> new), and rows the importer *owns* (same source, a provider it covers) that the
new import lacks are *removed*.  Rows it does not own, the hand-curated ones, are kept as
they are.  ``render_diff`` prints the result; ``write_rows`` writes the merged file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from polyfleet.catalog.models import MONTHLY_FIELDS

Row = TypeVar("Row", bound=BaseModel)


@dataclass
class Change:
    """One row whose compared fields moved: ``fields`` maps name -> (old, new)."""

    key: str
    fields: dict[str, tuple[Any, Any]]


@dataclass
class Diff:
    """What an import changes in one catalog file, and the merged rows to write."""

    added: list[str] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # hand-curated rows: the import lacks them or is older
    rows: dict[str, BaseModel] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "changed": [
                {"id": c.key, "fields": {k: list(v) for k, v in c.fields.items()}} for c in self.changed
            ],
            "removed": self.removed,
            "kept": len(self.kept),
        }


def refresh(
    old: Mapping[str, BaseModel],
    new: Mapping[str, BaseModel],
    *,
    owned: Callable[[BaseModel], bool],
    compare: tuple[str, ...],
) -> Diff:
    """Merge ``new`` into ``old`` (both keyed by id): see the module docstring.

    ``owned(row)`` says whether an old row comes from this importer, so that its absence
    from ``new`` removes it; ``compare`` names the fields whose change is reported (the
    row is replaced whole either way, so its source and as_of follow the import).
    """
    diff = Diff()
    for key, row in old.items():
        if key in new:
            continue
        if owned(row):
            diff.removed.append(key)
        else:
            diff.kept.append(key)
            diff.rows[key] = row
    for key, row in new.items():
        before = old.get(key)
        if before is not None and _newer(before, row):
            diff.kept.append(key)  # curated after the import's source was taken
            diff.rows[key] = before
            continue
        if before is None:
            diff.added.append(key)
        else:
            moved = {
                name: (getattr(before, name), getattr(row, name))
                for name in compare
                if getattr(before, name) != getattr(row, name)
            }
            if moved:
                diff.changed.append(Change(key, moved))
        diff.rows[key] = row
    return diff


def keep_curated(imported: Row, bundled: Row, fields: Iterable[str], notes: str) -> Row:
    """``imported`` re-keyed onto the bundled row it refreshes: ``fields`` (its id and the curated
    facts a price list does not carry) come from ``bundled``; price, source and as_of stay the
    import's; ``notes`` replaces the import's notes (each importer says how they merge)."""
    return imported.model_copy(update={**{name: getattr(bundled, name) for name in fields}, "notes": notes})


def _newer(old: BaseModel, new: BaseModel) -> bool:
    """True when ``old``'s as_of is a later date than ``new``'s (a hand fix after the source)."""
    from polyfleet.catalog.staleness import as_of_date

    before, after = as_of_date(getattr(old, "as_of", "")), as_of_date(getattr(new, "as_of", ""))
    return before is not None and after is not None and before > after


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value == int(value):
        return str(int(value))
    return str(value)


def render_diff(diff: Diff, title: str) -> str:
    """The diff as plain lines: ``+ id``, ``~ id: field old -> new``, ``- id``."""
    lines = [
        f"{title}: {len(diff.added)} added, {len(diff.changed)} changed, {len(diff.removed)} removed, "
        f"{len(diff.kept)} hand-curated kept"
    ]
    lines += [f"+ {key}" for key in diff.added]
    for change in diff.changed:
        moved = "; ".join(
            f"{k} {_cell(a) or '-'} -> {_cell(b) or '-'}" for k, (a, b) in change.fields.items()
        )
        lines.append(f"~ {change.key}: {moved}")
    lines += [f"- {key}" for key in diff.removed]
    return "\n".join(lines) + "\n"


def csv_text(rows: Mapping[str, BaseModel], model: type[BaseModel]) -> str:
    """Rows as CSV with the record's fields as columns (spec-only monthly fields left out)."""
    columns = [f for f in model.model_fields if f not in MONTHLY_FIELDS]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows.values():
        writer.writerow({k: _cell(getattr(row, k)) for k in columns})
    return buffer.getvalue()


def read_rows(path: Path, model: type[BaseModel], key: str) -> dict[str, BaseModel]:
    """A catalog CSV's rows keyed by ``key`` (validated as in ``catalog.io``)."""
    from polyfleet.catalog.io import _csv_line, _csv_rows, _records

    text = path.read_text(encoding="utf-8")
    return {getattr(r, key): r for r in _records(model, _csv_rows(text, str(path)), str(path), _csv_line)}
