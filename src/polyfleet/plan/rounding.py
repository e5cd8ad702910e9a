"""The rounded LP plan: the oldest way to a whole-replica plan, now the fallback.

Used when the LP plan path (plan/solve.py ``_lp_plan``: column generation, dive,
restricted MILP, large-neighbourhood search) finds no plan in time, or the model's layout
is not single-period (large monthly models).  The LP is solved with capacity, caps and
budget tightened a little, replicas are rounded up, or down and topped up at the least
marginal cost, and rows that still break are tightened further (docs/planning-model.md,
"Solving within the time limit").
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import scipy.sparse as sp

from polyfleet.plan.build import Milp
from polyfleet.plan.dive import derive, violations
from polyfleet.plan.highs import SolveOptions, Status, build_highs, run_highs

#: (row family, factor) applied to the LP before rounding: capacity rows keep 10% spare
#: instances, share caps and budget 3% headroom
_TIGHTEN = {"capacity": 0.9, "spend-share": 0.97, "budget": 0.97}


def _tightened(milp: Milp, extra: np.ndarray, cap_scale: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """Row matrix and upper bounds with capacity, caps and budget tightened (see _TIGHTEN).

    ``extra`` is subtracted from the capacity rows' bounds: instances a previous rounding
    overshot at that offer, so the next LP leaves room for them.  ``cap_scale`` further
    scales each spend-share row's cap (1 until a rounding broke that cap).
    """
    A = milp.A.tocsr(copy=True)
    upper = milp.row_upper.copy()
    cap_rows = milp.row_family == "capacity"
    avail = upper[cap_rows]
    # small offers keep every instance (10% of a few would close them); overshoot repairs them
    tight = np.where(avail <= 10, avail, np.floor(avail * _TIGHTEN["capacity"]))
    upper[cap_rows] = np.maximum(tight - extra[cap_rows], 0.0)
    budget_rows = milp.row_family == "budget"
    upper[budget_rows] *= _TIGHTEN["budget"]
    t_col = milp.cols["T"].start
    for row in np.flatnonzero(milp.row_family == "spend-share"):  # few rows: one per provider/vendor
        lo, hi = A.indptr[row], A.indptr[row + 1]
        at_t = lo + np.flatnonzero(A.indices[lo:hi] == t_col)
        A.data[at_t] *= _TIGHTEN["spend-share"] * cap_scale[row]
    return A, upper


def _ceil_replicas(milp: Milp, x_lp: np.ndarray) -> np.ndarray:
    """Every fractional replica count rounded up (keeps every >= row of the LP)."""
    return np.ceil(x_lp - 1e-7)


def _share_matrix(milp: Milp, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lock-in rows' activity at ``v`` and their change per instance added at each offer.

    A row reads ``spend[group] - cap x T <= 0``; one more instance of offer o moves it by
    ``cost_o x (member - cap)``.
    """
    rows = np.flatnonzero(milp.row_family == "spend-share")
    us, t_col = milp.cols["u"], milp.cols["T"].start
    if not len(rows):
        return np.zeros(0), np.zeros((0, us.stop - us.start))
    lock = milp.A[rows]
    per_instance = lock[:, us.start : us.stop].toarray()
    t_coef = lock[:, t_col].toarray().ravel()
    return lock @ v, per_instance + t_coef[:, None] * milp.cost[us][None, :]


def _floor_and_fill(
    milp: Milp, x_lp: np.ndarray, s_lp: np.ndarray, room: np.ndarray, v: np.ndarray | None = None
) -> np.ndarray:
    """Replicas rounded down, then each short workload topped up at the least marginal cost.

    A replica added where a rented instance still has free chips costs nothing more; one
    that needs a new instance costs that instance.  Candidates are ranked by that marginal
    cost per request/s (ties: the offer's price per chip), within the offers' ``room``
    (instances they may still rent) and, given the rest of the plan ``v``, without pushing a
    provider or vendor past its share cap when another candidate would not.  Far cheaper
    than rounding every fractional pair up when workloads need only a few replicas each;
    the loop runs per added replica, over one workload's candidates at a time.
    """
    x = np.floor(x_lp + 1e-7)
    n_w = len(milp.peak_rps)
    served = np.bincount(milp.x_workload, milp.x_rps * x, minlength=n_w)
    api = np.bincount(milp.s_workload, s_lp, minlength=n_w) * milp.peak_rps if len(s_lp) else 0.0
    need = np.maximum(milp.peak_rps - served - api, 0.0)
    chips = np.bincount(milp.x_offer, milp.x_chips * x, minlength=len(room)).astype(float)
    inst_usd = milp.cost[milp.cols["u"]]
    per_chip = inst_usd / milp.u_cpi
    act, per_offer = np.zeros(0), np.zeros((0, len(room)))
    if v is not None:
        v = v.copy()
        v[milp.cols["x"]] = x
        v[milp.cols["u"]] = np.ceil(chips / milp.u_cpi - 1e-9)
        v[milp.cols["T"]] = milp.cost @ v
        act, per_offer = _share_matrix(milp, v)
    for w in np.flatnonzero(need > 1e-9)[np.argsort(-need[need > 1e-9], kind="stable")]:
        ks = np.flatnonzero(milp.x_workload == w)
        o, t, r = milp.x_offer[ks], milp.x_chips[ks], milp.x_rps[ks]
        while need[w] > 1e-9:
            now = np.ceil(chips[o] / milp.u_cpi[o] - 1e-9)
            after = np.ceil((chips[o] + t) / milp.u_cpi[o] - 1e-9)
            score = ((after - now) * inst_usd[o] + 1e-3 * per_chip[o] * t) / r
            score[after > room[o]] = np.inf
            if len(act):
                moved = act[:, None] + per_offer[:, o] * (after - now)[None, :]
                breaks = (moved > np.maximum(act, 0.0)[:, None] + 1e-6).any(axis=0)
                if not np.all(breaks | ~np.isfinite(score)):
                    score[breaks] = np.inf  # keep caps while some candidate can
            best = int(np.argmin(score))
            if not np.isfinite(score[best]):
                break  # no room anywhere: the row check will reject this rounding
            if len(act):
                act += per_offer[:, o[best]] * (after[best] - now[best])
            x[ks[best]] += 1
            chips[o[best]] += t[best]
            need[w] -= r[best]
    return x


def _round(milp: Milp, lp_values: np.ndarray, replicas) -> np.ndarray:
    """Replicas by ``replicas``, then the fewest instances that hold them, one place per job."""
    v = lp_values.copy()
    xs, ys = milp.cols["x"], milp.cols["y"]
    y = np.zeros(ys.stop - ys.start)
    for job in np.unique(milp.y_job):  # one job at a time: few training jobs
        k = np.flatnonzero(milp.y_job == job)
        y[k[np.argmax(v[ys][k])]] = 1.0
    v[ys] = y
    if replicas is _ceil_replicas:
        x = _ceil_replicas(milp, v[xs])
    else:
        # room for rented instances: the offer's availability less what training jobs hold
        cap_rows = np.flatnonzero(milp.row_family == "capacity")
        held = milp.A[cap_rows][:, ys.start : ys.stop] @ y
        room = np.maximum(milp.row_upper[cap_rows] - held, 0.0)
        x = _floor_and_fill(milp, v[xs], v[milp.cols["s"]], room, v)
    v[xs] = x
    return derive(milp, v)


#: LP solves the rounding heuristic may spend repairing capacity rows it overshot
_REPAIRS = 4


def rounded_start(milp: Milp, options: SolveOptions) -> np.ndarray | None:
    """A feasible integer plan from the tightened LP by rounding, or None.

    Two roundings of each LP: short workloads topped up (cheap), and every pair rounded
    up (keeps every >= row); the cheaper feasible one wins.  Rounding can overshoot an
    offer's capacity; each repair lowers those offers' bounds in the LP by the overshoot
    and rounds again.  The LP solves share the time budget's first half.
    """
    extra = np.zeros(len(milp.row_upper))
    cap_scale = np.ones(len(milp.row_upper))
    cap_rows = milp.row_family == "capacity"
    lock_rows = milp.row_family == "spend-share"
    deadline = time.perf_counter() + options.time_limit_s / 2
    for _ in range(_REPAIRS):
        left = deadline - time.perf_counter()
        if left <= 0:
            return None
        A, upper = _tightened(milp, extra, cap_scale)
        relaxed = replace(milp, A=A, row_upper=upper)
        lp_options = replace(options, time_limit_s=left)
        lp = run_highs(
            build_highs(relaxed, lp_options, np.zeros_like(milp.integer), milp.upper), relaxed, False
        )
        if lp.status != Status.OPTIMAL:
            return None
        best, high = None, None
        for replicas in (_floor_and_fill, _ceil_replicas):
            v = _round(milp, lp.values, replicas)
            low, high_v, bounds_ok = violations(milp, v)
            if not (low.any() or high_v.any()) and bounds_ok:
                if best is None or milp.cost @ v < milp.cost @ best:
                    best = v
            elif replicas is _ceil_replicas and not low.any():
                high = high_v
                activity = milp.A @ v
        if best is not None:
            return best
        if high is None or (high & ~(cap_rows | lock_rows)).any() or not high.any():
            return None  # only capacity overshoot and broken share caps are repaired
        extra[high & cap_rows] += np.ceil(activity[high & cap_rows] - milp.row_upper[high & cap_rows])
        cap_scale[high & lock_rows] *= 0.9
    return None
