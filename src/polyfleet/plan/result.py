"""The ``Plan`` result: purchases, allocations, shares and survival, read back from a solution."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polyfleet.plan.build import Milp
from polyfleet.plan.candidates import Candidates
from polyfleet.plan.solve import Solution, Status
from polyfleet.plan.survival import plan_providers, survival_from_workloads, worst_by_provider
from polyfleet.plan.terms import BLOCK_TERM, block_days, commitments
from polyfleet.spec import InferenceWorkload, Policy, TrainingWorkload


@dataclass(frozen=True)
class Infeasibility:
    """Why no plan exists: the constraint family and who cannot be satisfied."""

    family: str
    subject: str
    message: str


@dataclass
class Plan:
    """A plan in the shape of the JSON contract (``docs/planning-model.md``, Outputs)."""

    status: Status
    horizon_months: float
    total_usd: float = 0.0
    solve_seconds: float = 0.0
    build_seconds: float = 0.0
    gap: float = 0.0
    limit: str = ""
    method: str = "highs"  # where the plan came from (solve.Solution.method)
    purchases: list[dict[str, Any]] = field(default_factory=list)
    workloads: list[dict[str, Any]] = field(default_factory=list)
    shares: dict[str, dict[str, float]] = field(default_factory=dict)
    survival: dict[str, float] = field(default_factory=dict)
    #: per group, per value: the largest share of any workload's peak it serves (max_share)
    capacity_shares: dict[str, dict[str, float]] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)
    explain: dict[str, Any] | None = None
    infeasibility: Infeasibility | None = None
    monthly: dict[str, Any] | None = None  # monthly plans: months, schedule, commitments, porting
    #: single-period plans: what the plan signs for (reserved terms, capacity blocks; plan/terms.py)
    commitments: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # from the spec (spec_checks), planned as given

    @property
    def feasible(self) -> bool:
        return self.status in (Status.OPTIMAL, Status.FEASIBLE)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract; ``explain`` only when computed, ``infeasible`` only when infeasible."""
        out: dict[str, Any] = {
            "status": str(self.status),
            "horizon_months": self.horizon_months,
            "total_usd": round(self.total_usd, 2),
            "solve_seconds": round(self.solve_seconds, 4),
            "gap": self.gap if self.feasible and math.isfinite(self.gap) else None,  # no plan: no gap
            "method": self.method,
            "purchases": self.purchases,
            "workloads": self.workloads,
            "shares": self.shares,
            "survival": self.survival,
            "capacity_shares": self.capacity_shares,
            "policy": self.policy,
        }
        if self.limit:
            out["limit"] = self.limit
        low = sorted(
            {
                a["accelerator"]
                for w in self.workloads
                for a in w["allocations"]
                if a.get("accelerator") and a.get("confidence") == "low" and not a.get("measured")
            }
        )
        if low:
            out["low_confidence_accelerators"] = low
        if self.warnings:
            out["warnings"] = self.warnings
        if self.explain is not None:
            out["explain"] = self.explain
        if self.monthly is None and self.feasible:
            out["commitments"] = self.commitments
        if self.monthly is not None:
            out["periods"] = "monthly"
            out.update(self.monthly)
        if self.infeasibility is not None:
            out["infeasible"] = {
                "family": self.infeasibility.family,
                "subject": self.infeasibility.subject,
                "message": self.infeasibility.message,
            }
        return out


def _policy_dict(policy: Policy) -> dict[str, Any]:
    return {
        "max_share": {"provider": policy.max_share.provider, "vendor": policy.max_share.vendor},
        "max_spend_share": {
            "provider": policy.max_spend_share.provider,
            "vendor": policy.max_spend_share.vendor,
        },
        "api_fallback": policy.api_fallback,
        "survive_provider_loss": policy.survive_provider_loss,
        "budget_usd": policy.budget_usd,
        "max_spot_share": policy.max_spot_share,
        "spot_counts_for_survival": policy.spot_counts_for_survival,
    }


def _offer_fields(cand: Candidates, o: int) -> dict[str, Any]:
    offer = cand.offers[o]
    return {
        "offer": offer.id,
        "provider": offer.provider,
        "vendor": str(cand.offer_vendor[o]),
        "accelerator": offer.accelerator,
        "region": offer.region,
        "term": offer.term,
    }


def _confidence(cand: Candidates, w: Any, o: int) -> dict[str, Any]:
    """The accelerator's catalog confidence, and ``measured`` when the spec overrides it."""
    offer = cand.offers[o]
    acc = cand.accelerators.get(offer.accelerator)
    out: dict[str, Any] = {"confidence": acc.confidence if acc is not None else "medium"}
    throughput = getattr(w, "throughput", {})
    if offer.id in throughput or offer.accelerator in throughput:
        out["measured"] = True
    return out


def read_plan(cand: Candidates, milp: Milp, sol: Solution, policy: Policy, horizon_months: float) -> Plan:
    """Turn column values into purchases, per-workload allocations, shares and survival."""
    v = sol.values
    x = np.rint(v[milp.cols["x"]]).astype(int)
    u = np.rint(v[milp.cols["u"]]).astype(int)
    y = np.rint(v[milp.cols["y"]]).astype(int)
    s = np.clip(v[milp.cols["s"]], 0.0, 1.0)
    s = np.where(s < 1e-9, 0.0, s)

    u_usd = u * cand.offer_usd_per_instance
    # inference cost per allocation: the offer's rented cost split by chips used
    chips_used = np.zeros(len(cand.offers))
    np.add.at(chips_used, cand.inf_o, cand.inf_chips * x)
    alloc_chips = cand.inf_chips * x
    with np.errstate(invalid="ignore", divide="ignore"):
        alloc_usd = np.where(alloc_chips > 0, u_usd[cand.inf_o] * alloc_chips / chips_used[cand.inf_o], 0.0)
    tr_usd = cand.tr_usd * y
    api_usd = cand.api_usd * s

    purchases = _purchases(cand, u, y, s, u_usd, tr_usd, api_usd)
    workloads = _workloads(cand, x, y, s, alloc_usd, tr_usd, api_usd, policy)
    total = float(u_usd.sum() + tr_usd.sum() + api_usd.sum())
    shares = _shares(purchases, total)
    providers = plan_providers({"purchases": purchases})
    detail = survival_from_workloads(workloads, providers, policy.spot_counts_for_survival)
    survival = worst_by_provider(detail, providers)
    for w in workloads:
        if w["name"] in detail:
            w["survival"] = detail[w["name"]]
    return Plan(
        status=sol.status,
        horizon_months=horizon_months,
        total_usd=total,
        solve_seconds=sol.seconds,
        gap=sol.gap,
        limit=sol.limit,
        method=sol.method,
        purchases=purchases,
        workloads=workloads,
        shares=shares,
        survival=survival,
        capacity_shares=capacity_shares(workloads),
        policy=_policy_dict(policy),
        commitments=commitments(purchases, workloads, {o.id: o for o in cand.offers}, horizon_months),
    )


def _purchases(
    cand: Candidates,
    u: np.ndarray,
    y: np.ndarray,
    s: np.ndarray,
    u_usd: np.ndarray,
    tr_usd: np.ndarray,
    api_usd: np.ndarray,
) -> list[dict[str, Any]]:
    instances = u.copy()
    usd = u_usd.copy()
    egress = cand.tr_egress_usd * y
    np.add.at(instances, cand.tr_o, cand.tr_instances * y)
    np.add.at(usd, cand.tr_o, tr_usd - egress)
    out = []
    for o in np.flatnonzero(instances > 0):
        offer = cand.offers[o]
        out.append(
            {
                **_offer_fields(cand, o),
                "region": offer.region,
                "term": offer.term,
                "instances": int(instances[o]),
                "chips": int(instances[o] * cand.offer_cpi[o]),
                "usd": round(float(usd[o]), 2),
            }
        )
    # data moved for training is paid to the provider it leaves (data_at), not the offer's
    by_source: dict[str, float] = {}
    for k in np.flatnonzero(egress > 0):
        source = cand.workloads[cand.tr_w[k]].data_at
        by_source[source] = by_source.get(source, 0.0) + float(egress[k])
    for source, total in sorted(by_source.items()):
        out.append(
            {
                "offer": f"egress:{source}",
                "provider": source,
                "vendor": "",
                "accelerator": None,
                "region": None,
                "term": "egress",
                "instances": 0,
                "chips": 0,
                "usd": round(total, 2),
            }
        )
    api_total = np.zeros(len(cand.api_offers))
    np.add.at(api_total, cand.api_a, api_usd)
    for a in np.flatnonzero(api_total > 0):
        api = cand.api_offers[a]
        out.append(
            {
                "offer": api.id,
                "provider": api.provider,
                "vendor": api.vendor,
                "accelerator": None,
                "region": api.tier,
                "term": "per-token",
                "instances": 0,
                "chips": 0,
                "usd": round(float(api_total[a]), 2),
            }
        )
    return out


def _api_prices(api: Any) -> dict[str, Any]:
    """An api offer's own input and output prices (what routes bill each side at)."""
    return {"usd_per_mtok_in": api.usd_per_mtok_in, "usd_per_mtok_out": api.usd_per_mtok_out}


def _api_fallbacks(cand: Candidates, wi: int, unlimited_ok: bool) -> list[dict[str, Any]]:
    """Api offers of an inference workload's model that survival may count (docs: Survival).

    Offers with a stated emergency quota, and with ``api_fallback: unlimited`` also those
    without (``requests_per_s: null``).
    """
    w = cand.workloads[wi]
    mean_in, mean_out = w.mean_tokens
    tokens = mean_in + mean_out
    out = []
    for k in np.flatnonzero(cand.api_w == wi):
        api = cand.api_offers[cand.api_a[k]]
        cap = float(cand.api_cap_rps[k])
        if not math.isfinite(cap) and not unlimited_ok:
            continue
        out.append(
            {
                "offer": api.id,
                "provider": api.provider,
                "vendor": api.vendor,
                "requests_per_s": round(cap, 6) if math.isfinite(cap) else None,
                "tokens_per_minute": round(cap * tokens * 60, 1) if math.isfinite(cap) else None,
                "tokens_per_request": round(tokens, 4),
                "usd_per_request": (mean_in * api.usd_per_mtok_in + mean_out * api.usd_per_mtok_out) / 1e6,
                **_api_prices(api),
            }
        )
    return out


def _workloads(
    cand: Candidates,
    x: np.ndarray,
    y: np.ndarray,
    s: np.ndarray,
    alloc_usd: np.ndarray,
    tr_usd: np.ndarray,
    api_usd: np.ndarray,
    policy: Policy,
) -> list[dict[str, Any]]:
    out = []
    for wi, w in enumerate(cand.workloads):
        allocations: list[dict[str, Any]] = []
        D = float(cand.peak_rps[wi])
        for k in np.flatnonzero((cand.inf_w == wi) & (x > 0)):
            o = cand.inf_o[k]
            rps = float(cand.inf_rps[k] * x[k])
            allocations.append(
                {
                    **_offer_fields(cand, o),
                    "replicas": int(x[k]),
                    "chips": int(x[k] * cand.inf_chips[k]),
                    "share": round(rps / D, 6),
                    "requests_per_s": round(rps, 4),
                    "usd": round(float(alloc_usd[k]), 2),
                    **_confidence(cand, w, o),
                }
            )
        for k in np.flatnonzero((cand.tr_w == wi) & (y > 0)):
            o = cand.tr_o[k]
            allocations.append(
                {
                    **_offer_fields(cand, o),
                    "replicas": 1,
                    "chips": int(cand.tr_chips[k]),
                    "instances": int(cand.tr_instances[k]),
                    "share": 1.0,
                    "run_hours": round(float(cand.tr_hours[k]), 2),
                    **_block(cand, o, k),
                    "usd": round(float(tr_usd[k]), 2),
                    **_egress(cand, k),
                    **_confidence(cand, w, o),
                }
            )
        for k in np.flatnonzero((cand.api_w == wi) & (s > 0)):
            api = cand.api_offers[cand.api_a[k]]
            allocations.append(
                {
                    "offer": api.id,
                    "provider": api.provider,
                    "vendor": api.vendor,
                    "accelerator": None,
                    "replicas": 0,
                    "chips": 0,
                    "share": round(float(s[k]), 6),
                    "resells": api.resells,
                    "usd": round(float(api_usd[k]), 2),
                    **_api_prices(api),
                }
            )
        kind = (
            "inference"
            if isinstance(w, InferenceWorkload)
            else ("training" if isinstance(w, TrainingWorkload) else "api")
        )
        entry = {
            "name": w.name,
            "kind": kind,
            "demand": _demand(w, D),
            "usd": round(sum(a["usd"] for a in allocations), 2),
            "allocations": allocations,
        }
        if kind == "inference":
            entry["api_fallbacks"] = _api_fallbacks(cand, wi, policy.api_fallback == "unlimited")
        out.append(entry)
    return out


def _demand(w: Any, peak_rps: float) -> dict[str, float]:
    """What the workload must be served: what risk re-dispatch and the gateway read back."""
    if isinstance(w, InferenceWorkload):
        # 6 decimals, unless that rounds a tiny demand to 0 (its survival is a share of it)
        peak = round(peak_rps, 6) or float(peak_rps)
        return {"requests_per_s": float(w.requests_per_s), "peak_requests_per_s": peak}
    if isinstance(w, TrainingWorkload):
        return {"tokens_b": float(w.tokens_b), "deadline_days": float(w.deadline_days)}
    return {
        "mtok_in_per_month": float(w.mtok_in_per_month),
        "mtok_out_per_month": float(w.mtok_out_per_month),
    }


def _block(cand: Candidates, o: int, k: int) -> dict[str, int]:
    """``block_days`` of a training placement on a capacity block (what it pays for)."""
    if cand.offers[o].term != BLOCK_TERM:
        return {}
    return {"block_days": block_days(float(cand.tr_hours[k]))}


def _egress(cand: Candidates, k: int) -> dict[str, float]:
    """``egress_usd`` of training candidate k, only when it moves data."""
    usd = float(cand.tr_egress_usd[k])
    return {"egress_usd": round(usd, 2)} if usd else {}


def capacity_shares(workloads: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per provider and vendor: the largest share of any workload's demand it serves.

    Inference: replicas' requests/s plus api shares over peak demand D; api workloads:
    their demand share.  Training jobs are not counted (docs: Lock-in caps).
    """
    out: dict[str, dict[str, float]] = {"provider": {}, "vendor": {}}
    for w in workloads:
        if w["kind"] == "training":
            continue
        peak = w["demand"].get("peak_requests_per_s")
        for group in ("provider", "vendor"):
            served: dict[str, float] = {}
            for a in w["allocations"]:
                if not a.get(group):
                    continue
                share = a["requests_per_s"] / peak if a.get("accelerator") and peak else a["share"]
                served[a[group]] = served.get(a[group], 0.0) + share
            for value, share in served.items():
                out[group][value] = max(out[group].get(value, 0.0), round(share, 6))
    return {g: dict(sorted(d.items())) for g, d in out.items()}


def _shares(purchases: list[dict[str, Any]], total: float) -> dict[str, dict[str, float]]:
    shares: dict[str, dict[str, float]] = {"provider": {}, "vendor": {}}
    if total <= 0:
        return shares
    for p in purchases:
        for group in ("provider", "vendor"):
            key = p[group]
            if key:
                shares[group][key] = shares[group].get(key, 0.0) + p["usd"] / total
    return {g: {k: round(val, 6) for k, val in sorted(d.items())} for g, d in shares.items()}
