"""Compare accelerators for one model at one SLO: tokens/s per chip and $ per million tokens.

``$/Mtok`` here is the price of one million *output* tokens on the cheapest rented chip:

    usd_per_mtok_out = usd_per_chip_hour / (output_tokens_per_s_per_chip * 3600) * 1e6

Input tokens are not billed separately: the time a replica spends on prefill is already
inside ``output_tokens_per_s_per_chip`` (the roofline model charges prefill to each
request), so the chip-hour rate pays for the prompt too.  It is therefore not comparable
with an API's "$/Mtok out" column alone, which prices input tokens on top.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from polyfleet.catalog.models import Accelerator, ModelCard, Offer
from polyfleet.perf.configs import best_inference_perf
from polyfleet.perf.defaults import SLO_PERCENTILE

SECONDS_PER_HOUR = 3600

UNPRICED_CHIPS_PER_NODE = 8
"""Instance size searched for an accelerator with no offer of the term asked."""


def _offers_of(offers: Mapping[str, Offer], accelerator: str, term: str) -> dict[int, Offer]:
    """Chips per instance -> the lowest $/chip-h offer of ``accelerator`` and ``term`` of that size.

    Ties go to the smaller offer id so the choice does not depend on catalog order.
    """
    out: dict[int, Offer] = {}
    for o in sorted(offers.values(), key=lambda o: (o.usd_per_chip_hour, o.id)):
        if o.accelerator == accelerator and o.term == term:
            out.setdefault(o.chips_per_instance, o)
    return out


def _sort_key(row: dict[str, Any]) -> tuple:
    if row["feasible"] and row["usd_per_mtok_out"] is not None:
        return (0, row["usd_per_mtok_out"], row["accelerator"])
    if row["feasible"]:
        return (1, -row["output_tokens_per_s_per_chip"], row["accelerator"])
    return (2, 0.0, row["accelerator"])


def compare_accelerators(
    card: ModelCard,
    accelerators: Mapping[str, Accelerator],
    offers: Mapping[str, Offer],
    *,
    input_tokens: int,
    output_tokens: int,
    tpot_ms: float | None = None,
    ttft_ms: float | None = None,
    max_chips: int | None = None,
    term: str = "on-demand",
    batching: str = "serial",
    percentile: float = SLO_PERCENTILE,
    **perf_kwargs: Any,
) -> list[dict[str, Any]]:
    """One row per accelerator: can it serve ``card`` at the SLO, how fast, and at what $/Mtok.

    Each row has ``accelerator, vendor, stack, feasible, reason, chips_per_replica,
    max_batch, tpot_ms, output_tokens_per_s_per_chip, offer, provider,
    usd_per_chip_hour, usd_per_mtok_out``.

    * The replica is the best configuration (``polyfleet.perf.configs``: TP, batch, ...)
      within one instance of each offered size; with SLO targets they hold at
      ``percentile`` under Poisson arrivals (``polyfleet.perf.serving``).
    * ``feasible``/``reason`` come from that search ("" when feasible).  A feasible
      accelerator with no rentable offer (searched within ``UNPRICED_CHIPS_PER_NODE``
      chips) keeps ``feasible=True`` and gets a reason starting "offer:".
    * ``offer`` is, among the cheapest offer of each instance size of that accelerator
      and ``term``, the one with the lowest ``usd_per_mtok_out``.
    * ``usd_per_mtok_out`` is dollars per million output tokens (see the module
      docstring: input tokens' prefill cost is inside the replica rate); None when
      infeasible or without an offer.

    Other keyword arguments (``prefix_cache_hit``, ``input_tokens_cv``, ...) go to
    ``best_inference_perf``.

    Sorted: feasible rows with a price by ``usd_per_mtok_out`` ascending, then feasible
    rows without an offer (fastest first), then infeasible rows (by id).
    """
    rows = []
    targets = tpot_ms is not None or ttft_ms is not None
    kwargs: dict[str, Any] = dict(
        input_tokens=input_tokens, output_tokens=output_tokens, tpot_ms=tpot_ms, ttft_ms=ttft_ms,
        max_chips=max_chips, batching=batching, percentile=percentile if targets else None,
        **perf_kwargs,
    )  # fmt: skip
    for acc_id, acc in accelerators.items():
        sizes = _offers_of(offers, acc_id, term)
        # the best configuration on each instance size; the cheapest $/Mtok among them
        tried = [(best_inference_perf(card, acc, chips_per_node=n, **kwargs), o) for n, o in sizes.items()]
        priced = [
            (o.usd_per_chip_hour / p.output_tokens_per_s_per_chip, p, o)
            for p, o in tried
            if p.feasible and p.output_tokens_per_s_per_chip > 0
        ]
        offer: Offer | None = None
        if priced:
            _, perf, offer = min(priced, key=lambda t: (t[0], t[2].id))
        else:
            perf = best_inference_perf(card, acc, chips_per_node=UNPRICED_CHIPS_PER_NODE, **kwargs)
        reason = perf.reason
        if perf.feasible and offer is None:
            reason = (
                f"offer: {term} instances hold < {perf.chips_per_replica} chips"
                if sizes
                else f"offer: no {term} offer in the catalog"
            )
        usd_mtok = None
        if offer is not None and perf.output_tokens_per_s_per_chip > 0:
            usd_mtok = offer.usd_per_chip_hour / (perf.output_tokens_per_s_per_chip * SECONDS_PER_HOUR) * 1e6
        rows.append(
            {
                "accelerator": acc_id,
                "vendor": acc.vendor,
                "stack": acc.stack,
                "feasible": perf.feasible,
                "reason": reason,
                "chips_per_replica": perf.chips_per_replica,
                "max_batch": perf.max_batch,
                "tpot_ms": perf.tpot_ms,
                "ttft_ms": perf.ttft_ms,
                "configuration": perf.configuration,
                "limit": perf.limit,
                "output_tokens_per_s_per_chip": perf.output_tokens_per_s_per_chip,
                "offer": offer.id if offer else None,
                "provider": offer.provider if offer else None,
                "usd_per_chip_hour": offer.usd_per_chip_hour if offer else None,
                "usd_per_mtok_out": usd_mtok,
            }
        )
    return sorted(rows, key=_sort_key)
