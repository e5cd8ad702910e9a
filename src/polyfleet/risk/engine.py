"""Run the Monte Carlo in fixed-size chunks, locally or on a Ray cluster, with the same numbers.

Scenarios are drawn and evaluated in chunks of :data:`CHUNK_SCENARIOS` (bounding
memory to a few tens of MB per chunk).  Chunk i draws from
``SeedSequence(seed, spawn_key=(i,))``, so the numbers depend only on the seed and the
scenario count, never on the engine or on how many workers evaluate the chunks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from polyfleet.risk.assumptions import RiskAssumptions
from polyfleet.risk.dispatch import Outcome, evaluate
from polyfleet.risk.fleet import Fleet
from polyfleet.risk.scenarios import draw_scenarios

#: scenarios per chunk: ~2 x 4096 x K x J floats in flight (about 10 MB for 150 allocations)
CHUNK_SCENARIOS = 4096

#: a chunk: (index, number of scenarios)
Chunk = tuple[int, int]
#: maps chunk evaluation over chunks, returning outcomes in chunk order
Mapper = Callable[[Fleet, RiskAssumptions, int, Sequence[Chunk]], list[Outcome]]


def chunks(scenarios: int, size: int = CHUNK_SCENARIOS) -> list[Chunk]:
    """Split ``scenarios`` into ``(index, count)`` chunks of ``size`` (the last may be short)."""
    return [(i, min(size, scenarios - start)) for i, start in enumerate(range(0, scenarios, size))]


def simulate_chunk(fleet: Fleet, assumptions: RiskAssumptions, seed: int, chunk: Chunk) -> Outcome:
    """Draw and evaluate chunk ``chunk`` of the run seeded ``seed``."""
    index, count = chunk
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(index,))))
    return evaluate(fleet, draw_scenarios(rng, fleet, assumptions, count), assumptions)


def local_mapper(
    fleet: Fleet, assumptions: RiskAssumptions, seed: int, todo: Sequence[Chunk]
) -> list[Outcome]:
    """Evaluate chunks one after another in this process."""
    return [simulate_chunk(fleet, assumptions, seed, chunk) for chunk in todo]


def ray_mapper(address: str | None = None, **init_kwargs: Any) -> Mapper:
    """A mapper that evaluates chunks as Ray tasks.

    Connects with ``ray.init(address=...)`` unless Ray is already initialised (then the
    running instance is used and left running); the fleet is put in the object store once.
    """

    def mapper(fleet: Fleet, assumptions: RiskAssumptions, seed: int, todo: Sequence[Chunk]) -> list[Outcome]:
        import ray

        if not ray.is_initialized():
            ray.init(address=address, **init_kwargs)
        task = ray.remote(simulate_chunk)
        fleet_ref = ray.put(fleet)
        return list(ray.get([task.remote(fleet_ref, assumptions, seed, chunk) for chunk in todo]))

    return mapper


def monte_carlo(
    fleet: Fleet,
    assumptions: RiskAssumptions,
    scenarios: int,
    seed: int = 0,
    mapper: Mapper = local_mapper,
) -> Outcome:
    """``scenarios`` scenarios of ``fleet`` under ``assumptions``, reproducible from ``seed``."""
    if scenarios < 1:
        raise ValueError("scenarios must be >= 1")
    return Outcome.concat(mapper(fleet, assumptions, seed, chunks(scenarios)))
