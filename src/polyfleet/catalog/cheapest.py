"""The cheapest place to run one task: ``N`` accelerators of one kind for ``H`` hours.

This is the question SkyPilot's optimizer answers for a single task
(``resources: {accelerators: H100:8}``, optionally ``use_spot``), asked of a polyfleet
catalog: which offer (provider, region, instance type, term) gives an instance with exactly
``count`` accelerators of that kind, at the lowest price for ``hours`` x ``num_nodes``.
Like SkyPilot, the count is per instance and must match exactly (``H100:8`` is never two
4-GPU instances); ``exact=False`` relaxes it to "at least ``count``".

The accelerator is a polyfleet id (``nvidia-h100-sxm``) or a SkyPilot name (``H100``,
``A100-80GB``, case-insensitive).  By default (``names="chip"``) a SkyPilot name means the
polyfleet chip(s) it stands for, wherever and however a cloud names them: ``H100`` is the
SXM, PCIe and NVL parts, and ``A100-80GB`` includes Verda's ``A100-80GB-640GB`` shape.
``names="skypilot"`` matches SkyPilot's own way instead: the offer's SkyPilot accelerator
name (kept by the importer) must equal the request, case-insensitively, so the answer is
the one SkyPilot's optimizer gives on the same catalog, even where a cheaper offer of the
same chip goes by another name.

The offers are turned once into column arrays (:class:`OfferTable`) so that each query is
a handful of vectorised numpy comparisons, not a Python loop over the catalog.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from polyfleet.catalog.io import Catalog, load_bundled, load_catalog_file
from polyfleet.catalog.models import Offer
from polyfleet.catalog.skypilot import ACCELERATOR_IDS, accelerator_id, load_skypilot_catalog
from polyfleet.errors import SpecError, did_you_mean

#: Relative price difference under which two offers tie for cheapest.
TIE_RTOL = 1e-9
_REQUEST = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?::\s*(\d+)\s*)?$")


def skypilot_names() -> dict[str, frozenset[str]]:
    """SkyPilot accelerator name (lower case) -> the polyfleet accelerator ids it covers."""
    from polyfleet.report.skypilot_task import SKYPILOT_ACCELERATORS

    names: dict[str, set[str]] = {}
    for acc_id, name in SKYPILOT_ACCELERATORS.items():
        names.setdefault(name.lower(), set()).add(acc_id)
    for name, acc_id in ACCELERATOR_IDS.items():
        names.setdefault(name.lower(), set()).add(acc_id)
    return {name: frozenset(ids) for name, ids in names.items()}


def parse_request(text: str) -> tuple[str, int]:
    """``"H100:8"`` -> ``("H100", 8)``; a bare name means one accelerator, as in SkyPilot."""
    match = _REQUEST.match(text)
    if match is None or (match.group(2) is not None and int(match.group(2)) < 1):
        raise SpecError(
            f"expected ACCELERATOR[:COUNT] with a whole COUNT >= 1 (e.g. H100:8), got {text!r}",
            file="ACCELERATOR",
        )
    return match.group(1), int(match.group(2) or 1)


def resolve_accelerator(name: str, known: Iterable[str]) -> frozenset[str]:
    """The polyfleet accelerator ids ``name`` stands for (see the module docstring).

    Raises :class:`SpecError` naming the closest known names when ``name`` is neither a
    polyfleet id in ``known`` nor a SkyPilot name polyfleet maps.
    """
    known = set(known)
    if name in known:
        return frozenset({name})
    by_name = skypilot_names()
    ids = by_name.get(name.lower())
    if ids:
        return ids
    mapped = accelerator_id(name.upper(), "")  # e.g. Verda's A100-80GB-640GB
    if mapped is not None:
        return frozenset({mapped})
    choices = sorted(known | {n.upper() for n in by_name})
    raise SpecError(f"unknown accelerator {name!r}{did_you_mean(name, choices)}", file="ACCELERATOR")


@dataclass(frozen=True)
class Choice:
    """One way to run the task: an offer, how many instances, and what it costs."""

    offer: str
    provider: str
    region: str
    instance_type: str
    accelerator: str
    term: str
    chips_per_instance: int
    num_nodes: int
    usd_per_instance_hour: float
    hours: float
    usd_total: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        return asdict(self)


class OfferTable:
    """A catalog's offers as column arrays, built once and queried many times.

    Columns: accelerator (as an integer code), chips per instance, term flags, instances
    available and price per instance-hour.  Building costs one pass over the offers; each
    :meth:`cheapest` is then vectorised over all of them.
    """

    def __init__(self, offers: Mapping[str, Offer]) -> None:
        self.offers: list[Offer] = list(offers.values())
        self.codes: dict[str, int] = {}
        acc = [self.codes.setdefault(o.accelerator, len(self.codes)) for o in self.offers]
        self.accelerator = np.asarray(acc, dtype=np.int64)
        self.chips = np.asarray([o.chips_per_instance for o in self.offers], dtype=np.int64)
        self.available = np.asarray([o.available_instances for o in self.offers], dtype=np.int64)
        terms = np.asarray([o.term for o in self.offers], dtype=object)
        self.spot = terms == "spot"
        self.on_demand = terms == "on-demand"
        per_chip = np.asarray([o.usd_per_chip_hour for o in self.offers], dtype=np.float64)
        self.usd_per_instance_hour = per_chip * self.chips
        self.skypilot_name = np.asarray([_skypilot_name(o).lower() for o in self.offers], dtype=object)

    def __len__(self) -> int:
        return len(self.offers)

    def cheapest(
        self,
        accelerator: str,
        count: int,
        hours: float,
        *,
        use_spot: bool = False,
        num_nodes: int = 1,
        exact: bool = True,
        names: Literal["chip", "skypilot"] = "chip",
    ) -> list[Choice]:
        """See :func:`cheapest_offers`."""
        if count < 1 or num_nodes < 1:
            raise SpecError(f"count and num_nodes must be >= 1, got {count} and {num_nodes}", file="request")
        if not hours > 0:
            raise SpecError(f"hours must be > 0, got {hours}", file="request")
        mask = self._accelerator_mask(accelerator, names)
        mask &= (self.chips == count) if exact else (self.chips >= count)
        mask &= self.spot if use_spot else self.on_demand
        mask &= self.available >= num_nodes
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return []
        price = self.usd_per_instance_hour[rows]
        best = price.min()
        rows = rows[price <= best * (1 + TIE_RTOL)]
        choices = [self._choice(int(i), hours, num_nodes) for i in rows]
        return sorted(choices, key=lambda c: (c.usd_total, c.provider, c.region, c.instance_type, c.offer))

    def most_available(
        self,
        accelerator: str,
        count: int,
        *,
        use_spot: bool = False,
        exact: bool = True,
        names: Literal["chip", "skypilot"] = "chip",
    ) -> int:
        """The most ``available_instances`` of one offer of that size and term (0: none offered).

        Why: when ``cheapest`` finds nothing although the size is offered, ``--nodes`` asked
        for more instances than any one offer has.
        """
        mask = self._accelerator_mask(accelerator, names)
        mask &= (self.chips == count) if exact else (self.chips >= count)
        mask &= self.spot if use_spot else self.on_demand
        return int(self.available[mask].max()) if mask.any() else 0

    def counts_for(
        self, accelerator: str, *, use_spot: bool = False, names: Literal["chip", "skypilot"] = "chip"
    ) -> list[int]:
        """Instance sizes (accelerators per instance) offered for ``accelerator`` and term."""
        mask = self._accelerator_mask(accelerator, names)
        mask &= self.spot if use_spot else self.on_demand
        return sorted({int(c) for c in self.chips[mask]})

    def _accelerator_mask(self, accelerator: str, names: str) -> np.ndarray:
        """Rows whose accelerator is ``accelerator`` in the ``names`` sense (module docstring)."""
        if names == "skypilot":
            mask = self.skypilot_name == accelerator.lower()
            if not mask.any():
                resolve_accelerator(accelerator, self.codes)  # raises for a name neither side knows
            return mask
        if names != "chip":
            raise SpecError(f"names must be 'chip' or 'skypilot', got {names!r}", file="request")
        ids = resolve_accelerator(accelerator, self.codes)
        return np.isin(self.accelerator, [self.codes[i] for i in ids if i in self.codes])

    def _choice(self, row: int, hours: float, num_nodes: int) -> Choice:
        offer = self.offers[row]
        hourly = float(self.usd_per_instance_hour[row])
        return Choice(
            offer=offer.id,
            provider=offer.provider,
            region=offer.region,
            instance_type=offer.instance_type,
            accelerator=offer.accelerator,
            term=offer.term,
            chips_per_instance=offer.chips_per_instance,
            num_nodes=num_nodes,
            usd_per_instance_hour=hourly,
            hours=hours,
            usd_total=hourly * hours * num_nodes,
        )


def cheapest_offers(
    offers: Mapping[str, Offer] | OfferTable,
    accelerator: str,
    count: int,
    hours: float,
    use_spot: bool = False,
    *,
    num_nodes: int = 1,
    exact: bool = True,
    names: Literal["chip", "skypilot"] = "chip",
) -> list[Choice]:
    """The cheapest way(s) to get ``num_nodes`` instances of ``count`` x ``accelerator``.

    Returns every offer tied at the lowest price (within :data:`TIE_RTOL`; a provider often
    lists the same price in many regions), cheapest first, or ``[]`` when no offer fits.
    ``use_spot`` picks spot offers only, else on-demand only (as SkyPilot's ``use_spot``);
    reserved terms are never chosen.  Offers with fewer ``available_instances`` than
    ``num_nodes`` are left out.  Pass an :class:`OfferTable` to ask many questions of one
    catalog without rebuilding the arrays.
    """
    table = offers if isinstance(offers, OfferTable) else OfferTable(offers)
    return table.cheapest(
        accelerator, count, hours, use_spot=use_spot, num_nodes=num_nodes, exact=exact, names=names
    )


def _skypilot_name(offer: Offer) -> str:
    """The name SkyPilot files ``offer``'s accelerator under: its own for imported offers."""
    from polyfleet.report.skypilot_task import SKYPILOT_ACCELERATORS, imported_skypilot_name

    return imported_skypilot_name(offer) or SKYPILOT_ACCELERATORS.get(offer.accelerator, "")


def load_catalog_entries(entries: Iterable[str], base: Path | None = None) -> Catalog:
    """A catalog from entries as in a spec's ``catalog:`` list, merged in order.

    ``bundled``, ``skypilot:DIR`` (imported with the accelerators merged so far) or a catalog
    file (YAML, or ``offers.csv`` / ``*-offers.csv``); relative paths are taken from ``base``.
    """
    base = base or Path.cwd()
    catalog = Catalog()
    for entry in entries:
        if entry == "bundled":
            catalog = catalog.merged(load_bundled())
            continue
        if not entry.removeprefix("skypilot:").strip():  # '' or 'skypilot:' would read the cwd
            raise SpecError(
                f"expected bundled, skypilot:DIR or a catalog file, got {entry!r}", file="--catalog"
            )
        if entry.startswith("skypilot:"):
            folder = Path(entry.removeprefix("skypilot:"))
            folder = folder if folder.is_absolute() else base / folder
            if not folder.is_dir():
                raise SpecError(f"SkyPilot catalog folder not found: {folder}", file=entry)
            accelerators = catalog.accelerators or load_bundled().accelerators
            catalog = catalog.merged(load_skypilot_catalog(folder, accelerators))
            continue
        path = Path(entry) if Path(entry).is_absolute() else base / entry
        if not path.is_file():
            raise SpecError(f"catalog file not found: {path}", file=entry)
        catalog = catalog.merged(load_catalog_file(path))
    return catalog
