"""Fold a SkyPilot import into the bundled ``offers.csv``: one row per shape and term.

A SkyPilot catalog lists every region and host variant (Lambda: 24 instance types x 17
regions; Nebius: one L40S in 13 vCPU/RAM sizes); the bundled file keeps one row per
*shape* (provider, accelerator, chips per instance) and term: the cheapest instance type
and region (ties: the first by name), so a plan sees each shape once.  A shape the bundled
file already has keeps its id, region label and instance type (examples and specs name
those ids) and takes the imported price, source, as_of and notes; a new shape gets the
importer's id.  Per provider, chip and term only the end sizes are kept (``end_sizes``).
"""

from __future__ import annotations

from collections.abc import Mapping

from polyfleet.catalog.models import Offer
from polyfleet.catalog.refresh import keep_curated

#: fields of a bundled offer that an import keeps (examples and specs name the id and region)
CURATED_OFFER_FIELDS = ("id", "region", "instance_type", "available_instances", "available_instances_assumed")


def _shape(offer: Offer) -> tuple[str, str, int, str]:
    return (offer.provider, offer.accelerator, offer.chips_per_instance, offer.term)


def fold_regions(imported: Mapping[str, Offer]) -> dict[tuple[str, str, int, str], Offer]:
    """The cheapest instance type and region of each shape and term, with a note saying so."""
    groups: dict[tuple[str, str, int, str], list[Offer]] = {}
    for offer in imported.values():
        groups.setdefault(_shape(offer), []).append(offer)
    out = {}
    for shape, offers in sorted(groups.items()):
        best = min(offers, key=lambda o: (o.usd_per_chip_hour, o.instance_type, o.region))
        if len(offers) > 1:
            regions = sorted({o.region for o in offers})
            types = sorted({o.instance_type for o in offers})
            best = best.model_copy(
                update={
                    "notes": f"{best.notes} Cheapest of {len(offers)} rows: regions {', '.join(regions)}"
                    + (f"; instance types {', '.join(types)}" if len(types) > 1 else "")
                    + "."
                }
            )
        out[shape] = best
    return out


def end_sizes(shapes: dict[tuple[str, str, int, str], Offer]) -> dict[tuple[str, str, int, str], Offer]:
    """Per (provider, chip, term): the smallest and largest instance, and any cheaper per chip.

    The smallest gives a plan its granularity, the largest its tensor-parallel reach; a
    middle size at the same per-chip price adds solver columns but no option (the plan
    for the 2026-12 catalog took 28 s with every size, 2 s with the end sizes, same cost
    within 0.05 %).  A middle size cheaper per chip than both ends is kept.
    """
    groups: dict[tuple[str, str, str], list[tuple[tuple[str, str, int, str], Offer]]] = {}
    for shape, offer in shapes.items():
        groups.setdefault((shape[0], shape[1], shape[3]), []).append((shape, offer))
    out = {}
    for members in groups.values():
        small = min(members, key=lambda m: m[0][2])
        large = max(members, key=lambda m: m[0][2])
        floor = min(small[1].usd_per_chip_hour, large[1].usd_per_chip_hour)
        for shape, offer in members:
            if shape in (small[0], large[0]) or offer.usd_per_chip_hour < floor - 1e-9:
                out[shape] = offer
    return out


def onto_bundled(imported: Mapping[str, Offer], bundled: Mapping[str, Offer]) -> dict[str, Offer]:
    """Imported offers keyed as the bundled file would key them (see the module docstring)."""
    existing = {_shape(o): o for o in bundled.values()}
    out: dict[str, Offer] = {}
    for shape, offer in end_sizes(fold_regions(imported)).items():
        old = existing.get(shape)
        if old is not None:
            moved = offer.region != old.region
            notes = f"{offer.notes} (imported region {offer.region})" if moved else offer.notes
            offer = keep_curated(offer, old, CURATED_OFFER_FIELDS, notes)
        out[offer.id] = offer
    return out
