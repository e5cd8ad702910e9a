"""The provider x chip matrix: where each chip can be rented, at its cheapest $/chip-h."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from polyfleet.catalog.models import Offer


def coverage_matrix(offers: Iterable[Offer], term: str | None = None) -> dict[str, Any]:
    """``{providers, chips, cells: {provider: {chip: cheapest usd_per_chip_hour or None}}}``.

    ``term`` None takes every term; estimated rows count (they are marked in the catalog).
    Providers and chips are sorted; a cell is None where the provider sells no such chip.
    """
    best: dict[tuple[str, str], float] = {}
    for offer in offers:
        if term is not None and offer.term != term:
            continue
        key = (offer.provider, offer.accelerator)
        if key not in best or offer.usd_per_chip_hour < best[key]:
            best[key] = offer.usd_per_chip_hour
    providers = sorted({p for p, _ in best})
    chips = sorted({c for _, c in best})
    cells = {p: {c: best.get((p, c)) for c in chips} for p in providers}
    return {"providers": providers, "chips": chips, "cells": cells}
