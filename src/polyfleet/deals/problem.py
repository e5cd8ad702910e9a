"""The deal problem: kept candidates, periods, deal terms, and one scenario's second-stage LP.

``build_problem(spec)`` turns a validated spec into arrays (``DealProblem``), checking the
deals' references against the catalog (one-line ``SpecError``); ``scenario_lp`` writes the
LP of one scenario for a first stage given as fixed columns (see ``docs/deals.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from polyfleet.deals.scenarios import Axes
from polyfleet.deals.spec import Reservation, SpendCommitment, size_options
from polyfleet.errors import SpecError
from polyfleet.plan.candidates import HOURS_PER_MONTH, build_candidates
from polyfleet.plan.monthly import growth
from polyfleet.spec import InferenceWorkload, Spec, TrainingWorkload

#: candidates kept per workload by price, besides the cheapest per provider and accelerator
KEEP_CHEAPEST = 6


@dataclass
class DealTerms:
    """One deal as the LP needs it (sizes in USD per year or instances)."""

    name: str
    kind: str  # "spend" | "reservation"
    grid: list[float]
    size_range: tuple[float, float] | None
    start_month: int
    end_month: int  # exclusive
    # spend
    discount: float = 0.0
    ramp: np.ndarray | None = None  # share per deal year ("year" = whole deal when total)
    year_months: int = 12
    carry_over: bool = False
    covered_offers: np.ndarray | None = None  # bool per extended offer
    covered_api: np.ndarray | None = None  # bool per api offer
    # reservation
    block: int = -1  # extended offer index of the block
    target: int = -1  # extended offer index of the conversion target block
    ratio: float = 0.0
    convert_from: int = 0
    usd_per_instance_month: float = 0.0
    resale_share: float = 0.0
    resale_recovery: float = 0.0
    # exit
    exit_month: int | None = None
    penalty_share: float = 0.0

    @property
    def max_size(self) -> float:
        return self.size_range[1] if self.size_range else max(self.grid)

    @property
    def first_stage_usd_per_unit(self) -> float:
        """USD paid at signing per unit of size (reservations pay the whole block)."""
        if self.kind == "reservation":
            return self.usd_per_instance_month * (self.end_month - self.start_month)
        return 0.0


@dataclass
class DealProblem:
    """Everything but the scenario: candidates kept, policies, periods, deals."""

    months: int
    periods: list[tuple[int, int]]  # (first month, number of months)
    workload_names: list[str]
    w_inf: np.ndarray  # bool per workload
    w_path: np.ndarray  # (W, M) base peak requests/s (inference) or demand multiplier (api)
    w_base: np.ndarray  # (W,) what the candidates' api prices were computed at (peak rps, or 1)
    w_spot_cap: np.ndarray
    w_penalty: np.ndarray  # USD per requests/s-month (inference) or per month of all demand (api)
    # extended offers: catalog offers kept, then per reservation its block and conversion block
    o_id: list[str]
    o_provider: np.ndarray  # int code
    o_vendor: np.ndarray  # int code
    o_cpi: np.ndarray
    o_avail: np.ndarray  # instances (inf for blocks)
    o_spot: np.ndarray
    o_uncertain: np.ndarray  # index into axes.uncertain or -1
    o_first: np.ndarray  # first usable month when certain
    o_block_usd_per_instance_month: np.ndarray  # blocks: their price (lock-in caps value them so)
    # inference candidates
    k_w: np.ndarray
    k_o: np.ndarray
    k_chips: np.ndarray
    k_rps: np.ndarray
    k_usd_month: np.ndarray  # list USD per replica-month (0 on blocks)
    k_group: np.ndarray  # price group
    # api candidates
    a_w: np.ndarray
    a_offer: np.ndarray
    a_usd_month: np.ndarray  # whole demand at the spec's base rate, one month
    a_tpm: np.ndarray
    a_limit: np.ndarray  # tokens/min of the api offer (inf: none)
    a_provider: np.ndarray
    a_vendor: np.ndarray
    api_group: int
    providers: list[str]
    vendors: list[str]
    survive: float
    spot_counts: bool
    provider_cap: float | None  # share of spend (list prices)
    vendor_cap: float | None
    capacity_provider_cap: float | None  # share of each service's peak capacity
    capacity_vendor_cap: float | None
    deals: list[DealTerms]
    axes: Axes
    emergency: float

    @property
    def n_first(self) -> int:
        """First-stage columns: (sign, size) per deal."""
        return 2 * len(self.deals)

    def with_discount(self, discount: float) -> DealProblem:
        """The same problem with every spend deal's discount set to ``discount`` (break-even sweep)."""
        deals = [replace(d, discount=discount) if d.kind == "spend" else d for d in self.deals]
        return replace(self, deals=deals)


def periods(months: int, quarters_after: int) -> list[tuple[int, int]]:
    """Monthly periods up to ``quarters_after``, then quarters (the last may be short)."""
    out = [(m, 1) for m in range(min(months, quarters_after))]
    m = min(months, quarters_after)
    while m < months:
        out.append((m, min(3, months - m)))
        m += 3
    return out


def _kept(cand, usd_month: np.ndarray, must: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Candidates kept per workload (the deal LP's columns).

    The ``KEEP_CHEAPEST`` cheapest per requests/s, the cheapest at each provider and at each
    accelerator, the cheapest at each accelerator among the offers each spend deal covers
    (``covered``: a deal label per offer, "" for none), and every candidate on an offer a
    reservation names (``must``).
    """
    rate = usd_month / cand.inf_rps
    keep = must[cand.inf_o].copy()
    acc = np.array([o.accelerator for o in cand.offers], dtype=object)
    deal_acc = np.array([f"{c}/{a}" if c else "" for c, a in zip(covered, acc, strict=True)], dtype=object)
    for w in np.unique(cand.inf_w):
        ks = np.flatnonzero(cand.inf_w == w)
        order = ks[np.argsort(rate[ks], kind="stable")]
        keep[order[:KEEP_CHEAPEST]] = True
        for labels in (cand.offer_provider, acc, deal_acc):
            seen: set = {""}
            for k in order:
                label = labels[cand.inf_o[k]]
                if label not in seen:
                    seen.add(label)
                    keep[k] = True
    return np.flatnonzero(keep)


def build_problem(spec: Spec) -> DealProblem:
    """Arrays for ``spec``'s deals and scenarios; ``SpecError`` on references that do not resolve."""
    unc = spec.model.uncertainty
    if unc is None:
        raise SpecError("polyfleet deal needs an uncertainty: section (scenarios or sampled)",
                        file=spec.file, line=1, path="uncertainty")  # fmt: skip
    if not spec.model.deals:
        raise SpecError("polyfleet deal needs a deals: section with at least one deal",
                        file=spec.file, line=1, path="deals")  # fmt: skip
    for i, w in enumerate(spec.workloads):
        if isinstance(w, TrainingWorkload):
            raise spec.error("polyfleet deal plans inference and api workloads; training "
                             "workloads are not modelled (remove it or plan it apart)",
                             "workloads", i)  # fmt: skip
    months = int(spec.horizon_months)
    if months != spec.horizon_months or months < 1:
        raise spec.error("polyfleet deal needs a whole number of months", "horizon_months")
    cand = build_candidates(spec)
    catalog = spec.catalog
    offer_pos = {o.id: i for i, o in enumerate(cand.offers)}
    n_o = len(cand.offers)
    must = np.zeros(n_o, bool)
    covered_by = np.full(n_o, "", dtype=object)
    names: set[str] = set()
    for i, d in enumerate(spec.model.deals):
        if d.name in names:
            raise spec.error(f"deal name {d.name!r} is used twice", "deals", i, "name")
        names.add(d.name)
        ids = (d.offers or []) if isinstance(d, SpendCommitment) else [d.offer] + (
            [d.convert.to_offer] if d.convert else [])  # fmt: skip
        for j, oid in enumerate(ids):
            if oid not in catalog.offers:
                field = ("offers", j) if isinstance(d, SpendCommitment) else (
                    ("offer",) if j == 0 else ("convert", "to_offer"))  # fmt: skip
                raise spec.error(f"unknown offer {oid!r}", "deals", i, *field)
            if oid not in offer_pos:
                raise spec.error(f"no workload can use offer {oid!r}", "deals", i)
            must[offer_pos[oid]] |= isinstance(d, Reservation)
        if isinstance(d, SpendCommitment):
            for j, aid in enumerate(d.api_offers or []):
                if aid not in catalog.api_offers:
                    raise spec.error(f"unknown api offer {aid!r}", "deals", i, "api_offers", j)
            providers = {o.provider for o in catalog.offers.values()} | {
                a.provider for a in catalog.api_offers.values()}  # fmt: skip
            if d.provider not in providers:
                raise spec.error(f"unknown provider {d.provider!r}", "deals", i, "provider")
            for j, oid in enumerate(d.offers or []):
                if catalog.offers[oid].provider != d.provider:
                    raise spec.error(f"offer {oid!r} is not {d.provider}'s", "deals", i, "offers", j)
            covered = d.offers
            if covered is None:
                covered = [o.id for o in cand.offers if o.provider == d.provider]
            for oid in covered:
                covered_by[offer_pos[oid]] = d.name
            end = d.start_month + 12 * d.years
        else:
            end = d.start_month + d.months
            if d.convert and catalog.offers[d.convert.to_offer].provider != catalog.offers[d.offer].provider:
                raise spec.error(
                    "a conversion is to an offer of the same provider", "deals", i, "convert", "to_offer"
                )
        if end > months:
            raise spec.error(f"the deal runs to month {end}, past the horizon ({months} months)", "deals", i)
        if d.exit is not None and d.exit.after_month >= end:
            raise spec.error(f"exit month {d.exit.after_month} is not before the deal's end (month {end})",
                             "deals", i, "exit", "after_month")  # fmt: skip

    # inference candidates kept, then copied onto the reservation blocks
    cand_usd_month = (
        cand.inf_chips * np.array([o.usd_per_chip_hour for o in cand.offers])[cand.inf_o] * HOURS_PER_MONTH
    )
    kept = _kept(cand, cand_usd_month, must, covered_by)
    k_w, k_o = cand.inf_w[kept], cand.inf_o[kept]
    k_chips, k_rps, k_usd = cand.inf_chips[kept].astype(float), cand.inf_rps[kept], cand_usd_month[kept]
    offers = list(cand.offers)
    o_id = [o.id for o in offers]
    o_prov = list(cand.offer_provider)
    o_vend = list(cand.offer_vendor)
    o_cpi = list(cand.offer_cpi.astype(float))
    o_avail = list(cand.offer_avail.astype(float))
    o_spot = list(cand.offer_spot)
    o_block_usd = [0.0] * n_o
    o_base = list(range(n_o))  # the catalog offer whose arrival an extended offer follows
    extra_k: list[tuple[np.ndarray, ...]] = []

    def add_block(base: int, name: str, usd: float) -> int:
        idx = len(o_id)
        o_id.append(name)
        o_prov.append(o_prov[base])
        o_vend.append(o_vend[base])
        o_cpi.append(o_cpi[base])
        o_avail.append(np.inf)
        o_spot.append(False)
        o_block_usd.append(usd)
        o_base.append(base)
        ks = np.flatnonzero(cand.inf_o == base)
        extra_k.append((cand.inf_w[ks], np.full(len(ks), idx), cand.inf_chips[ks].astype(float),
                        cand.inf_rps[ks], np.zeros(len(ks))))  # fmt: skip
        return idx

    # price groups: accelerators, then api
    groups = [*sorted({o.accelerator for o in offers}), "api"]
    uncertain, pmfs, fixed = [], [], []
    sampled_arrival = unc.sampled.arrival_month if unc.sampled else {}
    named_arrival = {o for sc in (unc.scenarios or []) for o in sc.arrival_month}
    for oid in sampled_arrival:
        if oid not in offer_pos:
            raise spec.error(
                f"unknown or unusable offer {oid!r}", "uncertainty", "sampled", "arrival_month", oid
            )
    for i, sc in enumerate(unc.scenarios or []):
        for oid in sc.arrival_month:
            if oid not in offer_pos:
                raise spec.error(
                    f"unknown or unusable offer {oid!r}", "uncertainty", "scenarios", i, "arrival_month"
                )
    for o in offers:
        pmf = sampled_arrival.get(o.id) or (o.arrival_month_probabilities if unc.sampled else None)
        if pmf or o.id in named_arrival:
            uncertain.append(o.id)
            pmfs.append(dict(pmf) if pmf else {o.first_month(spec.policy.plan_arrival_quantile): 1.0})
            fixed.append(o.first_month(spec.policy.plan_arrival_quantile))
    providers = sorted(set(o_prov) | {a.provider for a in cand.api_offers})
    for i, sc in enumerate(unc.scenarios or []):
        for p in sc.capacity_loss:
            if p not in providers:
                raise spec.error(f"unknown provider {p!r}", "uncertainty", "scenarios", i, "capacity_loss")
    deals: list[DealTerms] = []
    for d in spec.model.deals:
        grid, rng = size_options(d.usd_per_year if isinstance(d, SpendCommitment) else d.instances)
        ex = (d.exit.after_month, d.exit.penalty_share) if d.exit else (None, 0.0)
        if isinstance(d, SpendCommitment):
            cov_o = np.zeros(n_o, bool)
            cov_o[[offer_pos[o] for o in (d.offers or []) if o in offer_pos]] = True
            if d.offers is None:
                cov_o = np.array([o.provider == d.provider for o in offers], bool)
            cov_a = np.array([(a.provider == d.provider) if d.api_offers is None else (a.id in d.api_offers)
                              for a in cand.api_offers], bool)  # fmt: skip
            total = d.total
            deals.append(DealTerms(
                d.name, "spend", grid, rng, d.start_month, d.start_month + 12 * d.years,
                discount=d.discount,
                ramp=np.array([float(d.years)]) if total else np.array(d.ramp or [1.0] * d.years),
                year_months=12 * d.years if total else 12, carry_over=d.carry_over,
                covered_offers=cov_o, covered_api=cov_a, exit_month=ex[0], penalty_share=ex[1]))  # fmt: skip
        else:
            block = add_block(offer_pos[d.offer], f"{d.name} block", d.usd_per_instance_month)
            target, ratio, start = -1, 0.0, 0
            if d.convert:
                target = add_block(
                    offer_pos[d.convert.to_offer],
                    f"{d.name} converted",
                    d.usd_per_instance_month / d.convert.ratio,
                )
                ratio, start = d.convert.ratio, d.convert.from_month
            deals.append(DealTerms(
                d.name, "reservation", grid, rng, d.start_month, d.start_month + d.months,
                block=block, target=target, ratio=ratio, convert_from=start,
                usd_per_instance_month=d.usd_per_instance_month, resale_share=d.resale_share,
                resale_recovery=d.resale_recovery, exit_month=ex[0], penalty_share=ex[1]))  # fmt: skip
    for i, d in enumerate(deals):
        for j in range(i):
            o = deals[j]
            if d.kind == o.kind == "spend" and ((d.covered_offers & o.covered_offers).any()
                                                 or (d.covered_api & o.covered_api).any()):  # fmt: skip
                raise spec.error(f"deals {o.name!r} and {d.name!r} cover the same offers; "
                                 "give each spend deal its own offers", "deals", i)  # fmt: skip
    if extra_k:
        k_w = np.concatenate([k_w, *(e[0] for e in extra_k)])
        k_o = np.concatenate([k_o, *(e[1] for e in extra_k)])
        k_chips = np.concatenate([k_chips, *(e[2] for e in extra_k)])
        k_rps = np.concatenate([k_rps, *(e[3] for e in extra_k)])
        k_usd = np.concatenate([k_usd, *(e[4] for e in extra_k)])
    acc_of = [offers[b].accelerator for b in o_base]
    o_group = np.array([groups.index(a) for a in acc_of])
    unc_index = {oid: u for u, oid in enumerate(uncertain)}
    o_unc = np.array([unc_index.get(offers[b].id, -1) for b in o_base])
    o_first = np.array([offers[b].first_month(spec.policy.plan_arrival_quantile) for b in o_base])
    vendors = sorted(set(o_vend) | set(cand.api_vendor))
    prov_code = {p: i for i, p in enumerate(providers)}
    vend_code = {v: i for i, v in enumerate(vendors)}

    n_w = len(cand.workloads)
    g = growth(spec, cand, months)
    w_inf = np.array([isinstance(w, InferenceWorkload) for w in cand.workloads], bool)
    path = np.where(w_inf[:, None], cand.peak_rps[:, None] * g, g)
    hz = spec.horizon_months
    a_usd = cand.api_usd / hz
    a_limit = np.array([a.max_tokens_per_minute or np.inf for a in cand.api_offers])[cand.api_a]
    emergency = max(spec.model.risk.emergency_price_multiplier, 1.0)
    penalty = np.zeros(n_w)
    for w in range(n_w):
        ks = np.flatnonzero(k_w == w)
        rates = list(k_usd[ks] / k_rps[ks]) if len(ks) else []
        ap = np.flatnonzero(cand.api_w == w)
        if w_inf[w]:
            base = cand.peak_rps[w] or 1.0
            rates += list(a_usd[ap] / base)
        else:
            rates += list(a_usd[ap])
        penalty[w] = emergency * max(rates or [1.0])
    policy = spec.policy
    # policy.max_share is a share of spend, unless the spec model also has max_spend_share
    # (then max_share is a share of each service's peak capacity and max_spend_share of spend)
    spend_caps = getattr(policy, "max_spend_share", None)
    caps = spend_caps if spend_caps is not None else policy.max_share
    capacity_caps = policy.max_share if spend_caps is not None else None
    deal_providers = sorted(
        {d.provider for d in spec.model.deals if isinstance(d, SpendCommitment)}
        | {catalog.offers[d.offer].provider for d in spec.model.deals if isinstance(d, Reservation)}
        | {catalog.offers[u].provider for u in uncertain}
    )
    axes = Axes(months, providers, groups, uncertain, pmfs, fixed, deal_providers)
    return DealProblem(
        months=months,
        periods=periods(months, unc.quarters_after_month),
        workload_names=[w.name for w in cand.workloads],
        w_inf=w_inf,
        w_path=path,
        w_base=np.where(w_inf, cand.peak_rps, 1.0),
        w_spot_cap=cand.spot_cap,
        w_penalty=penalty,
        o_id=o_id,
        o_provider=np.array([prov_code[p] for p in o_prov]),
        o_vendor=np.array([vend_code[v] for v in o_vend]),
        o_cpi=np.array(o_cpi),
        o_avail=np.array(o_avail),
        o_spot=np.array(o_spot, bool),
        o_uncertain=o_unc,
        o_first=o_first,
        o_block_usd_per_instance_month=np.array(o_block_usd),
        k_w=k_w,
        k_o=k_o,
        k_chips=k_chips,
        k_rps=k_rps,
        k_usd_month=k_usd,
        k_group=o_group[k_o],
        a_w=cand.api_w,
        a_offer=cand.api_a,
        a_usd_month=a_usd,
        a_tpm=cand.api_tpm,
        a_limit=a_limit,
        a_provider=np.array([prov_code[p] for p in cand.api_provider[cand.api_a]])
        if len(cand.api_a)
        else np.zeros(0, int),
        a_vendor=np.array([vend_code[v] for v in cand.api_vendor[cand.api_a]])
        if len(cand.api_a)
        else np.zeros(0, int),
        api_group=len(groups) - 1,
        providers=providers,
        vendors=vendors,
        survive=policy.survive_provider_loss,
        spot_counts=policy.spot_counts_for_survival,
        provider_cap=caps.provider,
        vendor_cap=caps.vendor,
        capacity_provider_cap=capacity_caps.provider if capacity_caps else None,
        capacity_vendor_cap=capacity_caps.vendor if capacity_caps else None,
        deals=deals,
        axes=axes,
        emergency=emergency,
    )
