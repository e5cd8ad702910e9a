"""GCP's split pricing in SkyPilot's catalog: accelerators priced apart from their host VM.

In ``gcp/vms.csv`` a GPU is a row with no ``InstanceType``: its ``Price`` is the GPUs'
alone, and the VM that carries them is another row.  SkyPilot (``sky/catalog/
gcp_catalog.py``, ``list_accelerators``) prices a GPU offer as the GPU row plus the
cheapest VM of the machine family GCP attaches that GPU to (A100 -> ``a2-highgpu-Ng``,
H100 -> ``a3-highgpu-Ng``, L4 -> ``g2-standard-*`` …) in the same region *and zone*, on
demand and spot alike.  ``attach_hosts`` does the same, so each GPU row becomes one row
of the usual shape (instance type = the host VM, price = GPU + VM).

A TPU row (``tpu-v6e-4``, ``AcceleratorCount`` 1) is priced alone: the slice's price.
Its chips follow Google's naming: v5e (``v5litepod``) and v6e count chips, v2/v3/v4/v5p
count TensorCores (two per chip), so ``tpu-v5p-8`` is 4 chips.  SkyPilot's fetcher writes
700.0 (``TPU_V6E_MAX_PRICE`` in ``sky/catalog/data_fetchers/fetch_gcp.py``) where GCP
published no v6e price, "so the failover will go to the region with precise pricing info
first": such a price is a placeholder and is skipped, never used.
"""

from __future__ import annotations

import math
import re

#: GPU name -> count -> host VM types GCP attaches it to (SkyPilot's
#: ``_ACC_INSTANCE_TYPE_DICTS``); other GPUs (T4, V100 …) have no polyfleet record.
HOSTS: dict[str, dict[int, tuple[str, ...]]] = {
    "A100": {n: (f"a2-highgpu-{n}g",) for n in (1, 2, 4, 8)} | {16: ("a2-megagpu-16g",)},
    "A100-80GB": {n: (f"a2-ultragpu-{n}g",) for n in (1, 2, 4, 8)},
    "L4": {
        1: ("g2-standard-4", "g2-standard-8", "g2-standard-12", "g2-standard-16", "g2-standard-32"),
        2: ("g2-standard-24",),
        4: ("g2-standard-48",),
        8: ("g2-standard-96",),
    },
    "H100": {n: (f"a3-highgpu-{n}g",) for n in (1, 2, 4, 8)},
    "H100-MEGA": {8: ("a3-megagpu-8g",)},
    "H200": {8: ("a3-ultragpu-8g",)},
    "B200": {8: ("a4-highgpu-8g",)},
}
#: TPU generation in SkyPilot's names -> (polyfleet accelerator id, TensorCores per chip)
TPUS: dict[str, tuple[str, int]] = {
    "v5litepod": ("google-tpu-v5e", 1),
    "v5e": ("google-tpu-v5e", 1),
    "v6e": ("google-tpu-v6e", 1),
    "v5p": ("google-tpu-v5p", 2),
    "7x": ("google-tpu7x", 2),  # tpu7x-N: N TensorCores, 2 per Ironwood chip (as v5p)
    "v7x": ("google-tpu7x", 2),
}
#: SkyPilot's stand-in for a v6e price GCP did not publish
TPU_PLACEHOLDER_USD = 700.0
_TPU = re.compile(r"^tpu-?([a-z0-9]+)-(\d+)$")

Row = dict[str, str]


def _num(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def is_split(row: Row) -> bool:
    """A row priced apart from any VM: an accelerator with no instance type."""
    return not (row.get("InstanceType") or "").strip() and bool((row.get("AcceleratorName") or "").strip())


def tpu_slice(name: str) -> tuple[str, int] | None:
    """(polyfleet accelerator id, chips) of a TPU slice name like ``tpu-v5p-8``, or None."""
    match = _TPU.match(name)
    if not match or match.group(1) not in TPUS:
        return None
    acc, cores_per_chip = TPUS[match.group(1)]
    cores = int(match.group(2))
    if cores % cores_per_chip:
        return None
    return acc, cores // cores_per_chip


def _hosts_by_zone(rows: list[tuple[int, Row]]) -> dict[tuple[str, str, str], Row]:
    """The priced VM rows, keyed by (instance type, region, zone); the cheapest of duplicates.

    As SkyPilot does: rows without a ``Price`` are dropped, then the cheapest is taken.
    """
    out: dict[tuple[str, str, str], Row] = {}
    for _, row in rows:
        instance = (row.get("InstanceType") or "").strip()
        price = _num(row.get("Price"))
        if not instance or price is None:
            continue
        key = (instance, (row.get("Region") or "").strip(), (row.get("AvailabilityZone") or "").strip())
        if key not in out or price < (_num(out[key].get("Price")) or math.inf):
            out[key] = row
    return out


def attach_hosts(rows: list[tuple[int, Row]]) -> list[tuple[int, Row | None, str]]:
    """Each split row as a whole-instance row, or None and why it cannot be one.

    Returns ``(line, row, reason)`` for every split row in ``rows``: GPU rows get the
    cheapest host VM of their family in the same region and zone added to both prices;
    TPU rows are kept as priced, with ``AcceleratorCount`` set to the slice's chips.
    """
    hosts = _hosts_by_zone(rows)
    out: list[tuple[int, Row | None, str]] = []
    for line, row in rows:
        if not is_split(row):
            continue
        name = row["AcceleratorName"].strip()
        region = (row.get("Region") or "").strip()
        zone = (row.get("AvailabilityZone") or "").strip()
        where = f"{name} {region} {zone}"
        if name.startswith("tpu-"):
            out.append((line, *_tpu_row(row, name, where)))
            continue
        count = _num(row.get("AcceleratorCount"))
        families = HOSTS.get(name, {})
        if count is None or count != int(count) or int(count) not in families:
            out.append((line, None, f"{where}: no host VM rule for {count!r} x {name} (GPU priced alone)"))
            continue
        candidates = [hosts[key] for host in families[int(count)] if (key := (host, region, zone)) in hosts]
        if not candidates:
            names = ", ".join(families[int(count)])
            out.append((line, None, f"{where}: no priced host VM ({names}) in the zone"))
            continue
        host = min(candidates, key=lambda h: _num(h.get("Price")) or math.inf)
        merged = dict(row)
        merged["InstanceType"] = host["InstanceType"].strip()
        merged["Price"] = _sum(row.get("Price"), host.get("Price"))
        merged["SpotPrice"] = _sum(row.get("SpotPrice"), host.get("SpotPrice"))
        merged["_host_note"] = (
            f"GPU ${_num(row.get('Price')) or 0:g}/h + host VM {merged['InstanceType']} "
            f"${_num(host.get('Price')) or 0:g}/h (GCP prices them apart)"
        )
        out.append((line, merged, ""))
    return out


def _sum(a: str | None, b: str | None) -> str:
    """Sum of two price cells, or empty when either is missing (as SkyPilot's NaN sum)."""
    x, y = _num(a), _num(b)
    return "" if x is None or y is None else repr(x + y)


def _tpu_row(row: Row, name: str, where: str) -> tuple[Row | None, str]:
    slice_ = tpu_slice(name)
    if slice_ is None:
        return None, f"{where}: TPU slice {name!r} has no polyfleet mapping"
    _, chips = slice_
    merged = dict(row)
    merged["InstanceType"] = name
    merged["AcceleratorCount"] = str(chips)
    merged["_tpu"] = "1"
    for column in ("Price", "SpotPrice"):
        if _num(row.get(column)) == TPU_PLACEHOLDER_USD:
            merged[column] = "placeholder"
    merged["_host_note"] = (
        f"TPU slice priced whole (no separate VM); {name} is {chips} chip{'s' if chips > 1 else ''}"
    )
    return merged, ""
