"""Build the planning MILP from candidate arrays (``docs/planning-model.md``).

One ``define_<family>`` function per constraint family (``constraints_core.py``,
``constraints_policy.py``), each adding a block of rows from NumPy index arrays; no
Python loop runs per variable.  ``build_milp`` calls them in order.  Columns (see ``Milp.cols``):

====  =====================================================  =========
x     replicas of inference candidate k                       integer
u     instances rented on offer o for the horizon             integer
y     training candidate k chosen                             binary
s     share of a workload's demand bought from api cand. k    [0, 1]
z     requests/s served by replicas of inference workload w   >= 0
T     total spend over the horizon, USD                       >= 0
e     elastic slack (only when diagnosing infeasibility)      >= 0
====  =====================================================  =========
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from polyfleet.plan.candidates import Candidates
from polyfleet.plan.constraints_core import (
    define_api_rate,
    define_budget,
    define_capacity,
    define_demand,
    define_packing,
    define_served,
    define_spend,
)
from polyfleet.plan.constraints_policy import define_lock_in, define_spend_share, define_spot, define_survival
from polyfleet.plan.elastic import add_slack
from polyfleet.plan.model_rows import BuildContext, Rows, workload_kinds
from polyfleet.plan.tighten import define_min_replicas
from polyfleet.spec import Policy

#: relative price perturbation per rank step that breaks exact ties toward lower offer ids
TIE_BREAK = 1e-7

FAMILIES = (
    "demand",
    "packing",
    "capacity",
    "api-rate",
    "spot",
    "lock-in",
    "spend-share",
    "survival",
    "budget",
)


@dataclass
class Milp:
    """A built model: arrays ready for HiGHS plus the names needed to read it back."""

    cost: np.ndarray  # true USD per unit of each column
    objective: np.ndarray  # cost plus tie-break, or slack penalties when elastic
    lower: np.ndarray
    upper: np.ndarray
    integer: np.ndarray  # bool per column
    cols: dict[str, slice]
    A: sp.csr_matrix = field(repr=False)
    row_lower: np.ndarray = field(repr=False)
    row_upper: np.ndarray = field(repr=False)
    row_family: np.ndarray = field(repr=False)  # family name per row
    row_label: np.ndarray = field(repr=False)  # workload / group / provider per row
    slack_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, int))  # row of each e
    # what a rounding heuristic needs: offer and chips of each x, chips per instance of each
    # u, job of each y
    x_offer: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    x_chips: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    u_cpi: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    y_job: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    x_workload: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    x_rps: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    peak_rps: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # D per workload
    s_workload: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    u_provider: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)  # code per offer
    u_vendor: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)  # code per offer
    y_offer: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)  # offer of each y

    @property
    def n_cols(self) -> int:
        return len(self.cost)


_DEFINE = {
    "demand": define_demand,
    "packing": define_packing,
    "capacity": define_capacity,
    "api-rate": define_api_rate,
    "spot": define_spot,
    "lock-in": define_lock_in,
    "spend-share": define_spend_share,
    "survival": define_survival,
    "budget": define_budget,
}


def _layout(cand: Candidates) -> dict[str, slice]:
    sizes = {
        "x": len(cand.inf_w),
        "u": len(cand.offers),
        "y": len(cand.tr_w),
        "s": len(cand.api_w),
        "z": len(cand.workloads),
        "n": len(cand.workloads),
        "T": 1,
    }
    cols, start = {}, 0
    for name, size in sizes.items():
        cols[name] = slice(start, start + size)
        start += size
    return cols


def _bounds(cand: Candidates, cols: dict[str, slice]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = cols["T"].stop
    lower = np.zeros(n)
    upper = np.full(n, np.inf)
    integer = np.zeros(n, bool)
    cpi = cand.offer_cpi[cand.inf_o]
    upper[cols["x"]] = np.floor(cand.offer_avail[cand.inf_o] * cpi / np.maximum(cand.inf_chips, 1))
    upper[cols["u"]] = cand.offer_avail
    upper[cols["y"]] = 1.0
    upper[cols["s"]] = 1.0
    inf, _, _ = workload_kinds(cand)
    upper[cols["z"]] = np.where(inf, np.inf, 0.0)
    upper[cols["n"]] = np.where(inf, np.inf, 0.0)
    integer[cols["x"]] = integer[cols["u"]] = integer[cols["y"]] = True
    return lower, upper, integer


def build_milp(
    cand: Candidates, policy: Policy, *, families: tuple[str, ...] = FAMILIES, elastic: str | None = None
) -> Milp:
    """The MILP for ``cand`` under ``policy`` with the given constraint families.

    With ``elastic`` set to a family name, that family's rows get a non-negative slack
    column each and the objective becomes the total slack (scaled per row to a fraction),
    so the solution shows which workload, group or provider cannot be met.
    """
    cols = _layout(cand)
    lower, upper, integer = _bounds(cand, cols)
    cost = np.zeros(cols["T"].stop)
    cost[cols["u"]] = cand.offer_usd_per_instance
    cost[cols["y"]] = cand.tr_usd
    cost[cols["s"]] = cand.api_usd
    ctx = BuildContext(cand=cand, policy=policy, cols=cols, cost=cost, rows=Rows(), elastic=elastic)
    define_served(ctx)
    define_spend(ctx)
    if "demand" in families:
        define_min_replicas(ctx)
    for family in FAMILIES:
        if family in families:
            _DEFINE[family](ctx)
    rows = ctx.rows
    n_cols = len(cost)
    A = sp.csr_matrix(
        (np.concatenate(rows.v), (np.concatenate(rows.i), np.concatenate(rows.j))), shape=(rows.n, n_cols)
    )
    row_lower, row_upper = np.concatenate(rows.lo), np.concatenate(rows.hi)
    objective = _tie_broken(cost, cols, cand)
    slack_rows = np.zeros(0, int)
    if elastic is not None:
        slack_rows = ctx.slack_rows.get(elastic, np.zeros(0, int))
        A, objective, lower, upper, integer, cost = add_slack(
            A, row_lower, row_upper, slack_rows, lower, upper, integer, cost
        )
    return Milp(
        cost=cost,
        objective=objective,
        lower=lower,
        upper=upper,
        integer=integer,
        cols=cols,
        A=A.tocsr(),
        row_lower=row_lower,
        row_upper=row_upper,
        row_family=np.concatenate(rows.family),
        row_label=np.concatenate(rows.label),
        slack_rows=slack_rows,
        x_offer=cand.inf_o,
        x_chips=cand.inf_chips,
        u_cpi=cand.offer_cpi,
        y_job=cand.tr_w,
        x_workload=cand.inf_w,
        x_rps=cand.inf_rps,
        peak_rps=cand.peak_rps,
        s_workload=cand.api_w,
        u_provider=_codes(np.array([o.provider for o in cand.offers], dtype=object)),
        u_vendor=_codes(np.asarray(cand.offer_vendor, dtype=object)),
        y_offer=cand.tr_o,
    )


def _codes(values: np.ndarray) -> np.ndarray:
    """Integer code per entry (equal values, equal codes; sorted order)."""
    return np.unique(values, return_inverse=True)[1] if len(values) else np.zeros(0, int)


def _tie_broken(cost: np.ndarray, cols: dict[str, slice], cand: Candidates) -> np.ndarray:
    """Cost with a 1e-7 relative nudge per rank so exact ties go to the lower offer id."""
    objective = cost.copy()
    # a replica costs a nudge of its chips' share of the instance, so spare chips in an
    # instance already rented are not filled with replicas nobody asked for
    per_chip = cand.offer_usd_per_instance[cand.inf_o] / cand.offer_cpi[cand.inf_o]
    objective[cols["x"]] = TIE_BREAK * per_chip * cand.inf_chips
    rank_u = np.arange(len(cand.offers)) / max(len(cand.offers), 1)
    objective[cols["u"]] *= 1 + TIE_BREAK * rank_u
    if len(cand.tr_o):
        objective[cols["y"]] *= 1 + TIE_BREAK * cand.tr_o / max(len(cand.offers), 1)
    if len(cand.api_a):
        objective[cols["s"]] *= 1 + TIE_BREAK * cand.api_a / max(len(cand.api_offers), 1)
    return objective
