"""Every way to buy one model: per-token API offers and self-hosting on each accelerator.

All costs are **USD per million tokens, input and output blended** at one request mix
of ``input_tokens`` in and ``output_tokens`` out:

* an API offer: ``(input_tokens * usd_per_mtok_in + output_tokens * usd_per_mtok_out)
  / (input_tokens + output_tokens)``;
* self-hosting on an accelerator's cheapest offer (from
  :func:`polyfleet.perf.compare.compare_accelerators`): one request costs
  ``usd_per_chip_hour / (requests_per_s_per_chip * 3600)`` with
  ``requests_per_s_per_chip = output_tokens_per_s_per_chip / output_tokens``, and the
  blended price is that cost per request ``* 1e6 / (input_tokens + output_tokens)``
  (equivalently ``usd_per_mtok_out * output_tokens / (input_tokens + output_tokens)``).

Path kinds: ``direct`` (an api offer whose provider is the maker some other offer of the
same model ``resells``), ``reseller`` (an api offer with ``resells`` set), ``host`` (any
other api offer, e.g. open weights served per token) and ``self-hosted``.
"""

from __future__ import annotations

from typing import Any

from polyfleet.catalog.io import Catalog
from polyfleet.catalog.models import ModelCard
from polyfleet.errors import SpecError, did_you_mean
from polyfleet.perf.compare import SECONDS_PER_HOUR, compare_accelerators

PATH_KINDS = ("direct", "reseller", "host", "self-hosted")


def blended_usd_per_mtok(
    usd_per_mtok_in: float, usd_per_mtok_out: float, input_tokens: int, output_tokens: int
) -> float:
    """API price per million tokens, in and out blended at ``input_tokens``:``output_tokens``."""
    return (input_tokens * usd_per_mtok_in + output_tokens * usd_per_mtok_out) / (
        input_tokens + output_tokens
    )


def self_hosted_usd_per_mtok(
    usd_per_chip_hour: float, output_tokens_per_s_per_chip: float, input_tokens: int, output_tokens: int
) -> float:
    """Self-hosted price per million tokens, in and out blended (see the module docstring)."""
    requests_per_s_per_chip = output_tokens_per_s_per_chip / output_tokens
    usd_per_request = usd_per_chip_hour / (requests_per_s_per_chip * SECONDS_PER_HOUR)
    return usd_per_request * 1e6 / (input_tokens + output_tokens)


def _resolve(card_or_name: ModelCard | str, catalog: Catalog) -> tuple[str, ModelCard | None]:
    if isinstance(card_or_name, ModelCard):
        return card_or_name.name, card_or_name
    name = card_or_name
    card = catalog.models.get(name)
    if card is None and name not in catalog.api_models():
        known = sorted(set(catalog.models) | catalog.api_models())
        raise SpecError(f"unknown model {name!r}{did_you_mean(name, known)}", file="MODEL")
    return name, card


def buy_paths(
    card_or_name: ModelCard | str,
    catalog: Catalog,
    *,
    input_tokens: int = 1000,
    output_tokens: int = 200,
    tpot_ms: float | None = None,
    term: str = "on-demand",
) -> list[dict[str, Any]]:
    """One row per way to buy the model, cheapest first.

    Each row has ``kind, offer, provider, resells, accelerator, usd_per_mtok_blended,
    markup_ratio, markup_pct, notes``.  ``markup_ratio`` is the row's price over the
    cheapest row's (1.0 for the cheapest), ``markup_pct = (markup_ratio - 1) * 100``.
    Self-hosted rows exist only for a model card, on accelerators that meet the SLO and
    have a ``term`` offer; an unknown name raises :class:`SpecError`.
    """
    if input_tokens < 0 or output_tokens < 1:
        raise SpecError("need input_tokens >= 0 and output_tokens >= 1", file="--output-tokens")
    name, card = _resolve(card_or_name, catalog)
    apis = sorted((a for a in catalog.api_offers.values() if a.model == name), key=lambda a: a.id)
    makers = {a.resells for a in apis if a.resells}
    rows: list[dict[str, Any]] = []
    for api in apis:
        kind = "reseller" if api.resells else ("direct" if api.provider in makers else "host")
        rows.append(
            {
                "kind": kind,
                "offer": api.id,
                "provider": api.provider,
                "resells": api.resells,
                "accelerator": None,
                "usd_per_mtok_blended": blended_usd_per_mtok(
                    api.usd_per_mtok_in, api.usd_per_mtok_out, input_tokens, output_tokens
                ),
                "notes": f"${api.usd_per_mtok_in:g} in / ${api.usd_per_mtok_out:g} out per Mtok"
                + (f"; {api.tier}" if api.tier else ""),
            }
        )
    if card is not None:
        compared = compare_accelerators(
            card,
            catalog.accelerators,
            catalog.offers,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tpot_ms=tpot_ms,
            term=term,
        )
        for row in compared:
            if not row["feasible"] or row["usd_per_mtok_out"] is None:
                continue
            rows.append(
                {
                    "kind": "self-hosted",
                    "offer": row["offer"],
                    "provider": row["provider"],
                    "resells": "",
                    "accelerator": row["accelerator"],
                    "usd_per_mtok_blended": self_hosted_usd_per_mtok(
                        row["usd_per_chip_hour"],
                        row["output_tokens_per_s_per_chip"],
                        input_tokens,
                        output_tokens,
                    ),
                    "notes": (
                        f"{row['chips_per_replica']} x {row['accelerator']} per replica, "
                        f"batch {row['max_batch']}, "
                        f"${row['usd_per_chip_hour']:.2f}/chip-h ({term})"
                    ),
                }
            )
    rows.sort(key=lambda r: (r["usd_per_mtok_blended"], PATH_KINDS.index(r["kind"]), r["offer"]))
    cheapest = rows[0]["usd_per_mtok_blended"] if rows else None
    for row in rows:
        ratio = row["usd_per_mtok_blended"] / cheapest if cheapest else 1.0
        row["markup_ratio"] = ratio
        row["markup_pct"] = (ratio - 1.0) * 100.0
    return rows
