"""Retired api offers: set aside before planning, and named when a spec asks for one.

A row's ``retired`` date is the first day its host no longer serves the model (the
provider's deprecation page, in the row's ``source``).  ``without_retired`` moves such rows
out of ``api_offers`` into ``retired_api_offers``, so nothing downstream (plan, deals,
paths) can pick them, while ``retired_message`` can still say what happened and what to
use instead ("claude-sonnet-4.5 retired 2026-11-30 on anthropic; did you mean
claude-sonnet-4.6 or claude-sonnet-5?").
"""

from __future__ import annotations

import dataclasses
import re
from datetime import date

from polyfleet.catalog.io import Catalog
from polyfleet.catalog.models import ApiOffer

_VERSION = re.compile(r"^(?P<family>.*?)-?(?P<version>\d+(?:\.\d+)*)$")


def is_retired(offer: ApiOffer, on: date) -> bool:
    """True when ``offer`` has a retired date on or before ``on``."""
    return bool(offer.retired) and date.fromisoformat(offer.retired) <= on


def without_retired(catalog: Catalog, on: date) -> Catalog:
    """``catalog`` with the api offers retired by ``on`` moved to ``retired_api_offers``."""
    active = {k: a for k, a in catalog.api_offers.items() if not is_retired(a, on)}
    gone = {k: a for k, a in catalog.api_offers.items() if k not in active}
    if not gone:
        return catalog
    return dataclasses.replace(
        catalog, api_offers=active, retired_api_offers={**catalog.retired_api_offers, **gone}
    )


def _family_version(model: str) -> tuple[str, tuple[int, ...]] | None:
    match = _VERSION.match(model)
    if match is None:
        return None
    return match["family"], tuple(int(p) for p in match["version"].split("."))


def successors(catalog: Catalog, model: str, limit: int = 2) -> list[str]:
    """Models still sold in ``model``'s family (same name, newer version), oldest first."""
    own = _family_version(model)
    if own is None:
        return []
    family, version = own
    newer = []
    for name in {a.model for a in catalog.api_offers.values()}:
        other = _family_version(name)
        if other is not None and other[0] == family and other[1] > version:
            newer.append((other[1], name))
    return [name for _, name in sorted(newer)[:limit]]


def retired_message(catalog: Catalog, model: str) -> str | None:
    """One line naming where ``model`` is retired and what to use instead; None if it is not.

    ``catalog`` is a catalog after ``without_retired``: its retired rows are set aside.
    """
    rows = [a for a in catalog.retired_api_offers.values() if a.model == model]
    if not rows:
        return None
    by_date: dict[str, list[str]] = {}
    for row in sorted(rows, key=lambda a: (a.retired, a.provider)):
        providers = by_date.setdefault(row.retired, [])
        if row.provider not in providers:
            providers.append(row.provider)
    where = "; ".join(f"retired {day} on {', '.join(p)}" for day, p in by_date.items())
    still = sorted({a.provider for a in catalog.api_offers.values() if a.model == model})
    message = f"{model} {where}"
    if still:
        message += f" (still sold by {', '.join(still)})"
    names = successors(catalog, model)
    if names:
        message += f"; did you mean {' or '.join(names)}?"
    return message


def retired_models_named(catalog: Catalog, models: list[str]) -> list[str]:
    """``retired_message`` for each named model with retired rows, in order, once each."""
    out = []
    for model in dict.fromkeys(models):
        message = retired_message(catalog, model)
        if message is not None:
            out.append(message)
    return out
