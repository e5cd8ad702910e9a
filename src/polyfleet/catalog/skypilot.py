"""Import offers from a SkyPilot price catalog (``skypilot-org/skypilot-catalog``).

``import_skypilot(DIR, accelerators)`` reads every ``<cloud>/vms.csv`` found under DIR
(DIR may be ``catalogs/v8`` or the repository root above it).  Columns are read by name,
since their order differs per cloud.  Each (instance type, region) becomes one on-demand
offer and, when ``SpotPrice`` is set, a separate spot offer; the per-chip price is the
instance price divided by ``AcceleratorCount``.  Rows that cannot become a sound offer
(no accelerator, fractional count, unmapped accelerator name, missing or zero price) are
returned in ``skipped`` with the reason; they are never used silently.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from polyfleet.catalog.io import Catalog
from polyfleet.catalog.models import MONTHLY_FIELDS, Accelerator, Offer
from polyfleet.catalog.skypilot_gcp import TPU_PLACEHOLDER_USD, attach_hosts, is_split, tpu_slice
from polyfleet.errors import SpecError
from polyfleet.yamlio import read_input

#: SkyPilot ``AcceleratorName`` -> polyfleet accelerator id.  Names not here are skipped
#: (e.g. A6000, RTX6000 (Ada/Turing), V100, Inferentia 1: no polyfleet accelerator record).
ACCELERATOR_IDS: dict[str, str] = {
    "H100": "nvidia-h100-sxm",
    "H100-SXM": "nvidia-h100-sxm",
    "H100-MEGA": "nvidia-h100-sxm",
    "H200": "nvidia-h200",
    "B200": "nvidia-b200",
    "GB200": "nvidia-gb200",
    "A100-80GB": "nvidia-a100-80gb",
    "A100": "nvidia-a100-40gb",
    "A100-40GB": "nvidia-a100-40gb",
    "L40S": "nvidia-l40s",
    "L4": "nvidia-l4",
    "A10G": "nvidia-a10g",
    "MI300X": "amd-mi300x",
    "MI325X": "amd-mi325x",
    "MI355X": "amd-mi355x",
    "MI350X": "amd-mi350x",
    "B300": "nvidia-b300",
    "GB300": "nvidia-gb300",
    "GH200": "nvidia-gh200",
    "A10": "nvidia-a10",
    "RTX-PRO-6000": "nvidia-rtx-pro-6000",
    "RTXPRO6000": "nvidia-rtx-pro-6000",
    "RTX-PRO-6000-BLACKWELL": "nvidia-rtx-pro-6000",
    "Trainium": "aws-trainium1",
    "Trainium1": "aws-trainium1",
    "Trainium2": "aws-trainium2",
    "Trainium3": "aws-trainium3",
    "Inferentia2": "aws-inferentia2",
}

#: Verda names multi-GPU A100 shapes after their total memory (``A100-80GB-640GB``).
_TOTAL_MEMORY_SUFFIX = re.compile(r"^(A100-(?:40|80)GB)-\d+GB$")
#: Defaults for available_instances (no published figure): marked as assumed.
AVAILABLE_INSTANCES = {"on-demand": 64, "spot": 32}
#: A per-chip price below this is a placeholder (bid floor), not a list price.
MIN_USD_PER_CHIP_HOUR = 0.05


class Skipped(NamedTuple):
    """A row (or one term of it) that did not become an offer."""

    file: str
    line: int
    reason: str


@dataclass
class ImportResult:
    """Offers keyed by id, and every row left out with its reason."""

    offers: dict[str, Offer] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)

    def counts(self) -> dict[tuple[str, str], int]:
        """Number of offers per (provider, term)."""
        out: dict[tuple[str, str], int] = {}
        for offer in self.offers.values():
            key = (offer.provider, offer.term)
            out[key] = out.get(key, 0) + 1
        return dict(sorted(out.items()))


def slug(text: str) -> str:
    """Lower-case ``[a-z0-9-]`` form of ``text``."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]+", "-", text.lower())).strip("-")


def accelerator_id(name: str, instance_type: str) -> str | None:
    """The polyfleet id for a SkyPilot accelerator name, or None when unmapped."""
    match = _TOTAL_MEMORY_SUFFIX.match(name)
    if match:
        name = match.group(1)
    acc = ACCELERATOR_IDS.get(name)
    if acc == "nvidia-h100-sxm" and name == "H100":
        low = instance_type.lower()
        if "pcie" in low:
            return "nvidia-h100-pcie"
        if "nvl" in low:
            return "nvidia-h100-nvl"
    return acc


def _source_md(directory: Path) -> Path | None:
    for folder in (directory, *list(directory.parents)[:2]):
        candidate = folder / "SOURCE.md"
        if candidate.is_file():
            return candidate
    return None


def _provenance(directory: Path) -> tuple[dict[str, str], str]:
    """Commit per catalog path and an as-of date from SOURCE.md, when there is one."""
    path = _source_md(directory)
    if path is None:
        return {}, ""
    text = path.read_text(encoding="utf-8", errors="replace")
    commits = dict(re.findall(r"\|\s*`([^`]+\.csv)`\s*\|\s*`([0-9a-f]{7,40})`", text))
    as_of = ""
    explicit = re.search(r"(?im)^\W*as[_ ]of\W*[:=]\W*(.+?)\W*$", text)
    if explicit:
        as_of = explicit.group(1).strip()
    else:
        snapshot = re.search(r"(\d{4}\s*[–-]\s*\d{4}|\d{4}-\d{2}(?:-\d{2})?) snapshots?", text)
        if snapshot:
            as_of = re.sub(r"\s*–\s*", "-", snapshot.group(1))
    return commits, as_of


def _price(value: str | None) -> float | None:
    try:
        price = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    if price is None or not math.isfinite(price):
        return None
    return price


@dataclass
class _Best:
    price: float
    line: int
    offer: dict
    rows: int = 1
    zones: list[str] = field(default_factory=list)


def _read_vms(
    path: Path,
    rel: str,
    cloud: str,
    accelerators: Mapping[str, Accelerator],
    source: str,
    as_of: str,
    result: ImportResult,
) -> None:
    best: dict[str, _Best] = {}
    try:  # read_input: a vms.csv that is a directory or a FIFO is one line, not a traceback or a hang
        text = read_input(path, "SkyPilot catalog CSV").decode("utf-8")
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError as exc:  # a damaged download: one line naming the file, not a traceback
        raise SpecError(
            f"not UTF-8 text (byte {exc.start}): expected a SkyPilot catalog CSV", file=str(path)
        ) from None
    except csv.Error as exc:
        raise SpecError(f"not a CSV: {exc}", file=str(path), line=reader.line_num or None) from None
    if any(is_split(row) for _, row in rows):  # GCP: accelerators priced apart from VMs
        merged = {line: (row, reason) for line, row, reason in attach_hosts(rows)}
    else:
        merged = {}
    for line, row in rows:

        def skip(reason: str, line: int = line) -> None:
            result.skipped.append(Skipped(rel, line, reason))

        if line in merged:
            row, reason = merged[line]
            if row is None:
                skip(reason)
                continue

        def cell(name: str, row: dict = row) -> str:
            return (row.get(name) or "").strip()

        instance = cell("InstanceType")
        name = cell("AcceleratorName")
        count_text = cell("AcceleratorCount")
        if not name or count_text in ("", "0", "0.0"):
            skip(f"{instance or '?'}: no accelerator (CPU-only instance)")
            continue
        count = _price(count_text)
        if count is None or count <= 0 or count != int(count):
            skip(f"{instance}: accelerator count {count_text!r} is not a positive whole number")
            continue
        chips = int(count)
        tpu = tpu_slice(name) if cell("_tpu") else None
        acc = tpu[0] if tpu else accelerator_id(name, instance)
        if acc is None:
            skip(f"{instance}: accelerator {name!r} has no polyfleet mapping")
            continue
        if acc not in accelerators:
            skip(f"{instance}: accelerator {name!r} maps to {acc!r}, which is not in the catalog")
            continue
        region = cell("Region") or "default"
        zone = cell("AvailabilityZone")
        for term, column in (("on-demand", "Price"), ("spot", "SpotPrice")):
            text = cell(column)
            if term == "spot" and text == "":
                continue  # no spot offer
            if text == "placeholder":
                skip(
                    f"{instance} {region} {zone} {term}: {column} {TPU_PLACEHOLDER_USD:g} is SkyPilot's "
                    "stand-in for an unpublished TPU v6e price (placeholder)"
                )
                continue
            price = _price(text)
            if price is None or price <= 0:
                skip(f"{instance} {region} {term}: missing or zero {column} {text!r}")
                continue
            per_chip = price / chips
            if per_chip < MIN_USD_PER_CHIP_HOUR:
                skip(
                    f"{instance} {region} {term}: {column} {price} is below "
                    f"${MIN_USD_PER_CHIP_HOUR}/chip-h (placeholder?)"
                )
                continue
            offer_id = slug(f"{cloud}-{instance}-{region}-{term}")
            notes = (
                f"SkyPilot {cloud} {instance}: ${price:g}/h for "
                + (f"the slice ({chips} chips)" if tpu else f"{chips}x {name}")
                + f"{' (spot, preemptible)' if term == 'spot' else ''};"
                + (
                    f" {cell('_host_note')}."
                    if cell("_host_note")
                    else " per-chip price includes the host share."
                )
            )
            fields = {
                "id": offer_id,
                "provider": cloud,
                "region": region,
                "accelerator": acc,
                "instance_type": instance,
                "term": term,
                "chips_per_instance": chips,
                "usd_per_chip_hour": per_chip,
                "available_instances": AVAILABLE_INSTANCES[term],
                "available_instances_assumed": True,
                "source": source,
                "as_of": as_of,
                "notes": notes,
            }
            seen = best.get(offer_id)
            if seen is None:
                best[offer_id] = _Best(price, line, fields, zones=[zone] if zone else [])
                continue
            seen.rows += 1
            if zone:
                seen.zones.append(zone)
            if price < seen.price:
                seen.price, seen.line, seen.offer = price, line, fields
    for offer_id, entry in best.items():
        fields = dict(entry.offer)
        if entry.rows > 1:
            where = f" ({', '.join(entry.zones)})" if entry.zones else ""
            fields["notes"] += f" Cheapest of {entry.rows} rows for this instance, region and term{where}."
        result.offers[offer_id] = Offer.model_validate(fields)


def import_skypilot(directory: Path, accelerators: Mapping[str, Accelerator]) -> ImportResult:
    """Offers from every ``<cloud>/vms.csv`` under ``directory`` (see the module docstring)."""
    directory = Path(directory)
    commits, as_of = _provenance(directory)
    result = ImportResult()
    seen_clouds: dict[str, str] = {}
    for path in sorted(directory.rglob("vms.csv")):
        rel = path.relative_to(directory).as_posix()
        cloud = slug(path.parent.name)
        if cloud in seen_clouds:
            result.skipped.append(Skipped(rel, 0, f"cloud {cloud!r} already read from {seen_clouds[cloud]}"))
            continue
        seen_clouds[cloud] = rel
        commit = next((c for p, c in commits.items() if path.as_posix().endswith(p)), "")
        source = f"SkyPilot catalog {rel}" + (f" @ {commit}" if commit else "")
        _read_vms(path, rel, cloud, accelerators, source, as_of, result)
    return result


def load_skypilot_catalog(directory: Path, accelerators: Mapping[str, Accelerator]) -> Catalog:
    """The imported offers as a catalog (what a spec's ``catalog: [bundled, "skypilot:DIR"]`` merges)."""
    return Catalog(offers=import_skypilot(directory, accelerators).offers)


def offers_csv(offers: Mapping[str, Offer]) -> str:
    """Offers as CSV text with the columns of the bundled ``catalog/data/offers.csv``."""
    columns = [f for f in Offer.model_fields if f not in MONTHLY_FIELDS]  # spec-only, not CSV columns
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for offer in offers.values():
        row = offer.model_dump(exclude=set(MONTHLY_FIELDS))
        writer.writerow({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in row.items()})
    return buffer.getvalue()
