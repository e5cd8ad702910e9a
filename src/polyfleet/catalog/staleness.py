"""How old a catalog row is, and which old or estimated rows a plan relies on.

``as_of`` is free text in the CSVs: ``2026-07-29``, ``2026-08``, ``<=2026-08``,
``undated (<=2026-08-21 snapshot)``, ``<=2025 (old snapshot)``.  ``as_of_date`` reads the
first date in it, at the start of the period it names (``2026-08`` -> 2026-08-01), so an
age is never understated; text without a year is ``None`` (age unknown, treated as old).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from typing import Any

from polyfleet.catalog.io import Catalog

#: the default for ``catalog.max_age_days``: rows older than this make ``plan`` warn
MAX_AGE_DAYS = 120
_DATE = re.compile(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")


def as_of_date(text: str) -> date | None:
    """The first date in an ``as_of`` cell (start of its period), or None."""
    match = _DATE.search(text or "")
    if match is None:
        return None
    year, month, day = match.groups()
    try:
        return date(int(year), int(month or 1), int(day or 1))
    except ValueError:
        return None


def age_days(text: str, today: date) -> int | None:
    """Days from ``as_of`` to ``today``; None when the cell has no date."""
    day = as_of_date(text)
    return None if day is None else (today - day).days


def _used_ids(plan: dict[str, Any] | Iterable[dict[str, Any]]) -> list[str]:
    """Offer ids a plan buys or allocates (``purchases`` and every workload's allocations)."""
    if isinstance(plan, dict):
        items = list(plan.get("purchases", []))
        for workload in plan.get("workloads", []):
            items += workload.get("allocations", [])
    else:
        items = list(plan)
    return list(dict.fromkeys(str(item.get("offer", "")) for item in items if item.get("offer")))


def _row(catalog: Catalog, offer_id: str) -> Any:
    return catalog.offers.get(offer_id) or catalog.api_offers.get(offer_id)


def estimated_rows_used(
    plan: dict[str, Any] | Iterable[dict[str, Any]], catalog: Catalog
) -> list[dict[str, str]]:
    """The estimated rows (``estimate: true``) a plan uses: ``[{offer, basis}]``, in plan order.

    ``plan`` is a plan's ``to_dict()`` or a list of its allocations (dicts with ``offer``).
    """
    out = []
    for offer_id in _used_ids(plan):
        row = _row(catalog, offer_id)
        if row is not None and getattr(row, "estimate", False):
            out.append({"offer": offer_id, "basis": row.estimate_basis or "no basis stated"})
    return out


def stale_rows_used(
    plan: dict[str, Any] | Iterable[dict[str, Any]], catalog: Catalog, max_age_days: float, today: date
) -> list[dict[str, Any]]:
    """Rows a plan uses whose ``as_of`` is older than ``max_age_days`` (or has no date)."""
    out = []
    for offer_id in _used_ids(plan):
        row = _row(catalog, offer_id)
        if row is None:
            continue
        age = age_days(row.as_of, today)
        if age is None or age > max_age_days:
            out.append({"offer": offer_id, "as_of": row.as_of, "age_days": age})
    return out


def plan_warnings(
    plan: dict[str, Any],
    catalog: Catalog,
    *,
    models: Iterable[str],
    max_age_days: float = MAX_AGE_DAYS,
    today: date | None = None,
    offline_ok: bool = False,
) -> list[str]:
    """Lines ``plan`` prints on stderr: retired models a spec names, old rows, estimated rows.

    ``offline_ok`` (``plan --offline-ok``) keeps only the retired-model lines.
    """
    from polyfleet.catalog.lifecycle import retired_models_named

    today = today or date.today()
    lines = [f"warning: {m}" for m in retired_models_named(catalog, list(models))]
    if offline_ok:
        return lines
    stale = stale_rows_used(plan, catalog, max_age_days, today)
    if stale:
        named = ", ".join(
            f"{s['offer']} ({s['as_of'] or 'undated'}"
            + (f", {s['age_days']} days)" if s["age_days"] is not None else ")")
            for s in stale
        )
        lines.append(
            f"warning: the plan relies on {len(stale)} row(s) older than {max_age_days:g} days: {named}"
        )
    estimates = estimated_rows_used(plan, catalog)
    if estimates:
        named = "; ".join(f"{e['offer']} ({e['basis']})" for e in estimates)
        lines.append(
            f"warning: the plan uses {len(estimates)} estimated price(s), not published ones: {named}"
        )
    return lines
