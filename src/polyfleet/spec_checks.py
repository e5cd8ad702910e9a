"""Checks of a validated spec against its resolved catalog: duplicates, references, periods.

Each raises ``SpecError`` pointing at the field (``spec.error``); ``build_spec`` runs them
after pydantic validation, once the catalog is merged.
"""

from __future__ import annotations

from polyfleet.catalog.lifecycle import retired_message
from polyfleet.errors import did_you_mean
from polyfleet.spec import ApiWorkload, InferenceWorkload, Spec, TrainingWorkload


def check_duplicates(spec: Spec) -> None:
    for section, key in (
        ("accelerators", "id"),
        ("offers", "id"),
        ("api_offers", "id"),
        ("models", "name"),
        ("egress", "provider"),
        ("workloads", "name"),
    ):
        seen: set[str] = set()
        for index, item in enumerate(getattr(spec.model, section)):
            value = getattr(item, key)
            if value in seen:
                raise spec.error(f"duplicate {key} {value!r}", section, index, key)
            seen.add(value)


def check_references(spec: Spec) -> None:
    cat = spec.catalog
    for index, offer in enumerate(spec.model.offers):
        if offer.accelerator not in cat.accelerators:
            raise spec.error(
                f"unknown accelerator {offer.accelerator!r}"
                f"{did_you_mean(offer.accelerator, cat.accelerators)}",
                "offers",
                index,
                "accelerator",
            )
    inline = {o.id for o in spec.model.offers}
    for offer in cat.offers.values():  # rows from catalog files the spec lists
        if offer.id not in inline and offer.accelerator not in cat.accelerators:
            raise spec.error(
                f"offer {offer.id!r} in a catalog file names unknown accelerator {offer.accelerator!r}"
                f"{did_you_mean(offer.accelerator, cat.accelerators)}",
                "catalog",
            )
    for index, api_offer in enumerate(spec.model.api_offers):
        if api_offer.id in cat.retired_api_offers:  # an inline row restating a retired one
            raise spec.error(retired_message(cat, api_offer.model) or "retired", "api_offers", index, "id")
    api_models = cat.api_models()
    for index, w in enumerate(spec.model.workloads):
        if isinstance(w, ApiWorkload):
            if w.model not in api_models:
                raise spec.error(
                    retired_message(cat, w.model)
                    or f"no api offer sells model {w.model!r}{did_you_mean(w.model, api_models)}",
                    "workloads",
                    index,
                    "model",
                )
            continue
        if isinstance(w.model, str) and w.model not in cat.models:
            raise spec.error(
                f"unknown model {w.model!r}{did_you_mean(w.model, cat.models)}",
                "workloads",
                index,
                "model",
            )
        if isinstance(w, InferenceWorkload):
            for key in w.throughput:
                if key not in cat.accelerators and key not in cat.offers:
                    choices = list(cat.accelerators) + list(cat.offers)
                    raise spec.error(
                        f"unknown accelerator or offer id {key!r}{did_you_mean(key, choices)}",
                        "workloads",
                        index,
                        "throughput",
                        key,
                    )
        if isinstance(w, TrainingWorkload) and w.data_at is not None:
            _check_data_at(spec, index, w.data_at)
    # names in the egress and risk sections must name something the plan can use
    providers = {o.provider for o in [*cat.offers.values(), *cat.api_offers.values()]}
    providers |= {w.data_at for w in spec.model.workloads if getattr(w, "data_at", None)}
    for index, row in enumerate(spec.model.egress):
        if row.provider not in providers:
            raise spec.error(
                f"unknown provider {row.provider!r}{did_you_mean(row.provider, providers)}",
                "egress",
                index,
                "provider",
            )
    for key in spec.model.risk.chip_delay_probability_by_accelerator:
        if key not in cat.accelerators:
            raise spec.error(
                f"unknown accelerator {key!r}{did_you_mean(key, cat.accelerators)}",
                "risk",
                "chip_delay_probability_by_accelerator",
                key,
            )


#: fields that only mean something in a monthly plan: (where, field)
_MONTHLY_ONLY = (
    ("workloads", "growth_per_month"),
    ("workloads", "requests_per_s_by_month"),
    ("workloads", "port_usd_by_stack"),
    ("offers", "available_from_month"),
    ("offers", "arrival_month_probabilities"),
)

#: longest monthly plan: five years keeps the MILP to sixty copies of a month
MAX_MONTHS = 60


def check_periods(spec: Spec) -> None:
    """Monthly plans need whole months; monthly-only fields need a monthly plan."""
    model = spec.model
    if model.periods == "monthly":
        h = model.horizon_months
        if h != int(h) or not 1 <= h <= MAX_MONTHS:
            raise spec.error(
                f"a monthly plan needs a whole number of months from 1 to {MAX_MONTHS}, got {h:g}",
                "horizon_months",
            )
        for index, w in enumerate(model.workloads):
            by_month = getattr(w, "requests_per_s_by_month", None)
            if by_month is not None and len(by_month) != int(h):
                raise spec.error(
                    f"expected {int(h)} values (one per month of horizon_months), got {len(by_month)}",
                    "workloads",
                    index,
                    "requests_per_s_by_month",
                )
            if by_month is not None and min(by_month) <= 0:
                raise spec.error(
                    "every month needs requests/s > 0", "workloads", index, "requests_per_s_by_month"
                )
        return
    for section, name in _MONTHLY_ONLY:
        for index, item in enumerate(getattr(model, section)):
            if name in item.model_fields_set:
                raise spec.error(
                    f"{name} needs `periods: monthly` at the top of the spec", section, index, name
                )


def _check_data_at(spec: Spec, index: int, provider: str) -> None:
    """``data_at`` names a provider whose egress price is known (bundled or in the spec)."""
    cat = spec.catalog
    known = sorted({o.provider for o in cat.offers.values()} | set(cat.egress))
    if provider not in known:
        raise spec.error(
            f"unknown provider {provider!r}{did_you_mean(provider, known)}", "workloads", index, "data_at"
        )
    egress = cat.egress.get(provider)
    if egress is None or egress.usd_per_gb is None:
        raise spec.error(
            f"no egress price for provider {provider!r}: add it to the spec as "
            f"egress: [{{provider: {provider}, usd_per_gb: ...}}]",
            "workloads",
            index,
            "data_at",
        )


def throughput_warnings(spec: Spec) -> list[str]:
    """A measured ``throughput`` whose replica cannot hold the model's weights, per override.

    ``chips_per_replica`` x the accelerator's HBM must hold the weights at the smallest
    precision the workload allows (the card's dtype, or any of ``precisions``); a 70B
    bf16 model (141 GB) on one 80 GB chip cannot be a real measurement.  The planner still
    uses it as given; ``force: true`` on the override says it is meant and silences this.
    """
    from polyfleet.catalog.models import BYTES_PER_DTYPE

    out = []
    cat = spec.catalog
    for index, w in enumerate(spec.model.workloads):
        if not isinstance(w, InferenceWorkload):
            continue
        card = spec.card(w)
        dtypes = [card.dtype, *(getattr(w, "precisions", None) or [])]
        weights_gb = card.params_b * min(BYTES_PER_DTYPE[d] for d in dtypes)
        for key, m in w.throughput.items():
            acc_id = key if key in cat.accelerators else getattr(cat.offers.get(key), "accelerator", None)
            acc = cat.accelerators.get(acc_id) if acc_id else None
            if m.force or acc is None:
                continue
            hbm_gb = m.chips_per_replica * acc.hbm_gb
            if weights_gb > hbm_gb:
                out.append(
                    f"{spec.file}:{spec.error('', 'workloads', index, 'throughput', key).line or '?'}: "
                    f"workloads[{index}].throughput.{key}: a replica of {m.chips_per_replica} x {acc.id} "
                    f"({hbm_gb:,.0f} GB) cannot hold {card.name}'s {weights_gb:,.0f} GB of weights; "
                    "planned as given (add force: true if the measurement is meant)"
                )
    return out
