"""Candidates: every (workload, offer) pair that can work, as flat NumPy arrays.

The performance model is evaluated once per (workload, accelerator, chips-per-instance)
key, not per offer, and broadcast to the offers that share the key; the planner then
sees only arrays.  A workload no offer can host, or an inline offer no workload can use,
is bad input and raises ``SpecError`` with the reasons counted by kind.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from polyfleet.catalog.models import Offer
from polyfleet.perf import InferencePerf, training_perf
from polyfleet.perf.config_search import ConfigSearch, search_for
from polyfleet.plan.exclusions import keep_closest, no_offer_error, shortfall
from polyfleet.spec import ApiWorkload, InferenceWorkload, Spec, TrainingWorkload

HOURS_PER_MONTH = 730.0


@dataclass
class Candidates:
    """Flat arrays the MILP is built from.  Index conventions are in each comment."""

    workloads: list  # all workloads, spec order
    peak_rps: np.ndarray  # D[w]: peak requests/s (inference), 0 otherwise
    # offers that at least one candidate uses, sorted by id
    offers: list[Offer]
    offer_provider: np.ndarray  # str per offer
    offer_vendor: np.ndarray  # str per offer
    offer_cpi: np.ndarray  # chips per instance
    offer_usd_per_instance: np.ndarray  # one instance for the whole horizon
    offer_avail: np.ndarray  # available instances
    offer_spot: np.ndarray  # bool per offer: term is spot (preemptible)
    # inference: replicas x[k] of workload inf_w[k] on offer inf_o[k]
    inf_w: np.ndarray
    inf_o: np.ndarray
    inf_chips: np.ndarray  # t: chips per replica
    inf_rps: np.ndarray  # r: requests/s per replica
    # training: y[k] = 1 when job tr_w[k] runs on offer tr_o[k]
    tr_w: np.ndarray
    tr_o: np.ndarray
    tr_chips: np.ndarray
    tr_instances: np.ndarray
    tr_hours: np.ndarray
    tr_usd: np.ndarray  # run cost plus egress
    tr_egress_usd: np.ndarray  # moving data_gb from data_at to the offer's provider
    # api: share s[k] of workload api_w[k] bought from api offer api_a[k]
    api_offers: list = field(default_factory=list)
    api_w: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    api_a: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    api_usd: np.ndarray = field(default_factory=lambda: np.zeros(0))  # whole demand, horizon
    api_tpm: np.ndarray = field(default_factory=lambda: np.zeros(0))  # tokens/min at full share
    # emergency quota in the workload's requests/s (survival); inf when the offer states none
    api_cap_rps: np.ndarray = field(default_factory=lambda: np.zeros(0))
    accelerators: dict = field(default_factory=dict)  # id -> Accelerator (confidence in the plan)
    spot_cap: np.ndarray = field(default_factory=lambda: np.zeros(0))  # max spot share per workload
    inf_config: np.ndarray = field(default_factory=lambda: np.zeros(0, object))  # perf configuration label

    @property
    def api_provider(self) -> np.ndarray:
        return np.array([a.provider for a in self.api_offers], dtype=object)

    @property
    def api_vendor(self) -> np.ndarray:
        return np.array([a.vendor for a in self.api_offers], dtype=object)


def _stack_ok(spec: Spec, offers: list[Offer], stacks: list[str] | None) -> np.ndarray:
    accs = spec.catalog.accelerators
    if stacks is None:
        return np.ones(len(offers), bool)
    return np.array([accs[o.accelerator].stack in stacks for o in offers], bool)


def _inference_rows(
    spec: Spec,
    w: InferenceWorkload,
    offers: list[Offer],
    keys: np.ndarray,
    key_list: list[tuple[str, int]],
    reasons: Counter,
) -> tuple[np.ndarray, ...]:
    """Eligible offers for one inference workload with chips and requests/s per replica."""
    accs = spec.catalog.accelerators
    card = spec.card(w)
    n_key = len(key_list)
    k_ok = np.zeros(n_key, bool)
    k_t = np.zeros(n_key)
    k_r = np.zeros(n_key)
    k_why = [""] * n_key
    k_cfg = [""] * n_key  # serving configuration per key, for --explain
    mix = w.length_mix  # one bucket unless the workload gives a lengths histogram
    longest = max(n_in + n_out for n_in, n_out, _ in mix)
    if card.context_tokens and longest > card.context_tokens:  # no replica can take the request
        why = f"context: a request of {longest} tokens exceeds {card.name}'s context of {card.context_tokens}"
        reasons["context"] += len(offers)
        reasons[("example", "context")] = why  # type: ignore[index]  # every offer alike
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0), np.zeros(0, object)

    targets = w.slo.tpot_ms is not None or w.slo.ttft_ms is not None
    searches: dict[tuple[str, int, int], ConfigSearch] = {}

    def bucket_perf(acc_id: str, cpi: int, n_in: int, n_out: int, weight: float) -> InferencePerf:
        # the configuration (TP/PP/EP, precision, batch) that serves the bucket's peak on
        # the fewest chips; SLO targets hold at the workload's percentile (Poisson arrivals).
        # One search per (accelerator, bucket), shared by its instance sizes (ConfigSearch).
        search = searches.get((acc_id, n_in, n_out))
        if search is None:
            search = searches[(acc_id, n_in, n_out)] = search_for(
                card,
                accs[acc_id],
                input_tokens=n_in,
                output_tokens=n_out,
                tpot_ms=w.slo.tpot_ms,
                ttft_ms=w.slo.ttft_ms,
                dtypes=w.precisions,
                percentile=w.slo_percentile if targets else None,
                prefix_cache_hit=w.prefix_cache_hit,
                input_tokens_cv=w.input_tokens_cv,
                output_tokens_cv=w.output_tokens_cv,
                batching=w.batching,
                **(spec.calibration.kwargs(acc_id) if spec.calibration else {}),
            )
        return search.best(cpi, w.allow_multi_instance, w.peak_requests_per_s * weight)

    for k, (acc_id, cpi) in enumerate(key_list):
        if acc_id in w.throughput:
            m = w.throughput[acc_id]
            fits = w.allow_multi_instance or m.chips_per_replica <= cpi
            k_ok[k], k_t[k], k_r[k] = fits, m.chips_per_replica, m.requests_per_s
            k_why[k] = "" if fits else f"memory: measured replica needs {m.chips_per_replica} chips"
            k_cfg[k] = "measured"
            continue
        perfs = [bucket_perf(acc_id, cpi, n_in, n_out, weight) for n_in, n_out, weight in mix]
        k_ok[k], k_t[k], k_r[k], k_why[k] = _combine_buckets(perfs, mix)
        k_cfg[k] = " / ".join(dict.fromkeys(p.configuration for p in perfs))
    stack = _stack_ok(spec, offers, w.stacks)
    ok = stack & k_ok[keys]
    t = k_t[keys].copy()
    r = k_r[keys].copy()
    cfg = np.array(k_cfg, dtype=object)[keys] if n_key else np.zeros(0, object)
    for j, offer in enumerate(offers):  # offer-id overrides are few: a short loop
        m = w.throughput.get(offer.id)
        if m is not None:
            ok[j] = stack[j] and (w.allow_multi_instance or m.chips_per_replica <= offer.chips_per_instance)
            t[j], r[j], cfg[j] = m.chips_per_replica, m.requests_per_s, "measured"
    reasons["stack"] += int((~stack).sum())
    for k in np.flatnonzero(~k_ok):
        hit = np.flatnonzero(stack & (keys == k))
        reasons[k_why[k].split(":")[0] or "other"] += len(hit)
        if len(hit):  # the closest offer of each kind is the example a person reads
            keep_closest(reasons, k_why[k], offers[hit[0]].id, shortfall(k_why[k]))
    idx = np.flatnonzero(ok)
    return idx, t[idx].astype(int), r[idx], cfg[idx]


def _combine_buckets(
    perfs: list[InferencePerf], mix: list[tuple[int, int, float]]
) -> tuple[bool, int, float, str]:
    """(feasible, chips per replica, requests/s per replica, reason) for a length mix.

    Every bucket must meet the SLOs. A replica is sized for the largest bucket (the most
    chips any bucket needs) and time-shares its requests, so its requests/s is the
    weighted harmonic mean ``1 / sum_i(weight_i / rps_i)``; each ``rps_i`` is the bucket's
    own replica estimate (at its own, possibly smaller, chip count: conservative).
    """
    if len(perfs) == 1:
        p = perfs[0]
        return p.feasible, p.chips_per_replica, p.replica_requests_per_s, p.reason
    for i, (p, (n_in, n_out, _)) in enumerate(zip(perfs, mix, strict=True)):
        if not p.feasible:
            return False, p.chips_per_replica, 0.0, f"{p.reason} (lengths[{i}]: {n_in} in / {n_out} out)"
    seconds = sum(weight / p.replica_requests_per_s for p, (_, _, weight) in zip(perfs, mix, strict=True))
    return True, max(p.chips_per_replica for p in perfs), 1.0 / seconds, ""


def _training_rows(
    spec: Spec,
    w: TrainingWorkload,
    offers: list[Offer],
    keys: np.ndarray,
    key_list: list[tuple[str, int]],
    reasons: Counter,
    spot_blocked: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Eligible offers for one training job; marks in ``spot_blocked`` offers only its spot cap shut."""
    accs = spec.catalog.accelerators
    card = spec.card(w)
    try:
        perfs = [
            training_perf(
                card,
                accs[acc_id],
                tokens_b=w.tokens_b,
                deadline_days=w.deadline_days,
                chips_per_instance=cpi,
                flops=w.flops,
                mfu=w.mfu,
            )
            for acc_id, cpi in key_list
        ]
    except OverflowError:  # chips = FLOPs / (rate x deadline) past any integer (5e-300 days)
        raise spec.error(
            f"{w.deadline_days:g} days for {w.tokens_b:g}B tokens needs more chips than can be counted: "
            "expected a deadline of a realistic length",
            "workloads",
            spec.workloads.index(w),
            "deadline_days",
        ) from None
    stack = _stack_ok(spec, offers, w.stacks)
    feasible = np.array([p.feasible for p in perfs], bool)[keys]
    chips = np.array([p.chips for p in perfs], float)[keys]
    hours = np.array([p.run_hours for p in perfs], float)[keys]
    cpi = np.array([o.chips_per_instance for o in offers], float)
    avail = np.array([o.available_instances for o in offers], float)
    instances = np.ceil(chips / cpi)
    capacity = instances <= avail
    spot_ok = np.array([o.term != "spot" for o in offers], bool) | (_spot_cap(spec, w) >= 1)
    ok = stack & spot_ok & feasible & capacity
    reasons["stack"] += int((~stack).sum())
    reasons["spot"] += int((stack & ~spot_ok).sum())
    spot_blocked |= stack & ~spot_ok & feasible & capacity
    stack = stack & spot_ok
    reasons["spec"] += int((stack & ~feasible).sum())
    reasons["capacity"] += int((stack & feasible & ~capacity).sum())
    short = np.flatnonzero(stack & feasible & ~capacity)
    if len(short):  # the closest: fewest instances needed per instance available
        j = int(short[np.argmin(instances[short] / np.maximum(avail[short], 1e-9))])
        keep_closest(
            reasons,
            f"capacity: needs {int(instances[j])} instances for the deadline, "
            f"{offers[j].available_instances} available",
            offers[j].id,
            float(instances[j] / max(avail[j], 1e-9)),
        )
    spec_short = np.flatnonzero(stack & ~feasible)
    for j in spec_short[:1]:
        keep_closest(reasons, perfs[keys[j]].reason or "spec: infeasible", offers[j].id, math.inf)
    idx = np.flatnonzero(ok)
    price = np.array([offers[j].usd_per_chip_hour for j in idx])
    egress = _egress_usd(spec, w, [offers[j].provider for j in idx])
    return (
        idx,
        chips[idx].astype(int),
        instances[idx].astype(int),
        hours[idx],
        chips[idx] * price * hours[idx] + egress,
        egress,
    )


def _spot_cap(spec: Spec, w: InferenceWorkload | TrainingWorkload) -> float:
    """The workload's max spot share: its own, else the policy's."""
    return spec.policy.max_spot_share if w.max_spot_share is None else w.max_spot_share


def _egress_usd(spec: Spec, w: TrainingWorkload, providers: list[str]) -> np.ndarray:
    """USD to move the job's data to each placement's provider (0 where the data already is).

    The whole ``data_gb`` is paid at ``data_at``'s first paid tier; free allowances are not
    subtracted (other traffic may use them), so the figure errs high, never low.
    """
    if w.data_gb is None or w.data_at is None:
        return np.zeros(len(providers))
    rate = spec.catalog.egress[w.data_at].usd_per_gb or 0.0
    return np.array([0.0 if p == w.data_at else w.data_gb * rate for p in providers])


def emergency_quota_tpm(api_offer: object) -> float | None:
    """Tokens/min an api offer can be relied on for after a provider loss (None: no stated quota).

    ``fallback_tokens_per_minute`` when the host states an emergency quota apart from its
    normal limit, else ``max_tokens_per_minute``.
    """
    fallback = getattr(api_offer, "fallback_tokens_per_minute", None)
    return fallback if fallback else getattr(api_offer, "max_tokens_per_minute", None)


def context_limit(spec: Spec, w: InferenceWorkload, api_offer: object) -> float:
    """Longest request (input + output tokens) an api offer accepts for ``w``'s model.

    The offer's own ``context_tokens`` when it states one, else the model card's (a host
    cannot serve past the model's context), else no limit.
    """
    own = getattr(api_offer, "context_tokens", None)
    if own:
        return float(own)
    card = w.model if not isinstance(w.model, str) else spec.catalog.models.get(w.model)
    return float(card.context_tokens) if card is not None and card.context_tokens else math.inf


def _unused_api_offer(spec: Spec, api_offer: object) -> str:
    """Why no workload buys from ``api_offer``: no workload wants its model, or none fits its context."""
    model = getattr(api_offer, "model", "")
    wanting = [
        w
        for w in spec.workloads
        if isinstance(w, InferenceWorkload)
        and w.allow_api
        and (w.model if isinstance(w.model, str) else w.model.name) == model
    ]
    head = f"no workload can use api offer {getattr(api_offer, 'id', '')!r}"
    if not wanting:
        return f"{head}: no api or inference workload (with allow_api) wants model {model!r}"
    w = min(wanting, key=lambda w: max(i + o for i, o, _ in w.length_mix))
    return (
        f"{head}: its context of {context_limit(spec, w, api_offer):.0f} tokens is shorter than every "
        f"request of the workloads that want model {model!r} ({w.name!r}: up to "
        f"{max(i + o for i, o, _ in w.length_mix)} tokens)"
    )


def _api_rows(
    spec: Spec, w_index: int, w: InferenceWorkload | ApiWorkload, api_offers: list, seconds: float
) -> list[tuple[int, int, float, float, float]]:
    """(w, a, usd for the whole demand, tokens/min at full share, cap in requests/s)."""
    rows = []
    months = spec.horizon_months
    for a_index, a in enumerate(api_offers):
        model = w.model if isinstance(w.model, str) else w.model.name
        if a.model != model:
            continue
        if isinstance(w, InferenceWorkload):
            if context_limit(spec, w, a) < max(i + o for i, o, _ in w.length_mix):
                continue  # its longest request does not fit the offer's context
            mean_in, mean_out = w.mean_tokens  # exact: price is linear in tokens
            per_request = (mean_in * a.usd_per_mtok_in + mean_out * a.usd_per_mtok_out) / 1e6
            usd = per_request * w.requests_per_s * seconds
            tokens_per_request = mean_in + mean_out
            tpm = w.peak_requests_per_s * tokens_per_request * 60
            quota = emergency_quota_tpm(a)
            cap = quota / (tokens_per_request * 60) if quota else math.inf
        else:
            usd = (
                w.mtok_in_per_month * a.usd_per_mtok_in + w.mtok_out_per_month * a.usd_per_mtok_out
            ) * months
            tpm = (w.mtok_in_per_month + w.mtok_out_per_month) * 1e6 / (HOURS_PER_MONTH * 60)
            cap = math.inf
        rows.append((w_index, a_index, usd, tpm, cap))
    return rows


def build_candidates(spec: Spec) -> Candidates:
    """All feasible (workload, offer) and (workload, api offer) pairs as arrays."""
    all_offers = sorted(spec.catalog.offers.values(), key=lambda o: o.id)
    key_of = {(o.accelerator, o.chips_per_instance) for o in all_offers}
    key_list = sorted(key_of)
    key_index = {k: i for i, k in enumerate(key_list)}
    keys = np.array([key_index[(o.accelerator, o.chips_per_instance)] for o in all_offers], int)
    api_offers = sorted(spec.catalog.api_offers.values(), key=lambda a: a.id)
    seconds = HOURS_PER_MONTH * 3600 * spec.horizon_months
    workloads = spec.workloads

    inf_parts: list[tuple[np.ndarray, ...]] = []
    spot_blocked = np.zeros(len(all_offers), bool)  # offers only a training spot cap shut
    tr_parts: list[tuple[np.ndarray, ...]] = []
    api_rows: list[tuple[int, int, float, float, float]] = []
    for wi, w in enumerate(workloads):
        reasons: Counter = Counter()
        found = 0
        if isinstance(w, InferenceWorkload):
            idx, t, r, cfg = _inference_rows(spec, w, all_offers, keys, key_list, reasons)
            inf_parts.append((np.full(len(idx), wi), idx, t, r, cfg))
            found += len(idx)
        elif isinstance(w, TrainingWorkload):
            parts = _training_rows(spec, w, all_offers, keys, key_list, reasons, spot_blocked)
            tr_parts.append((np.full(len(parts[0]), wi), *parts))
            found += len(parts[0])
        if isinstance(w, ApiWorkload) or (isinstance(w, InferenceWorkload) and w.allow_api):
            rows = _api_rows(spec, wi, w, api_offers, seconds)
            api_rows.extend(rows)
            found += len(rows)
        if found == 0:
            raise no_offer_error(spec, wi, len(all_offers), reasons)

    def cat(parts: list[tuple[np.ndarray, ...]], i: int, dtype: type) -> np.ndarray:
        return np.concatenate([p[i] for p in parts]).astype(dtype) if parts else np.zeros(0, dtype)

    inf_o_all = cat(inf_parts, 1, int)
    tr_o_all = cat(tr_parts, 1, int)
    used = np.union1d(inf_o_all, tr_o_all).astype(int)
    position = {o.id: i for i, o in enumerate(all_offers)}
    is_used = np.zeros(len(all_offers), bool)
    is_used[used] = True
    for index, offer in enumerate(spec.model.offers):
        # an offer only a spot cap shuts is policy at work, not a mistake in the offer
        if not is_used[position[offer.id]] and not spot_blocked[position[offer.id]]:
            raise spec.error(
                f"no workload can use offer {offer.id!r} (accelerator {offer.accelerator}, "
                f"stack {spec.catalog.accelerators[offer.accelerator].stack}): "
                "check the workloads' stacks, memory and SLOs",
                "offers",
                index,
            )
    bought = {api_offers[int(row[1])].id for row in api_rows}
    for index, api_offer in enumerate(spec.model.api_offers):
        if api_offer.id not in bought:
            raise spec.error(_unused_api_offer(spec, api_offer), "api_offers", index)
    remap = np.full(len(all_offers), -1)
    remap[used] = np.arange(len(used))
    offers = [all_offers[j] for j in used]
    accs = spec.catalog.accelerators
    hours = HOURS_PER_MONTH * spec.horizon_months
    api = np.array(api_rows, dtype=float).reshape(-1, 5)
    return Candidates(
        workloads=workloads,
        peak_rps=np.array(
            [w.peak_requests_per_s if isinstance(w, InferenceWorkload) else 0.0 for w in workloads]
        ),
        offers=offers,
        offer_provider=np.array([o.provider for o in offers], dtype=object),
        offer_vendor=np.array([accs[o.accelerator].vendor for o in offers], dtype=object),
        offer_cpi=np.array([o.chips_per_instance for o in offers], int),
        offer_usd_per_instance=np.array([o.chips_per_instance * o.usd_per_chip_hour * hours for o in offers]),
        offer_avail=np.array([o.available_instances for o in offers], int),
        offer_spot=np.array([o.term == "spot" for o in offers], bool),
        inf_w=cat(inf_parts, 0, int),
        inf_o=remap[inf_o_all],
        inf_chips=cat(inf_parts, 2, int),
        inf_rps=cat(inf_parts, 3, float),
        inf_config=cat(inf_parts, 4, object),
        tr_w=cat(tr_parts, 0, int),
        tr_o=remap[tr_o_all],
        tr_chips=cat(tr_parts, 2, int),
        tr_instances=cat(tr_parts, 3, int),
        tr_hours=cat(tr_parts, 4, float),
        tr_usd=cat(tr_parts, 5, float),
        tr_egress_usd=cat(tr_parts, 6, float),
        api_offers=api_offers,
        api_w=api[:, 0].astype(int),
        api_a=api[:, 1].astype(int),
        api_usd=api[:, 2],
        api_tpm=api[:, 3],
        api_cap_rps=api[:, 4],
        accelerators=dict(accs),
        spot_cap=np.array(
            [
                _spot_cap(spec, w) if isinstance(w, InferenceWorkload | TrainingWorkload) else 1.0
                for w in workloads
            ]
        ),
    )
