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
from polyfleet.perf.inference import sized_inference_perf

SECONDS_PER_HOUR = 3600


def _cheapest_offer(offers: Mapping[str, Offer], accelerator: str, term: str, chips: int) -> Offer | None:
    """The lowest $/chip-h offer of ``accelerator`` and ``term`` whose instance holds a replica.

    Ties go to the smaller offer id so the choice does not depend on catalog order.
    """
    fitting = [
        o
        for o in offers.values()
        if o.accelerator == accelerator and o.term == term and o.chips_per_instance >= chips
    ]
    if not fitting:
        return None
    return min(fitting, key=lambda o: (o.usd_per_chip_hour, o.id))


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
) -> list[dict[str, Any]]:
    """One row per accelerator: can it serve ``card`` at the SLO, how fast, and at what $/Mtok.

    Each row has ``accelerator, vendor, stack, feasible, reason, chips_per_replica,
    max_batch, tpot_ms, output_tokens_per_s_per_chip, offer, provider,
    usd_per_chip_hour, usd_per_mtok_out``.

    * ``feasible``/``reason`` come from :func:`sized_inference_perf` ("" when feasible).
      A feasible accelerator with no rentable offer keeps ``feasible=True`` and gets a
      reason starting "offer:".
    * ``offer`` is the cheapest offer (lowest ``usd_per_chip_hour``) of that accelerator
      with the given ``term`` whose ``chips_per_instance >= chips_per_replica``, so one
      instance holds a whole tensor-parallel replica.
    * ``usd_per_mtok_out`` is dollars per million output tokens (see the module
      docstring: input tokens' prefill cost is inside the replica rate); None when
      infeasible or without an offer.

    Sorted: feasible rows with a price by ``usd_per_mtok_out`` ascending, then feasible
    rows without an offer (fastest first), then infeasible rows (by id).
    """
    rows = []
    for acc_id, acc in accelerators.items():
        perf = sized_inference_perf(
            card,
            acc,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            tpot_ms=tpot_ms,
            ttft_ms=ttft_ms,
            max_chips=max_chips,
            batching=batching,
        )
        offer = None
        reason = perf.reason
        if perf.feasible:
            offer = _cheapest_offer(offers, acc_id, term, perf.chips_per_replica)
            if offer is None:
                any_term = any(o.accelerator == acc_id and o.term == term for o in offers.values())
                reason = (
                    f"offer: {term} instances hold < {perf.chips_per_replica} chips"
                    if any_term
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
                "output_tokens_per_s_per_chip": perf.output_tokens_per_s_per_chip,
                "offer": offer.id if offer else None,
                "provider": offer.provider if offer else None,
                "usd_per_chip_hour": offer.usd_per_chip_hour if offer else None,
                "usd_per_mtok_out": usd_mtok,
            }
        )
    return sorted(rows, key=_sort_key)
