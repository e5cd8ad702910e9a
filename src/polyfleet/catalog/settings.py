"""The spec's ``catalog:`` field: which catalogs to load, and how old a row may be.

``catalog`` is ``bundled`` (default), ``none``, a list of entries (``bundled``,
``skypilot:DIR``, a catalog file), or a mapping with those entries under ``use`` and
``max_age_days`` (default 120): ``plan`` warns when the plan relies on rows older than
that, or on estimated rows (``--offline-ok`` silences it).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from polyfleet.catalog.staleness import MAX_AGE_DAYS


class CatalogSettings(BaseModel):
    """``catalog: {use: [bundled, extra.yaml], max_age_days: 90}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    use: Literal["bundled", "none"] | list[str] = "bundled"
    max_age_days: float = Field(MAX_AGE_DAYS, gt=0, description="rows older than this make plan warn")


def catalog_entries(value: str | list[str] | CatalogSettings) -> str | list[str]:
    """The entries of a spec's ``catalog`` field, whatever its form."""
    return value.use if isinstance(value, CatalogSettings) else value


def catalog_max_age_days(value: str | list[str] | CatalogSettings) -> float:
    """``catalog.max_age_days`` of a spec (the default when the field is not a mapping)."""
    return value.max_age_days if isinstance(value, CatalogSettings) else MAX_AGE_DAYS
