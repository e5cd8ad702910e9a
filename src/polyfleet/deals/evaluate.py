"""Evaluate fixed first stages on many scenarios, in chunks, locally or as Ray tasks.

In-sample scenarios draw from ``SeedSequence(seed, spawn_key=(0,))``; out-of-sample chunk
i from ``SeedSequence(seed, spawn_key=(1, i))``, so the numbers depend only on the seed
and the count, never on the engine or the number of workers (as in ``polyfleet risk``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from polyfleet.deals.benders import ScenarioSolver, first_stage_usd
from polyfleet.deals.lp import scenario_lp
from polyfleet.deals.problem import DealProblem
from polyfleet.deals.scenarios import Scenarios, draw, named
from polyfleet.deals.spec import Uncertainty
from polyfleet.risk.assumptions import RiskAssumptions

#: out-of-sample scenarios per chunk (one task each)
CHUNK_SCENARIOS = 64

Chunk = tuple[int, int]


def in_sample(pb: DealProblem, unc: Uncertainty, risk: RiskAssumptions) -> Scenarios:
    """The scenarios the decision is optimised on."""
    if unc.scenarios is not None:
        return named(pb.axes, unc.scenarios, unc.prices)
    assert unc.sampled is not None
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(unc.sampled.seed, spawn_key=(0,))))
    return draw(rng, pb.axes, unc.sampled, unc.prices, risk, unc.sampled.count)


def out_of_sample_chunk(pb: DealProblem, unc: Uncertainty, risk: RiskAssumptions, chunk: Chunk) -> Scenarios:
    """Fresh scenarios of chunk ``chunk`` (named scenarios: the named set itself)."""
    if unc.scenarios is not None:
        return named(pb.axes, unc.scenarios, unc.prices)
    assert unc.sampled is not None
    index, count = chunk
    seq = np.random.SeedSequence(unc.sampled.seed, spawn_key=(1, index))
    return draw(np.random.Generator(np.random.PCG64(seq)), pb.axes, unc.sampled, unc.prices, risk, count)


@dataclass
class Outcome:
    """Per first stage f and scenario s: total cost, unused commitment per deal, unserved."""

    probability: np.ndarray  # (S,)
    cost: np.ndarray  # (F, S) USD, first stage included
    unused_usd: np.ndarray  # (F, S, D) commitment paid and not used
    idle_instance_months: np.ndarray  # (F, S, D) reservations
    unserved: np.ndarray  # (F, S) bool: some demand bought at the emergency price
    families: dict[str, np.ndarray]

    @staticmethod
    def concat(parts: list[Outcome]) -> Outcome:
        n = sum(len(p.probability) for p in parts)
        labels = sorted({k for p in parts for k in p.families})
        return Outcome(
            np.full(n, 1.0 / n),
            np.concatenate([p.cost for p in parts], axis=1),
            np.concatenate([p.unused_usd for p in parts], axis=1),
            np.concatenate([p.idle_instance_months for p in parts], axis=1),
            np.concatenate([p.unserved for p in parts], axis=1),
            {
                k: np.concatenate([p.families.get(k, np.zeros(len(p.probability), bool)) for p in parts])
                for k in labels
            },
        )


def evaluate_scenarios(pb: DealProblem, sc: Scenarios, firsts: Sequence[np.ndarray]) -> Outcome:
    """Solve every scenario of ``sc`` for each first stage (one warm LP per scenario)."""
    n_f, n_s, n_d = len(firsts), sc.size, len(pb.deals)
    cost = np.zeros((n_f, n_s))
    unused = np.zeros((n_f, n_s, n_d))
    idle = np.zeros((n_f, n_s, n_d))
    unserved = np.zeros((n_f, n_s), bool)
    for s in range(n_s):
        lp = scenario_lp(pb, sc, s)
        solver = ScenarioSolver(lp)
        for f, first in enumerate(firsts):
            q, _, values = solver.solve(np.asarray(first, float))
            cost[f, s] = first_stage_usd(pb, first) + q
            unserved[f, s] = bool((values[lp.unserved] > 1e-6).any())
            for d, years in lp.shortfall.items():
                disc = 1 - pb.deals[d].discount
                unused[f, s, d] = max(0.0, sum(values[p] - disc * values[a].sum() for p, a in years))
            for d, blocks in lp.idle.items():
                k = first[2 * d + 1]
                spare = sum(n * max(0.0, act * k - values[x] @ per) for n, act, x, per in blocks)
                idle[f, s, d] = spare
                unused[f, s, d] = spare * pb.deals[d].usd_per_instance_month
    return Outcome(sc.probability.copy(), cost, unused, idle, unserved, sc.families)


def evaluate_chunk(
    pb: DealProblem, unc: Uncertainty, risk: RiskAssumptions, firsts: Sequence[np.ndarray], chunk: Chunk
) -> Outcome:
    """Draw chunk ``chunk`` of the out-of-sample scenarios and evaluate the first stages on it."""
    return evaluate_scenarios(pb, out_of_sample_chunk(pb, unc, risk, chunk), firsts)


Mapper = Callable[[Callable[..., Outcome], Sequence[tuple[Any, ...]]], list[Outcome]]


def local_mapper(fn: Callable[..., Outcome], calls: Sequence[tuple[Any, ...]]) -> list[Outcome]:
    """Call ``fn`` on each argument tuple in this process."""
    return [fn(*args) for args in calls]


def process_mapper(workers: int) -> Mapper:
    """Each call in a pool of ``workers`` local processes (``spawn``: no solver state is forked)."""

    def mapper(fn: Callable[..., Outcome], calls: Sequence[tuple[Any, ...]]) -> list[Outcome]:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            return list(pool.map(fn, *zip(*calls, strict=True)))

    return mapper


def ray_mapper(address: str | None = None) -> Mapper:
    """Each call as a Ray task (``ray.init(address)`` unless Ray is already running)."""

    def mapper(fn: Callable[..., Outcome], calls: Sequence[tuple[Any, ...]]) -> list[Outcome]:
        import ray

        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        task = ray.remote(fn)
        shared = [ray.put(a) for a in calls[0][:-1]] if calls else []
        return list(ray.get([task.remote(*shared, args[-1]) for args in calls]))

    return mapper


def chunks(count: int, size: int = CHUNK_SCENARIOS) -> list[Chunk]:
    return [(i, min(size, count - start)) for i, start in enumerate(range(0, count, size))]


def out_of_sample(
    pb: DealProblem,
    unc: Uncertainty,
    risk: RiskAssumptions,
    firsts: Sequence[np.ndarray],
    mapper: Mapper = local_mapper,
    count: int | None = None,
) -> Outcome:
    """Every first stage on the out-of-sample scenarios (``count`` overrides the spec's)."""
    todo = [(0, 1)] if unc.scenarios is not None else chunks(count or unc.out_of_sample)
    firsts = [np.asarray(f, float) for f in firsts]
    parts = mapper(evaluate_chunk, [(pb, unc, risk, firsts, c) for c in todo])
    if unc.scenarios is not None:
        return parts[0]
    return Outcome.concat(parts)
