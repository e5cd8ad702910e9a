"""Sample average approximation by an L-shaped (multi-cut Benders) decomposition.

``ScenarioSolver`` keeps one warm HiGHS LP per scenario and returns its cost and the
subgradient in the first stage; ``Master`` is the small MILP over the deals' signs and
sizes with one ``theta`` per scenario; ``solve_saa`` alternates them until the best first
stage is within ``gap`` of the master's bound (``docs/deals.md``, Decomposition).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import highspy
import numpy as np

from polyfleet.deals.lp import Lp, scenario_lp
from polyfleet.deals.problem import DealProblem
from polyfleet.deals.scenarios import Scenarios
from polyfleet.plan.highs import new_highs

INF = highspy.kHighsInf


def cvar(values: np.ndarray, prob: np.ndarray, alpha: float) -> float:
    """CVaR_alpha: the mean of the worst (1 - alpha) of the distribution (Rockafellar-Uryasev)."""
    order = np.argsort(values)[::-1]
    v, p = values[order], prob[order]
    tail = 1 - alpha
    taken = np.minimum(p, np.maximum(tail - (np.cumsum(p) - p), 0.0))
    return float((v * taken).sum() / tail)


def risk_value(first_usd: float, q: np.ndarray, prob: np.ndarray, alpha: float, weight: float) -> float:
    """Objective of a first stage: (1 - w) E[cost] + w CVaR_alpha[cost]."""
    total = first_usd + q
    return float((1 - weight) * (prob @ total) + (weight * cvar(total, prob, alpha) if weight else 0.0))


class ScenarioSolver:
    """One scenario's LP in a warm ``Highs`` object; a new first stage is a bound change."""

    def __init__(self, lp: Lp) -> None:
        self.lp = lp
        h = new_highs()
        h.setOptionValue("threads", 1)
        h.setOptionValue("random_seed", 0)
        h.setOptionValue("presolve", "off")  # measured: cold solves 2.4x faster, warm ones skip it anyway
        model = highspy.HighsLp()
        n_rows, n_cols = lp.A.shape
        model.num_col_, model.num_row_ = n_cols, n_rows
        model.col_cost_ = lp.cost
        model.col_lower_ = lp.lower
        model.col_upper_ = np.where(np.isinf(lp.upper), INF, lp.upper)
        model.row_lower_ = np.where(np.isinf(lp.row_lower), -INF, lp.row_lower)
        model.row_upper_ = np.where(np.isinf(lp.row_upper), INF, lp.row_upper)
        A = lp.A.tocsc()
        A.sort_indices()
        model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        model.a_matrix_.start_ = A.indptr
        model.a_matrix_.index_ = A.indices
        model.a_matrix_.value_ = A.data
        h.passModel(model)
        self.h = h

    def solve(self, first: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """(cost, subgradient in the first stage, column values) at first stage ``first``."""
        idx = self.lp.first.astype(np.int32)
        self.h.changeColsBounds(len(idx), idx, first, first)
        self.h.run()
        status = self.h.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            self.h.clearSolver()  # retry from scratch once (a stale basis)
            self.h.run()
            status = self.h.getModelStatus()
            if status != highspy.HighsModelStatus.kOptimal:
                raise RuntimeError(f"scenario LP not solved: {self.h.modelStatusToString(status)}")
        sol = self.h.getSolution()
        value = float(self.h.getInfo().objective_function_value)
        return value, np.asarray(sol.col_dual)[idx], np.asarray(sol.col_value)


def build_solvers(pb: DealProblem, sc: Scenarios) -> list[ScenarioSolver]:
    """One warm solver per scenario."""
    return [ScenarioSolver(scenario_lp(pb, sc, s)) for s in range(sc.size)]


def first_stage_usd(pb: DealProblem, first: np.ndarray) -> float:
    """Paid at signing: the reservations' blocks."""
    return float(sum(t.first_stage_usd_per_unit * first[2 * d + 1] for d, t in enumerate(pb.deals)))


@dataclass
class Cut:
    scenario: int
    value: float
    grad: np.ndarray
    at: np.ndarray


@dataclass
class SaaResult:
    """The best first stage found, its objective, the master's bound and the scenario costs."""

    first: np.ndarray  # (sign, size) per deal
    objective: float
    bound: float
    q: np.ndarray  # second-stage cost per in-sample scenario at ``first``
    iterations: int
    seconds: float
    cuts: list[Cut] = field(default_factory=list)

    @property
    def gap(self) -> float:
        return max(0.0, (self.objective - self.bound) / max(abs(self.objective), 1e-9))


class Evaluations:
    """Cache of scenario solves per first stage (first stages repeat across runs)."""

    def __init__(self, solvers: list[ScenarioSolver]) -> None:
        self.solvers = solvers
        self.cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = tuple(np.round(first, 6))
        if key not in self.cache:
            out = [s.solve(first)[:2] for s in self.solvers]
            self.cache[key] = (np.array([o[0] for o in out]), np.array([o[1] for o in out]))
        return self.cache[key]


#: wait-and-see: each held scenario solved with its own best first stage
WAIT_AND_SEE = "wait-and-see"


def wait_and_see(pb: DealProblem, solver: ScenarioSolver) -> float:
    """The cost of one scenario had the deals been chosen knowing it (for the EVPI)."""
    return solve_saa(pb, Evaluations([solver]), np.ones(1), gap=1e-4).objective


def _worker(conn, pb: DealProblem, sc: Scenarios, index: list[int]) -> None:  # pragma: no cover
    """A process holding the solvers of some scenarios; answers requests until None.

    A request is a first stage (answered with the scenarios' costs and subgradients) or
    ``WAIT_AND_SEE`` (answered with each scenario's wait-and-see cost).
    """
    solvers = [ScenarioSolver(scenario_lp(pb, sc, s)) for s in index]
    conn.send("ready")
    while (msg := conn.recv()) is not None:
        if isinstance(msg, str) and msg == WAIT_AND_SEE:
            conn.send(np.array([wait_and_see(pb, s) for s in solvers]))
            continue
        out = [s.solve(msg)[:2] for s in solvers]
        conn.send((np.array([o[0] for o in out]), np.array([o[1] for o in out]).reshape(len(out), -1)))
    conn.close()


class PoolEvaluations(Evaluations):
    """``Evaluations`` over worker processes, each building and holding a share of the scenarios.

    Processes are started with ``spawn`` (no HiGHS state is forked); close with ``close()``.
    """

    def __init__(self, pb: DealProblem, sc: Scenarios, workers: int) -> None:
        import multiprocessing as mp

        super().__init__([])
        ctx = mp.get_context("spawn")
        self.parts = [list(range(sc.size))[i::workers] for i in range(workers)]
        self.conns, self.procs = [], []
        for part in self.parts:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, pb, sc, part), daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            conn.recv()
        self.n = sc.size

    def __call__(self, first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = tuple(np.round(first, 6))
        if key not in self.cache:
            for conn in self.conns:
                conn.send(np.asarray(first, float))
            q = np.zeros(self.n)
            g = np.zeros((self.n, len(first)))
            for conn, part in zip(self.conns, self.parts, strict=True):
                qi, gi = conn.recv()
                q[part], g[part] = qi, gi
            self.cache[key] = (q, g)
        return self.cache[key]

    def wait_and_see(self) -> np.ndarray:
        """Each scenario's wait-and-see cost, solved where its LP is held."""
        for conn in self.conns:
            conn.send(WAIT_AND_SEE)
        ws = np.zeros(self.n)
        for conn, part in zip(self.conns, self.parts, strict=True):
            ws[part] = conn.recv()
        return ws

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=10)


class Master:
    """min first-stage USD + risk measure of theta, over signs, sizes and the cuts so far."""

    def __init__(self, pb: DealProblem, prob: np.ndarray, alpha: float, weight: float,
                 allowed: list[bool] | None = None) -> None:  # fmt: skip
        self.n_s = len(prob)
        h = new_highs()
        h.setOptionValue("mip_rel_gap", 1e-7)
        h.setOptionValue("threads", 1)
        h.setOptionValue("random_seed", 0)
        self.h = h
        n_d = len(pb.deals)
        allowed = allowed or [True] * n_d
        # columns: (sign, size) per deal, theta per scenario, eta, nu per scenario, grid binaries
        self.n_first = 2 * n_d
        c1 = np.zeros(2 * n_d)
        for d, t in enumerate(pb.deals):
            c1[2 * d + 1] = t.first_stage_usd_per_unit
        w = weight
        for d, t in enumerate(pb.deals):
            up = 1.0 if allowed[d] else 0.0
            h.addVar(0.0, up)
            h.addVar(0.0, t.max_size * up)
        h.changeColsCost(2 * n_d, np.arange(2 * n_d, dtype=np.int32), c1 * (1 - w))
        self.theta0 = 2 * n_d
        for _ in range(self.n_s):
            h.addVar(-INF, INF)
        h.changeColsCost(
            self.n_s, np.arange(self.theta0, self.theta0 + self.n_s, dtype=np.int32), (1 - w) * prob
        )
        if w > 0:
            self.eta = h.getNumCol()
            h.addVar(-INF, INF)
            h.changeColCost(self.eta, w)
            nu0 = h.getNumCol()
            for s in range(self.n_s):
                h.addVar(0.0, INF)
                h.changeColCost(nu0 + s, w * prob[s] / (1 - alpha))
                # nu_s >= c1.x + theta_s - eta
                idx = [nu0 + s, self.theta0 + s, self.eta, *range(2 * n_d)]
                val = [1.0, -1.0, 1.0, *(-c1)]
                h.addRow(0.0, INF, len(idx), np.array(idx, np.int32), np.array(val))
        integer = list(range(0, 2 * n_d, 2))
        for d, t in enumerate(pb.deals):
            sign, size = 2 * d, 2 * d + 1
            if t.size_range is not None:
                lo, hi = t.size_range
                h.addRow(0.0, INF, 2, np.array([size, sign], np.int32), np.array([1.0, -lo]))
                h.addRow(-INF, 0.0, 2, np.array([size, sign], np.int32), np.array([1.0, -hi]))
            else:
                z0 = h.getNumCol()
                for _ in t.grid:
                    h.addVar(0.0, 1.0)
                zs = list(range(z0, z0 + len(t.grid)))
                integer += zs
                h.addRow(
                    0.0,
                    0.0,
                    len(zs) + 1,
                    np.array([*zs, sign], np.int32),
                    np.array([*np.ones(len(zs)), -1.0]),
                )
                h.addRow(0.0, 0.0, len(zs) + 1, np.array([*zs, size], np.int32), np.array([*t.grid, -1.0]))
        for j in integer:
            h.changeColIntegrality(j, highspy.HighsVarType.kInteger)

    def add_cut(self, cut: Cut) -> None:
        """theta_s >= value + grad . (x - at)."""
        idx = np.array([self.theta0 + cut.scenario, *range(self.n_first)], np.int32)
        val = np.array([1.0, *(-cut.grad)])
        self.h.addRow(float(cut.value - cut.grad @ cut.at), INF, len(idx), idx, val)

    def solve(self) -> tuple[float, np.ndarray]:
        self.h.run()
        info = self.h.getInfo()
        values = np.asarray(self.h.getSolution().col_value)
        first = values[: self.n_first].copy()
        first[0::2] = np.rint(first[0::2])
        first[1::2] = np.where(first[0::2] > 0, np.maximum(first[1::2], 0.0), 0.0)
        bound = (
            float(info.mip_dual_bound)
            if np.isfinite(info.mip_dual_bound)
            else float(info.objective_function_value)
        )
        return bound, first


def solve_saa(
    pb: DealProblem,
    evaluate: Evaluations,
    prob: np.ndarray,
    *,
    alpha: float = 0.95,
    weight: float = 0.0,
    gap: float = 0.01,
    allowed: list[bool] | None = None,
    cuts: list[Cut] | None = None,
    max_iterations: int = 200,
    time_limit_s: float = 600.0,
) -> SaaResult:
    """Best first stage for the scenarios behind ``evaluate`` (cuts are shared and extended)."""
    start = time.perf_counter()
    cuts = cuts if cuts is not None else []
    master = Master(pb, prob, alpha, weight, allowed)
    for c in cuts:
        master.add_cut(c)
    x = np.zeros(pb.n_first)
    best, best_x, best_q = np.inf, x, None
    bound = -np.inf
    seen: set[tuple] = set()
    it = 0
    while it < max_iterations:
        it += 1
        key = tuple(np.round(x, 6))
        q, g = evaluate(x)
        obj = risk_value(first_stage_usd(pb, x), q, prob, alpha, weight)
        if obj < best:
            best, best_x, best_q = obj, x.copy(), q
        if key not in seen:
            seen.add(key)
            for s in range(len(q)):
                cut = Cut(s, float(q[s]), g[s].copy(), x.copy())
                cuts.append(cut)
                master.add_cut(cut)
        bound, x = master.solve()
        if tuple(np.round(x, 6)) in seen:
            break  # the master repeats a point whose cuts are in: optimal up to numerical noise
        if best - bound <= gap * abs(best) or time.perf_counter() - start > time_limit_s:
            # within the gap: still take the master's point if it is better (it is often the optimum)
            q, _ = evaluate(x)
            obj = risk_value(first_stage_usd(pb, x), q, prob, alpha, weight)
            if obj < best:
                best, best_x, best_q = obj, x.copy(), q
            break
    return SaaResult(best_x, best, min(bound, best), best_q, it, time.perf_counter() - start, cuts)
