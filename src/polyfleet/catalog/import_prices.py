"""Api offers from public price lists: pydantic/genai-prices ``data.json`` and LiteLLM's
``model_prices_and_context_window.json``.

Both list thousands of models; polyfleet imports the ones it plans with: models some
bundled api offer or model card already names, plus any given with ``models``.  Names are
brought to polyfleet's form (``claude-sonnet-4-5`` -> ``claude-sonnet-4.5``,
``meta-llama/llama-4-maverick-17b-128e-instruct`` -> ``llama-4-maverick``) by
``polyfleet_model``; providers by ``GENAI_PROVIDERS`` / ``LITELLM_PROVIDERS``.  An imported
row takes the id of the bundled row with the same provider and model when there is
exactly one, so a refresh reports a price change rather than a new row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from polyfleet.catalog.models import ApiOffer
from polyfleet.catalog.refresh import keep_curated
from polyfleet.catalog.skypilot import slug
from polyfleet.errors import SpecError
from polyfleet.yamlio import loads_json, read_input

#: genai-prices provider id -> polyfleet provider (``google`` serves Gemini; Claude there is Vertex)
GENAI_PROVIDERS = {
    "anthropic": "anthropic",
    "aws": "aws",
    "azure": "azure",
    "google": "google",
    "openai": "openai",
    "groq": "groq",
    "together": "together",
    "fireworks": "fireworks",
    "deepseek": "deepseek",
    "moonshotai": "moonshot",
    "zhipuai": "zai",
    "openrouter": "openrouter",
    "mistral": "mistral",
    "x-ai": "xai",
    "cerebras": "cerebras",
    "novita": "novita",
}
#: LiteLLM ``litellm_provider`` -> polyfleet provider
LITELLM_PROVIDERS = {
    "anthropic": "anthropic",
    "bedrock": "aws",
    "bedrock_converse": "aws",
    "vertex_ai-anthropic_models": "gcp",
    "azure_ai": "azure",
    "openai": "openai",
    "gemini": "google",
    "groq": "groq",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "deepseek": "deepseek",
    "moonshot": "moonshot",
    "openrouter": "openrouter",
    "deepinfra": "deepinfra",
    "cerebras": "cerebras",
}
#: model makers whose own api rows make another host a reseller (``resells``)
MAKERS = {"claude": "anthropic", "gpt-5": "openai", "gpt-6": "openai", "gemini": "google",
          "deepseek": "deepseek", "kimi": "moonshot", "glm": "zai"}  # fmt: skip
#: hosts whose chips are their own (``vendor``)
CHIP_HOSTS = {"groq": "groq", "cerebras": "cerebras"}
#: first matching pattern (on the lower-cased, prefix-stripped id) -> polyfleet model name
ALIASES: list[tuple[str, str]] = [
    (r"^llama-?4-maverick", "llama-4-maverick"),
    (r"^llama-?4-scout", "llama-4-scout"),
    (r"^llama-?3\.3-70b", "llama-3.3-70b"),
    (r"^(meta-)?llama-?3\.1-405b", "llama-3.1-405b"),
    (r"^(meta-)?llama-?3\.1-70b", "llama-3.1-70b"),
    (r"^(meta-)?llama-?3\.1-8b", "llama-3.1-8b"),
    (r"^gpt-oss-(120b|20b)", r"gpt-oss-\1"),
    (r"^qwen3-coder-480b", "qwen3-coder-480b"),
    (r"^qwen3-235b-a22b$", "qwen3-235b-a22b"),
    (r"^qwen3-32b", "qwen3-32b"),
    (r"^kimi-k2-instruct$", "kimi-k2"),
    (r"^deepseek-(v[\d.]+(?:-flash|-pro)?)$", r"deepseek-\1"),
]
_PREFIX = re.compile(r"^(?:global|us|eu|apac|jp|au|meta|openai|qwen|anthropic|deepseek|moonshotai?|zai)\.")
_SUFFIX = re.compile(r"(?:-v\d+:\d+|-\d+:\d+|:\d+|@\d+|-instruct(?:-basic)?|-latest)$")


def polyfleet_model(raw: str) -> str:
    """polyfleet's name for a price list's model id (see the module docstring)."""
    name = raw.lower().rsplit("/", 1)[-1]
    for _ in range(2):
        name = _PREFIX.sub("", name)
        name = _SUFFIX.sub("", name)
    name = re.sub(r"(\d)p(\d)", r"\1.\2", re.sub(r"^llama-v(\d)", r"llama-\1", name))
    name = re.sub(r"^llama(\d)-(\d)-", r"llama-\1.\2-", name)
    name = re.sub(r"^(claude-(?:opus|sonnet|haiku|fable|mythos))-(\d+)-(\d+)$", r"\1-\2.\3", name)
    name = re.sub(r"^claude-(\d+)-(\d+)-(opus|sonnet|haiku)$", r"claude-\3-\1.\2", name)
    for pattern, target in ALIASES:
        if re.search(pattern, name):
            return re.sub(pattern + ".*$", target, name)
    return name


@dataclass
class PriceImport:
    """Imported api offers keyed by id, and what was left out (id, reason)."""

    offers: dict[str, ApiOffer] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _base(value: Any) -> float | None:
    """A price: a number, or ``{"base": n, "tiers": [...]}`` (the first tier)."""
    if isinstance(value, dict):
        value = value.get("base")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _current(prices: Any, on: date) -> tuple[dict, list[str]]:
    """The price entry in force on ``on``, and notes on the others (scheduled changes)."""
    if isinstance(prices, dict):
        return prices, []
    entries = [p for p in prices if isinstance(p, dict)]
    best, notes = {}, []
    best_start = ""
    for entry in entries:
        constraint = entry.get("constraint") or {}
        start = str(constraint.get("start_date", ""))
        if set(constraint) - {"start_date"}:
            notes.append(f"other prices under {sorted(constraint)}")
            continue
        if start and date.fromisoformat(start[:10]) > on:
            p = entry.get("prices", {})
            notes.append(f"from {start[:10]}: {_base(p.get('input_mtok'))} / {_base(p.get('output_mtok'))}")
            continue
        if not best or start >= best_start:
            best, best_start = entry.get("prices", {}), start
    return best, notes


def _row(
    *,
    provider: str,
    model: str,
    raw_id: str,
    usd_in: float,
    usd_out: float,
    source: str,
    as_of: str,
    notes: str,
    tier: str = "",
) -> ApiOffer:
    maker = next((m for prefix, m in MAKERS.items() if model.startswith(prefix)), "")
    return ApiOffer(
        id=slug(f"{provider}-{model}") if "." not in model else f"{provider}-{model}",
        provider=provider,
        model=model,
        usd_per_mtok_in=usd_in,
        usd_per_mtok_out=usd_out,
        resells=maker if maker and maker != provider else "",
        vendor=CHIP_HOSTS.get(provider, ""),
        tier=tier or raw_id,
        source=source,
        as_of=as_of,
        notes=notes,
    )


def _wanted(model: str, models: set[str] | None) -> bool:
    return models is None or model in models


def read_genai_prices(
    path: Path, *, models: set[str] | None, on: date, source: str = "", as_of: str = ""
) -> PriceImport:
    """Api offers from a genai-prices ``data.json`` (``models`` None: every model)."""
    data = _load_json(path)
    if not isinstance(data, list):
        raise SpecError("expected genai-prices data.json: a list of providers", file=str(path))
    out = PriceImport()
    for i, provider_entry in enumerate(data):
        if not isinstance(provider_entry, dict):
            raise _shape(path, f"[{i}]", "a provider object", provider_entry)
        gp = provider_entry.get("id", "")
        provider = GENAI_PROVIDERS.get(gp) if isinstance(gp, str) else None
        if provider is None:
            continue
        entries = provider_entry.get("models", [])
        if not isinstance(entries, list):
            raise _shape(path, f"[{i}].models", "a list of models", entries)
        for j, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise _shape(path, f"[{i}].models[{j}]", "a model object", entry)
            try:
                _genai_entry(out, entry, gp, provider, models, on, source, as_of)
            except (TypeError, AttributeError, ValueError) as exc:  # a price or date of another shape
                what = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
                raise SpecError(
                    f"not a genai-prices model entry ({what})", file=str(path), path=f"[{i}].models[{j}]"
                ) from None
    return out


def _shape(path: Path, where: str, expected: str, value: Any) -> SpecError:
    """A price list entry of the wrong shape, named by its JSON path."""
    return SpecError(f"expected {expected}, got {value!r:.40}", file=str(path), path=where)


def _genai_entry(
    out: PriceImport,
    entry: dict[str, Any],
    gp: str,
    provider: str,
    models: set[str] | None,
    on: date,
    source: str,
    as_of: str,
) -> None:
    """One genai-prices model entry into ``out`` (or its ``skipped``)."""
    raw = str(entry.get("id", ""))
    model = polyfleet_model(raw)
    host = "gcp" if provider == "google" and model.startswith("claude") else provider
    if not _wanted(model, models):
        return
    key = f"{gp}:{raw}"
    if entry.get("deprecated"):
        out.skipped.append((key, "deprecated in the price list"))
        return
    prices, scheduled = _current(entry.get("prices", {}), on)
    usd_in, usd_out = _base(prices.get("input_mtok")), _base(prices.get("output_mtok"))
    if usd_in is None or usd_out is None:
        out.skipped.append((key, "no input/output price per Mtok"))
        return
    extra = [f"genai-prices {gp} '{raw}'"]
    cache = _base(prices.get("cache_read_mtok"))
    if cache:
        extra.append(f"cached input ${cache:g}/Mtok")
    if isinstance(prices.get("input_mtok"), dict):
        extra.append("tiered: base (first) tier taken")
    extra += scheduled
    row = _row(
        provider=host,
        model=model,
        raw_id=raw,
        usd_in=usd_in,
        usd_out=usd_out,
        source=source or f"genai-prices data.json ({gp})",
        as_of=as_of,
        notes="; ".join(extra) + ".",
    )
    _keep_cheapest(out, row, key)


def read_litellm(path: Path, *, models: set[str] | None, source: str = "", as_of: str = "") -> PriceImport:
    """Api offers from LiteLLM's ``model_prices_and_context_window.json``."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise SpecError("expected LiteLLM's model_prices_and_context_window.json: a mapping", file=str(path))
    out = PriceImport()
    for raw, entry in sorted(data.items()):
        if not isinstance(entry, dict) or entry.get("mode", "chat") != "chat":
            continue
        provider = LITELLM_PROVIDERS.get(str(entry.get("litellm_provider", "")))
        if provider is None:
            continue
        model = polyfleet_model(raw)
        if not _wanted(model, models):
            continue
        usd_in, usd_out = entry.get("input_cost_per_token"), entry.get("output_cost_per_token")
        if (
            not isinstance(usd_in, int | float)
            or not isinstance(usd_out, int | float)
            or usd_in <= 0
            or usd_out <= 0
        ):
            out.skipped.append((raw, "no input/output cost per token"))
            continue
        try:
            row = _row(
                provider=provider,
                model=model,
                raw_id=raw,
                usd_in=round(usd_in * 1e6, 6),
                usd_out=round(usd_out * 1e6, 6),
                source=source or "LiteLLM model_prices_and_context_window.json",
                as_of=as_of,
                notes=f"LiteLLM '{raw}' ({entry.get('litellm_provider')}).",
            )
        except ValidationError as exc:  # a cost past any float (1e308 per token x 1e6): inf
            raise SpecError(
                f"not a LiteLLM price entry ({exc.errors()[0]['msg']})", file=str(path), path=raw
            ) from None
        _keep_cheapest(out, row, raw)
    return out


def _keep_cheapest(out: PriceImport, row: ApiOffer, key: str) -> None:
    """One row per (provider, model): several list entries map to it (dated ids, aliases)."""
    seen = out.offers.get(row.id)
    if seen is None or (row.usd_per_mtok_in + row.usd_per_mtok_out) < (
        seen.usd_per_mtok_in + seen.usd_per_mtok_out
    ):
        if seen is not None:
            out.skipped.append((seen.tier, f"same provider and model as {key}; the cheaper is kept"))
        out.offers[row.id] = row
    else:
        out.skipped.append((key, f"same provider and model as {seen.tier}; the cheaper is kept"))


#: fields of a bundled api row that an import keeps (curated facts a price list does not carry)
CURATED_API_FIELDS = ("id", "tier", "vendor", "resells", "max_tokens_per_minute", "retired")


def onto_bundled_ids(imported: Mapping[str, ApiOffer], bundled: Iterable[ApiOffer]) -> dict[str, ApiOffer]:
    """Re-key imported rows onto the bundled row with the same (provider, model) when it is unique.

    A matched row keeps the bundled row's id, tier, vendor, resells, limit and retired
    date (curated facts a price list does not carry); price, source, as_of and notes follow
    the import.  Where several bundled rows share a (provider, model) (regional and
    global endpoints), the import cannot tell them apart and is left out of the refresh.
    """
    by_key: dict[tuple[str, str], list[ApiOffer]] = {}
    for row in bundled:
        by_key.setdefault((row.provider, row.model), []).append(row)
    out: dict[str, ApiOffer] = {}
    for row in imported.values():
        matches = by_key.get((row.provider, row.model), [])
        if len(matches) > 1:
            continue
        if matches:
            old = matches[0]
            notes = f"{row.notes} {old.notes}".strip() if old.notes not in row.notes else row.notes
            row = keep_curated(row, old, CURATED_API_FIELDS, notes)
        out[row.id] = row
    return out


def _load_json(path: Path) -> Any:
    try:
        return loads_json(read_input(path, "price file").decode("utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read price file: {exc}", file=str(path)) from exc
    except json.JSONDecodeError as exc:
        raise SpecError(f"not JSON: {exc.msg}", file=str(path), line=exc.lineno) from exc
