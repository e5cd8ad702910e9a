"""A plan's bought capacity as arrays: the input of the Monte Carlo re-dispatch.

:func:`fleet_from_plan` reads the dictionary ``polyfleet plan --format json`` writes
(``Plan.to_dict()``) and indexes it once: providers, accelerators and price groups become
integer codes so every scenario is evaluated with array operations only.

Two kinds of allocation:

- **flow** (inference and api workloads): capacity in the workload's demand unit.
  Inference demand is its peak requests/s and a replica allocation brings its
  ``requests_per_s``; an api-offer allocation brings ``share`` x demand.  An api
  workload's demand is its tokens over the horizon (Mtok) and each allocation brings
  ``share`` of it.
- **training**: one gang-scheduled job per training workload on one offer, with its
  ``run_hours`` and deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

HOURS_PER_MONTH = 730.0
#: terms whose price moves in a scenario; reserved and per-token prices are contracted, and a
#: capacity block's price is paid up front for the whole block: it cannot move within the block
#: (its capacity, like any bought capacity, is lost only to its provider's outages and shocks)
MOVING_TERMS = ("on-demand", "spot")


class PlanDataError(ValueError):
    """A plan document that cannot be re-dispatched; ``path`` locates the field."""

    def __init__(self, message: str, path: tuple[Any, ...] = ()):
        self.message = message
        self.path = path
        super().__init__(message)


@dataclass(frozen=True)
class Fleet:
    """Bought capacity, indexed for vectorised scenarios.

    Index arrays hold codes into ``providers``, ``accelerators``, ``workloads`` and
    ``price_groups`` (-1: none, e.g. an api offer has no accelerator and a reserved
    term has no moving price).
    """

    horizon_months: float
    total_usd: float
    providers: tuple[str, ...]
    accelerators: tuple[str, ...]
    #: (provider, term) pairs whose price moves: "spot" or "on-demand"
    price_groups: tuple[tuple[str, str], ...]
    workloads: tuple[str, ...]
    kinds: tuple[str, ...]
    #: per workload: peak requests/s (inference), Mtok over the horizon (api), billion tokens (training)
    demand: np.ndarray
    unit: tuple[str, ...]
    usd: np.ndarray
    # flow allocations (inference + api workloads), one row each
    flow_workload: np.ndarray
    flow_capacity: np.ndarray
    flow_provider: np.ndarray
    flow_accelerator: np.ndarray
    flow_group: np.ndarray
    flow_usd: np.ndarray
    # training allocations, one per training workload
    train_workload: np.ndarray
    train_provider: np.ndarray
    train_accelerator: np.ndarray
    train_group: np.ndarray
    train_usd: np.ndarray
    train_run_hours: np.ndarray
    train_deadline_hours: np.ndarray
    #: per inference workload, per provider: served fraction after losing it and what it relies
    #: on (``polyfleet.plan.survival``, the rule the plan table uses)
    survival: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def horizon_hours(self) -> float:
        """Length of the horizon in hours (a month is 730 hours)."""
        return self.horizon_months * HOURS_PER_MONTH

    @property
    def group_usd(self) -> np.ndarray:
        """Nominal spend per price group, shape ``(G,)``: what a price move scales."""
        out = np.zeros(len(self.price_groups))
        for groups, usd in ((self.flow_group, self.flow_usd), (self.train_group, self.train_usd)):
            moving = groups >= 0
            np.add.at(out, groups[moving], usd[moving])
        return out

    @property
    def flow_capacity_by_workload(self) -> np.ndarray:
        """Nominal capacity per workload in its demand unit (0 for training)."""
        return np.bincount(self.flow_workload, self.flow_capacity, minlength=len(self.workloads))


def _get(node: Any, key: str, path: tuple[Any, ...], kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(node, dict):
        raise PlanDataError("expected a mapping", path)
    if key not in node:
        raise PlanDataError(f"required field is missing (expected {what})", (*path, key))
    value = node[key]
    if kind in (float, (int, float)) and isinstance(value, bool):
        raise PlanDataError(f"expected {what}, got {value!r}", (*path, key))
    if not isinstance(value, kind):
        raise PlanDataError(f"expected {what}, got {value!r}", (*path, key))
    return value


def _number(node: Any, key: str, path: tuple[Any, ...], minimum: float = 0.0) -> float:
    value = float(_get(node, key, path, (int, float), "a number"))
    if not np.isfinite(value) or value < minimum:
        raise PlanDataError(f"expected a finite number >= {minimum:g}, got {value!r}", (*path, key))
    return value


class _Codes:
    """Stable integer codes for names, in first-seen order (sorted at the end)."""

    def __init__(self) -> None:
        self.names: dict[Any, int] = {}

    def __call__(self, name: Any) -> int:
        return self.names.setdefault(name, len(self.names))

    def sorted_remap(self) -> tuple[tuple[Any, ...], np.ndarray]:
        names = sorted(self.names)
        remap = np.empty(len(names) + 1, dtype=np.int64)
        remap[-1] = -1  # code -1 stays -1
        for new, name in enumerate(names):
            remap[self.names[name]] = new
        return tuple(names), remap


def _demand(workload: dict, path: tuple[Any, ...], kind: str, horizon: float) -> tuple[float, str]:
    demand = _get(workload, "demand", path, dict, "a mapping of the workload's demand")
    dpath = (*path, "demand")
    if kind == "inference":
        return _number(demand, "peak_requests_per_s", dpath, 1e-12), "requests/s"
    if kind == "api":
        mtok = _number(demand, "mtok_in_per_month", dpath) + _number(demand, "mtok_out_per_month", dpath)
        if mtok <= 0:
            raise PlanDataError("expected some tokens per month", dpath)
        return mtok * horizon, "Mtok"
    return _number(demand, "tokens_b", dpath, 1e-12), "billion tokens"


def _optional(node: dict, key: str, path: tuple[Any, ...], kind: type | tuple[type, ...], what: str) -> None:
    """``node[key]`` absent, null or of ``kind`` (numbers finite and >= 0; a number may not be null)."""
    if not isinstance(node, dict):
        raise PlanDataError("expected a mapping", path)
    if key not in node or (node[key] is None and kind != (int, float)):
        return
    if kind == (int, float):
        _number(node, key, path)
    else:
        _get(node, key, path, kind, what)


def _check_survival_fields(workload: dict, path: tuple[Any, ...]) -> None:
    """The fields ``plan.survival`` reads from an inference workload: types checked here, so a
    hand-edited plan is one line naming the field rather than a traceback from inside it."""
    _optional(workload["demand"], "requests_per_s", (*path, "demand"), (int, float), "a number")
    for a, alloc in enumerate(workload["allocations"]):
        apath = (*path, "allocations", a)
        _optional(alloc, "offer", apath, str, "an offer id")
        _optional(alloc, "term", apath, str, "a term")
    fallbacks = workload.get("api_fallbacks", [])
    if not isinstance(fallbacks, list):
        raise PlanDataError(f"expected a list of api fallbacks, got {fallbacks!r}", (*path, "api_fallbacks"))
    for f, fb in enumerate(fallbacks):
        fpath = (*path, "api_fallbacks", f)
        _get(fb, "provider", fpath, str, "the provider's name")
        _get(fb, "offer", fpath, str, "an api offer id")
        _number(fb, "usd_per_request", fpath)
        _number(fb, "tokens_per_request", fpath)
        if _get(fb, "requests_per_s", fpath, (int, float, type(None)), "a number or null") is not None:
            _number(fb, "requests_per_s", fpath)


def fleet_from_plan(plan: dict[str, Any]) -> Fleet:
    """Index a plan dictionary; raise :class:`PlanDataError` naming the bad field.

    The plan must have a status with allocations (``optimal`` or ``feasible``).
    """
    from polyfleet.plan.survival import survival_from_workloads  # here: spec -> risk -> plan -> spec cycle

    if not isinstance(plan, dict):
        raise PlanDataError("expected a plan: a mapping written by `polyfleet plan --format json`")
    status = plan.get("status")
    if status not in ("optimal", "feasible"):
        raise PlanDataError(f"expected a plan with status optimal or feasible, got {status!r}", ("status",))
    horizon = _number(plan, "horizon_months", (), 1e-12)
    _optional(plan, "policy", (), dict, "a mapping of the plan's policy")
    workloads = _get(plan, "workloads", (), list, "a list of workloads")
    providers, accelerators, groups = _Codes(), _Codes(), _Codes()
    names: list[str] = []
    kinds: list[str] = []
    demand: list[float] = []
    units: list[str] = []
    usd: list[float] = []
    flow: list[tuple[int, float, int, int, int, float]] = []
    train: list[tuple[int, int, int, int, float, float, float]] = []
    for w, workload in enumerate(workloads):
        path: tuple[Any, ...] = ("workloads", w)
        name = _get(workload, "name", path, str, "the workload's name")
        kind = _get(workload, "kind", path, str, "inference, training or api")
        if kind not in ("inference", "training", "api"):
            raise PlanDataError(f"expected inference, training or api, got {kind!r}", (*path, "kind"))
        d, unit = _demand(workload, path, kind, horizon)
        allocations = _get(workload, "allocations", path, list, "a list of allocations")
        if not allocations:
            raise PlanDataError("expected at least one allocation", (*path, "allocations"))
        if kind == "inference":
            _check_survival_fields(workload, path)
        names.append(name)
        kinds.append(kind)
        demand.append(d)
        units.append(unit)
        usd.append(_number(workload, "usd", path))
        if kind == "training" and len(allocations) != 1:
            raise PlanDataError("expected one allocation for a training job", (*path, "allocations"))
        for a, alloc in enumerate(allocations):
            apath = (*path, "allocations", a)
            provider = providers(_get(alloc, "provider", apath, str, "the provider's name"))
            accelerator = alloc.get("accelerator") if isinstance(alloc, dict) else None
            if accelerator is not None and not isinstance(accelerator, str):
                raise PlanDataError(f"expected an accelerator id or null, got {accelerator!r}", (*apath,))
            term = alloc.get("term", "per-token")
            group = groups((alloc["provider"], term)) if term in MOVING_TERMS else -1
            acc = accelerators(accelerator) if accelerator else -1
            cost = _number(alloc, "usd", apath)
            if kind == "training":
                run_hours = _number(alloc, "run_hours", apath, 1e-12)
                deadline = _number(workload["demand"], "deadline_days", (*path, "demand"), 1e-12) * 24
                train.append((w, provider, acc, group, cost, run_hours, deadline))
            elif accelerator is None:
                flow.append((w, _number(alloc, "share", apath) * d, provider, -1, group, cost))
            else:
                flow.append((w, _number(alloc, "requests_per_s", apath), provider, acc, group, cost))
    provider_names, provider_map = providers.sorted_remap()
    accelerator_names, accelerator_map = accelerators.sorted_remap()
    group_names, group_map = groups.sorted_remap()
    f = np.array(flow, dtype=float).reshape(-1, 6)
    t = np.array(train, dtype=float).reshape(-1, 7)

    def codes(column: np.ndarray, remap: np.ndarray) -> np.ndarray:
        return remap[column.astype(np.int64)]

    fleet = Fleet(
        horizon_months=horizon,
        total_usd=float(sum(usd)),
        providers=provider_names,
        accelerators=accelerator_names,
        price_groups=group_names,
        workloads=tuple(names),
        kinds=tuple(kinds),
        demand=np.array(demand),
        unit=tuple(units),
        usd=np.array(usd),
        flow_workload=f[:, 0].astype(np.int64),
        flow_capacity=f[:, 1],
        flow_provider=codes(f[:, 2], provider_map),
        flow_accelerator=codes(f[:, 3], accelerator_map),
        flow_group=codes(f[:, 4], group_map),
        flow_usd=f[:, 5],
        train_workload=t[:, 0].astype(np.int64),
        train_provider=codes(t[:, 1], provider_map),
        train_accelerator=codes(t[:, 2], accelerator_map),
        train_group=codes(t[:, 3], group_map),
        train_usd=t[:, 4],
        train_run_hours=t[:, 5],
        train_deadline_hours=t[:, 6],
        survival=survival_from_workloads(
            workloads,
            list(provider_names),
            bool((plan.get("policy") or {}).get("spot_counts_for_survival", False)),
        ),
    )
    short = (fleet.flow_capacity_by_workload <= 0) & (np.array(kinds) != "training")
    if short.any():
        w = int(np.flatnonzero(short)[0])
        raise PlanDataError("expected allocations with some capacity", ("workloads", w, "allocations"))
    return fleet
