"""Read the bundled catalog CSVs and extra catalog files into a ``Catalog``."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache, partial
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from polyfleet.catalog.models import Accelerator, ApiOffer, Egress, ModelCard, Offer
from polyfleet.errors import SpecError
from polyfleet.yamlio import read_input, read_yaml

R = TypeVar("R", bound=BaseModel)

#: catalog section name -> (record model, key field)
SECTIONS: dict[str, tuple[type[BaseModel], str]] = {
    "accelerators": (Accelerator, "id"),
    "offers": (Offer, "id"),
    "api_offers": (ApiOffer, "id"),
    "models": (ModelCard, "name"),
    "egress": (Egress, "provider"),
}


@dataclass
class Catalog:
    """Everything one may run on or buy, keyed by id (model cards by name)."""

    accelerators: dict[str, Accelerator] = field(default_factory=dict)
    offers: dict[str, Offer] = field(default_factory=dict)
    api_offers: dict[str, ApiOffer] = field(default_factory=dict)
    models: dict[str, ModelCard] = field(default_factory=dict)
    egress: dict[str, Egress] = field(default_factory=dict)  # by provider
    #: api offers set aside as retired (``catalog.lifecycle.without_retired``); never planned
    retired_api_offers: dict[str, ApiOffer] = field(default_factory=dict)

    def merged(self, other: Catalog) -> Catalog:
        """A new catalog with ``other``'s entries added; same ids are replaced by ``other``'s.

        A replacing api offer that states no ``retired`` date keeps the one it replaces
        (restating a bundled row to add a rate limit does not bring a retired model back).
        """
        api_offers = dict(other.api_offers)
        for key, row in other.api_offers.items():
            old = self.api_offers.get(key) or self.retired_api_offers.get(key)
            if old is not None and old.retired and not row.retired:
                api_offers[key] = row.model_copy(update={"retired": old.retired})
        retired = {k: v for k, v in self.retired_api_offers.items() if k not in api_offers}
        return Catalog(
            accelerators={**self.accelerators, **other.accelerators},
            offers={**self.offers, **other.offers},
            api_offers={**self.api_offers, **api_offers},
            models={**self.models, **other.models},
            egress={**self.egress, **other.egress},
            retired_api_offers={**retired, **other.retired_api_offers},
        )

    def api_models(self) -> set[str]:
        """Models that some api offer sells."""
        return {a.model for a in self.api_offers.values()}


def _csv_rows(text: str, source: str = "catalog CSV") -> list[dict[str, Any]]:
    """CSV text to dicts: empty cells dropped (None), true/false to bool.

    A row the csv module refuses (a cell past its 131,072-character field limit) is a
    one-line ``SpecError`` naming ``source`` and the line, not a ``csv.Error`` traceback.
    """
    rows = []
    reader = csv.DictReader(text.splitlines())
    try:
        for raw in reader:
            row: dict[str, Any] = {}
            for key, value in raw.items():
                if key is None or value is None or value == "":
                    continue
                low = value.strip().lower()
                row[key] = {"true": True, "false": False}.get(low, value)
            rows.append(row)
    except csv.Error as exc:
        raise SpecError(f"malformed CSV: {exc}", file=source, line=reader.line_num + 1) from None
    return rows


def _records(
    model: type[R],
    rows: Iterable[dict[str, Any]],
    source: str,
    lines: Callable[[int], int | None],
    section: str | None = None,
) -> list[R]:
    """Validate rows; the first bad one becomes a SpecError at ``lines(row index)``.

    With ``section`` (a YAML catalog file) the path names the row too: ``offers[0].id``.
    """
    out = []
    for index, row in enumerate(rows):
        try:
            out.append(model.model_validate(row))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            if section is not None:
                loc = f"{section}[{index}]" + (f".{loc}" if loc else "")
            raise SpecError(first["msg"], file=source, line=lines(index), path=loc or None) from exc
    return out


def _csv_line(index: int) -> int:
    return index + 2  # header is line 1


def _keyed(records: list[Any], key: str) -> dict[str, Any]:
    return {getattr(r, key): r for r in records}


@lru_cache(maxsize=1)
def load_bundled() -> Catalog:
    """The catalog shipped with polyfleet (sourced CSVs in ``polyfleet/catalog/data``)."""
    base = resources.files("polyfleet.catalog") / "data"
    parts = {}
    for section, (model, key) in SECTIONS.items():
        name = f"{section}.csv"
        text = (base / name).read_text(encoding="utf-8")
        parts[section] = _keyed(_records(model, _csv_rows(text), f"catalog/data/{name}", _csv_line), key)
    return Catalog(**parts)


def _yaml_line(lines: dict, section: str, index: int) -> int | None:
    return lines.get((section, index))


def csv_section(path: Path) -> str | None:
    """The section a catalog CSV holds: ``offers.csv`` or ``<anything>-offers.csv`` / ``.offers.csv``."""
    for section in sorted(SECTIONS, key=len, reverse=True):
        if path.stem == section or path.stem.endswith((f"-{section}", f".{section}")):
            return section
    return None


def load_catalog_file(path: Path) -> Catalog:
    """An extra catalog: a YAML file with any of the sections, or a CSV named after one."""
    try:
        text = read_input(path, "catalog file").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError("cannot read catalog file: not UTF-8 text", file=str(path)) from exc
    except OSError as exc:
        raise SpecError(f"cannot read catalog file: {exc.strerror}", file=str(path)) from exc
    if path.suffix == ".csv":
        section = csv_section(path)
        if section is None:
            raise SpecError(
                f"a catalog CSV must be named one of {', '.join(s + '.csv' for s in SECTIONS)}"
                " (or end in -<that name>, e.g. skypilot-offers.csv)",
                file=str(path),
            )
        model, key = SECTIONS[section]
        rows = _csv_rows(text, str(path))
        return Catalog(**{section: _keyed(_records(model, rows, str(path), _csv_line), key)})
    data, lines = read_yaml(path, "catalog file")
    data = data or {}
    if not isinstance(data, dict):
        raise SpecError("expected a mapping of catalog sections", file=str(path))
    unknown = set(data) - set(SECTIONS)
    if unknown:
        raise SpecError(
            f"unknown section {sorted(unknown)[0]!r}; expected {', '.join(SECTIONS)}", file=str(path)
        )
    parts = {}
    for section, rows in data.items():
        model, key = SECTIONS[section]
        if rows is not None and not isinstance(rows, list):  # 5 or true: not iterable; abc: its letters
            raise SpecError(
                f"expected a list of rows, one mapping each, got {rows!r:.40}",
                file=str(path),
                line=lines.get((section,)),
                path=section,
            )
        rows_lines = partial(_yaml_line, lines, section)
        parts[section] = _keyed(_records(model, rows or [], str(path), rows_lines, section), key)
    return Catalog(**parts)
