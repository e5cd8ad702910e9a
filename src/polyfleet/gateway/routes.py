"""A plan's allocations as a routes file: one model per inference/api workload, weighted by share.

``routes_from_plan(plan, mapping)`` is pure: ``plan`` is ``Plan.to_dict()`` (or the JSON
of ``polyfleet plan --format json``) and ``mapping`` the parsed mapping file, which says
where each bought offer is reachable::

    routes: {listen: {port: 8080}, ledger: "sqlite:///usage.db"}   # copied to the top (optional)
    models: {chat: llama-3.1-70b}          # workload -> model name clients ask for (default: workload)
    backends:
      own-mi300x: {url: "http://10.0.0.5:8000/v1", api_key_env: OWN_KEY,
                   usd_per_mtok_in: 0.20, usd_per_mtok_out: 0.60, max_concurrency: 256}
      chat/nebius-h200: {url: "https://…/v1"}     # workload/offer: wins over the offer alone

Each model follows the plan (``policy: plan``): every backend has a ``role``,

- ``committed``: an inference allocation (replicas the plan rents for the horizon, paid
  whether used or not), filled first up to ``planned_requests_per_s`` (the allocation's
  requests/s at peak);
- ``overflow``: an api allocation (per-token capacity the plan buys beyond the replicas),
  cheapest first;
- ``fallback``: an api offer survival relies on when a provider is lost
  (``survival[p].relies_on`` entries of kind ``api-fallback``) that the plan does not
  otherwise buy: taken only when nothing else is available.

A backend's ``weight`` and ``planned_share`` are its allocation's ``share`` of the
workload's demand, normalised over the workload so they sum to 1 (fallbacks: 0);
``provider`` comes from the plan.  Prices: the mapping's, else for api offers the
offer's own input and output prices as the plan carries them (``usd_per_mtok_in`` /
``usd_per_mtok_out``; a plan from before they were written falls back to the blended
allocation usd / tokens bought, the same for input and output); self-hosted inference
allocations need prices in the mapping, because a plan carries no token counts for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from polyfleet.errors import SpecError
from polyfleet.gateway.config import Backend, build_routes
from polyfleet.yamlio import read_yaml

_SERVED = ("inference", "api")
_FROM_PLAN = {"weight", "provider", "role", "planned_requests_per_s", "planned_share"}


def _entry(mapping: dict[str, Any], workload: str, offer: str, file: str, why: str = "") -> dict[str, Any]:
    backends = mapping.get("backends") or {}
    if not isinstance(backends, dict):
        raise SpecError("expected a mapping of offer id -> {url: …}", file=file, path="backends")
    entry = backends.get(f"{workload}/{offer}", backends.get(offer))
    if entry is None:
        raise SpecError(
            f"no entry for offer {offer!r} (workload {workload!r}{why}); add backends.{offer}: {{url: …}}",
            file=file,
            path="backends",
        )
    if not isinstance(entry, dict) or "url" not in entry:
        raise SpecError("expected a mapping with at least 'url'", file=file, path=f"backends.{offer}")
    unknown = set(entry) - set(Backend.model_fields) | (set(entry) & _FROM_PLAN)
    if unknown:
        field = sorted(unknown)[0]
        why = "comes from the plan" if field in _FROM_PLAN else "is not a backend field"
        raise SpecError(f"{field!r} {why}", file=file, path=f"backends.{offer}.{field}")
    return entry


def _blended_price(workload: dict[str, Any], alloc: dict[str, Any], horizon: float) -> float | None:
    demand = workload.get("demand") or {}
    mtok = (demand.get("mtok_in_per_month") or 0) + (demand.get("mtok_out_per_month") or 0)
    bought = mtok * float(alloc.get("share") or 0) * horizon
    return round(float(alloc["usd"]) / bought, 6) if bought > 0 and alloc.get("usd") is not None else None


def _own_prices(alloc: dict[str, Any]) -> dict[str, float] | None:
    """An api offer's own input and output prices, as the plan carries them (None in older plans)."""
    usd_in, usd_out = alloc.get("usd_per_mtok_in"), alloc.get("usd_per_mtok_out")
    if usd_in is None or usd_out is None:
        return None
    return {"usd_per_mtok_in": float(usd_in), "usd_per_mtok_out": float(usd_out)}


def _fallbacks(workload: dict[str, Any], bought: set[str]) -> list[dict[str, Any]]:
    """The api offers survival relies on (over every lost provider) that the plan does not buy."""
    priced = {
        f["offer"]: f for f in workload.get("api_fallbacks") or [] if isinstance(f, dict) and "offer" in f
    }
    out: dict[str, dict[str, Any]] = {}
    for detail in (workload.get("survival") or {}).values():
        for relied in (detail or {}).get("relies_on") or []:
            offer = relied.get("offer")
            if relied.get("kind") == "api-fallback" and offer and offer not in bought and offer not in out:
                out[offer] = {**relied, **priced.get(offer, {})}
    return [out[o] for o in sorted(out)]


def routes_from_plan(
    plan: dict[str, Any], mapping: dict[str, Any], *, mapping_file: str = "<mapping>"
) -> dict[str, Any]:
    """The routes document (a dict, ready for YAML) serving every inference and api workload of ``plan``."""
    if not isinstance(mapping, dict):
        raise SpecError("expected a mapping with a 'backends' section", file=mapping_file, line=1)
    if plan.get("status") not in (None, "optimal", "feasible"):
        raise SpecError(f"the plan is {plan.get('status')!r}: there is nothing to route", path="status")
    names = mapping.get("models") or {}
    horizon = float(plan.get("horizon_months") or 1)
    models = []
    for workload in plan.get("workloads", []):
        if workload.get("kind") not in _SERVED or not workload.get("allocations"):
            continue
        allocations = [a for a in workload["allocations"] if float(a.get("share") or 0) > 0]
        total = sum(float(a["share"]) for a in allocations)
        backends = []
        for alloc in allocations:
            entry = dict(_entry(mapping, workload["name"], alloc["offer"], mapping_file))
            backend: dict[str, Any] = {"name": entry.pop("name", alloc["offer"]), "url": entry.pop("url")}
            share = round(float(alloc["share"]) / total, 6)
            is_api = workload["kind"] == "api" or (
                alloc.get("accelerator") is None and not alloc.get("replicas")
            )
            backend["weight"] = share
            backend["provider"] = alloc.get("provider", "")
            backend["role"] = "overflow" if is_api else "committed"
            backend["planned_share"] = share
            if not is_api and alloc.get("requests_per_s") is not None:
                backend["planned_requests_per_s"] = float(alloc["requests_per_s"])
            if "usd_per_mtok_in" not in entry and "usd_per_mtok_out" not in entry:
                prices = _own_prices(alloc) if is_api else None
                if prices is None and is_api:
                    blended = _blended_price(workload, alloc, horizon)
                    prices = (
                        None if blended is None else {"usd_per_mtok_in": blended, "usd_per_mtok_out": blended}
                    )
                if prices is None:
                    raise SpecError(
                        f"offer {alloc['offer']!r} (workload {workload['name']!r}) needs usd_per_mtok_in and "
                        "usd_per_mtok_out: the plan has no token counts for self-hosted capacity",
                        file=mapping_file,
                        path=f"backends.{alloc['offer']}",
                    )
                entry.update(prices)
            backends.append({**backend, **entry})
        for fallback in _fallbacks(workload, {a["offer"] for a in allocations}):
            why = ", a fallback survival relies on when a provider is lost"
            entry = dict(_entry(mapping, workload["name"], fallback["offer"], mapping_file, why))
            backend = {"name": entry.pop("name", fallback["offer"]), "url": entry.pop("url")}
            backend |= {
                "weight": 0.0,
                "provider": fallback.get("provider", ""),
                "role": "fallback",
                "planned_share": 0.0,
            }
            if "usd_per_mtok_in" not in entry and "usd_per_mtok_out" not in entry:
                prices = _own_prices(fallback)
                if prices is None:
                    raise SpecError(
                        f"fallback offer {fallback['offer']!r} (workload {workload['name']!r}) needs "
                        "usd_per_mtok_in and usd_per_mtok_out: the plan does not carry its prices",
                        file=mapping_file,
                        path=f"backends.{fallback['offer']}",
                    )
                entry.update(prices)
            backends.append({**backend, **entry})
        name = names.get(workload["name"], workload["name"])
        models.append({"name": name, "policy": "plan", "backends": backends})
    if not models:
        raise SpecError(
            "the plan has no inference or api workload with allocations to route", path="workloads"
        )
    document = {**(mapping.get("routes") or {}), "models": models}
    build_routes(document, file=f"routes from {mapping_file}")  # the result must load as it is
    return document


def routes_yaml(plan: dict[str, Any], mapping_path: str | Path) -> str:
    """Read the mapping file at ``mapping_path`` and return the routes file for ``plan`` as YAML text."""
    mapping, _ = read_yaml(Path(mapping_path), what="backend mapping")
    return yaml.safe_dump(routes_from_plan(plan, mapping, mapping_file=str(mapping_path)), sort_keys=False)
