"""The best serving configuration per (model, accelerator), and the Pareto front of them.

``sized_inference_perf`` sizes a replica by the smallest tensor-parallel group that
holds the weights; that is rarely the cheapest way to serve (a 70B FP8 model on one H100
has room for a handful of requests, on four for hundreds).  This module searches::

    tensor parallel  t  in 1, 2, 4, ... <= chips_per_node (one instance), MAX_TENSOR_PARALLEL
    pipeline stages  p  in 1, or 2, 4, ... MAX_PIPELINE_STAGES whole nodes when the caller
                        allows several instances (their interconnect: defaults.INTERNODE_GBPS)
    expert parallel  e  in 1 (experts sliced by tensor parallelism) or t (whole experts
                        per chip, with the load imbalance of ``polyfleet.perf.moe``), MoE only
    precision           the card's weight dtype, or each of ``dtypes`` the chip runs natively
    batch               the largest the SLOs allow (``inference_perf``), or every power of two
                        up to it (``pareto_configs``, for the latency/throughput trade-off)

and scores each configuration by output tokens/s per chip (per dollar on one offer: the
price per chip is the same for every configuration).  ``best_config`` returns the
feasible configuration with the most tokens/s per chip (fewest chips on a tie), which
dominates every other one on an offer once demand spans many replicas; with the
service's demand it returns the configuration that serves that demand on the fewest
chips (a 1 request/s service is cheaper on one 2-chip replica than on a faster 8-chip
one).  This one column per offer is what the planner gets.  ``pareto_front``
keeps the configurations no other beats on both tokens/s per chip and TPOT.

Speed.  A planner asks this for every (service, instance size) pair;
``polyfleet.perf.config_search.ConfigSearch`` answers all instance sizes and demands of
one (service, accelerator) from one memo of estimates and skips layouts that provably
cannot win.  ``best_inference_perf`` and the planner use it, and
``reference_best_inference_perf`` keeps the straightforward search it is tested against.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf.defaults import MAX_PIPELINE_STAGES, MAX_TENSOR_PARALLEL, MIN_BATCH
from polyfleet.perf.inference import inference_perf
from polyfleet.perf.moe import moe_split
from polyfleet.perf.precision import DEFAULT_ACTIVATION, PrecisionError, compute_peak
from polyfleet.perf.result import InferencePerf


@dataclass(frozen=True)
class Config:
    """One serving configuration and the model's estimate of it."""

    weight_dtype: str
    perf: InferencePerf

    @property
    def label(self) -> str:
        """``TP4 PP1 fp8 b=64`` (``EP4`` added when experts are split whole)."""
        return self.perf.configuration

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON and tables."""
        return {"configuration": self.label, "weight_dtype": self.weight_dtype, **self.perf.to_dict()}


def _pow2_upto(n: int) -> list[int]:
    """1, 2, 4, ... up to ``n`` (the tensor/pipeline degrees and batches searched)."""
    out, t = [], 1
    while t <= n:
        out.append(t)
        t *= 2
    return out


def _dtypes(card: ModelCard, acc: Accelerator, dtypes: list[str] | None) -> list[str]:
    """The card's dtype, plus each asked-for dtype whose compute precision the chip has natively."""
    out = [card.dtype]
    for d in dtypes or []:
        if d in out:
            continue
        try:
            peak = compute_peak(acc, d)
        except PrecisionError:
            continue
        if peak.dtype == DEFAULT_ACTIVATION.get(d, d):
            out.append(d)
    if dtypes and card.dtype not in dtypes:
        out.remove(card.dtype)
    return out


def _layouts(chips_per_node: int | None, multi_node: bool, max_chips: int | None) -> list[tuple[int, int]]:
    """``(t, p)`` layouts of the module docstring, in search order (single node first, by ``t``).

    ``chips_per_node`` bounds ``t`` (one instance) and, with ``multi_node``, sets the
    pipeline stages' node size; ``max_chips`` caps ``t``.
    """
    limit = min(MAX_TENSOR_PARALLEL, chips_per_node or MAX_TENSOR_PARALLEL)
    if max_chips is not None:
        limit = min(limit, max_chips)
    layouts: list[tuple[int, int]] = [(t, 1) for t in _pow2_upto(limit)]
    if multi_node and chips_per_node:
        node = _pow2_upto(min(chips_per_node, MAX_TENSOR_PARALLEL))[-1]
        layouts += [(node, p) for p in _pow2_upto(MAX_PIPELINE_STAGES)[1:]]
    return layouts


def search_configs(
    card: ModelCard,
    acc: Accelerator,
    *,
    input_tokens: int,
    output_tokens: int,
    chips_per_node: int | None = None,
    multi_node: bool = False,
    dtypes: list[str] | None = None,
    batches: bool = False,
    **kwargs: Any,
) -> list[Config]:
    """Every configuration of the module docstring with its estimate (feasible or not).

    ``chips_per_node`` bounds the tensor-parallel group (one instance); ``multi_node``
    allows pipeline stages over several.  ``dtypes`` lists weight precisions the buyer
    accepts (default: the card's).  ``batches`` also evaluates each configuration at
    every power-of-two batch below its SLO-limited one.  Other keyword arguments go to
    ``inference_perf`` (SLO targets, ``percentile``, ``batching``, efficiencies, ...).
    """
    layouts = _layouts(chips_per_node, multi_node, kwargs.pop("max_chips", None))
    moe = moe_split(card) is not None
    out: list[Config] = []
    for dtype in _dtypes(card, acc, dtypes):
        c = card if dtype == card.dtype else card.model_copy(update={"dtype": dtype})
        for t, p in layouts:
            for ep in [1, t] if moe and t > 1 else [1]:
                perf = inference_perf(
                    c,
                    acc,
                    input_tokens=input_tokens,
                    output_tokens=output_tokens,
                    tensor_parallel=t,
                    pipeline_stages=p,
                    expert_parallel=ep,
                    **kwargs,
                )
                if ep > 1 and out and _same(out[-1].perf, perf):
                    continue  # every expert touched on every chip: expert parallelism changes nothing
                out.append(Config(dtype, perf))
                if batches and perf.feasible:
                    cap = {k: v for k, v in kwargs.items() if k != "max_batch"}
                    for b in _pow2_upto(perf.max_batch)[:-1]:
                        if b < p:
                            continue
                        smaller = inference_perf(
                            c,
                            acc,
                            input_tokens=input_tokens,
                            output_tokens=output_tokens,
                            tensor_parallel=t,
                            pipeline_stages=p,
                            expert_parallel=ep,
                            max_batch=b,
                            **cap,
                        )
                        if smaller.feasible:
                            out.append(Config(dtype, smaller))
    return out


def _same(a: InferencePerf, b: InferencePerf) -> bool:
    """Same estimate (the configuration labels aside)."""
    return (a.feasible, a.max_batch, a.output_tokens_per_s_per_chip, a.tpot_ms) == (
        b.feasible, b.max_batch, b.output_tokens_per_s_per_chip, b.tpot_ms,
    )  # fmt: skip


def _rank(c: Config) -> tuple[float, int, int]:
    """Sort key: most tokens/s per chip, then fewest chips, then fewest stages."""
    return (-c.perf.output_tokens_per_s_per_chip, c.perf.chips_per_replica, c.perf.pipeline_stages)


def best_config(configs: list[Config], demand_rps: float | None = None) -> Config | None:
    """The feasible configuration with the most output tokens/s per chip (fewest chips on a tie).

    With ``demand_rps`` (requests/s to serve), the one that serves it on the fewest chips,
    ``ceil(demand / replica requests/s) * chips per replica``, then by tokens/s per chip:
    a small service is cheaper on small replicas even where large ones are faster per chip.
    """
    ok = [c for c in configs if c.perf.feasible and c.perf.replica_requests_per_s > 0]
    if not ok:
        return None
    if demand_rps is None or demand_rps <= 0:
        return min(ok, key=_rank)

    def chips_needed(c: Config) -> int:
        replicas = math.ceil(demand_rps / c.perf.replica_requests_per_s - 1e-9)
        return max(1, replicas) * c.perf.chips_per_replica

    return min(ok, key=lambda c: (chips_needed(c), *_rank(c)))


def pareto_front(configs: list[Config], rate: Callable[[Config], float] | None = None) -> list[Config]:
    """Feasible configurations no other beats on ``rate`` and TPOT at once, by TPOT.

    ``rate`` defaults to output tokens/s per chip; the CLI passes tokens per dollar when
    the chip's offers price each configuration's instance (configurations rated 0 drop).
    """
    score = rate or (lambda c: c.perf.output_tokens_per_s_per_chip)
    ok = sorted(
        (c for c in configs if c.perf.feasible and score(c) > 0), key=lambda c: (c.perf.tpot_ms, -score(c))
    )
    front: list[Config] = []
    best_rate = 0.0
    for c in ok:
        if score(c) > best_rate * (1 + 1e-12):
            front.append(c)
            best_rate = score(c)
    return front


def best_inference_perf(
    card: ModelCard,
    acc: Accelerator,
    *,
    demand_rps: float | None = None,
    **kwargs: Any,
) -> InferencePerf:
    """``inference_perf`` of the best configuration (``best_config``, for ``demand_rps``
    when given), or the least-bad infeasible result (an SLO miss before a memory one)
    when none is feasible.  Other arguments as ``search_configs``.

    Computed by ``ConfigSearch`` (same answer as ``best_config(search_configs(...))``),
    memoised per (card, accelerator, lengths, SLO): callers ask the same search for many
    instance sizes and demands.
    """
    if kwargs.get("batches"):
        return reference_best_inference_perf(card, acc, demand_rps=demand_rps, **kwargs)
    chips_per_node = kwargs.pop("chips_per_node", None)
    multi_node = kwargs.pop("multi_node", False)
    max_chips = kwargs.pop("max_chips", None)
    kwargs.pop("batches", None)
    from polyfleet.perf.config_search import search_for  # the fast search builds on this module

    return search_for(card, acc, **kwargs).best(chips_per_node, multi_node, demand_rps, max_chips)


def reference_best_inference_perf(
    card: ModelCard, acc: Accelerator, *, demand_rps: float | None = None, **kwargs: Any
) -> InferencePerf:
    """``best_inference_perf`` the straightforward way: every configuration
    (``search_configs``), then ``best_config``.  Kept as the reference ``ConfigSearch`` is
    tested against (``tests/test_perf_configs_speed.py``); no cache, no pruning."""
    configs = search_configs(card, acc, **kwargs)
    best = best_config(configs, demand_rps)
    if best is not None:
        return best.perf
    if not configs:
        raise ValueError("no configuration to search")
    slo = [c for c in configs if c.perf.reason.startswith("slo")]
    return (slo or configs)[0].perf


def sized_inference_perf(card: ModelCard, acc: Accelerator, **kwargs: Any) -> InferencePerf:
    """``inference_perf`` with the replica sized for ``MIN_BATCH`` requests, else for one.

    The smallest-fit rule (what the planner used before ``best_inference_perf``): the
    smallest tensor-parallel degree (and pipeline stages, with ``chips_per_node``) that
    leaves room for a working batch when the chips allow it.  Keyword arguments go
    through to ``inference_perf``.
    """
    perf = inference_perf(card, acc, min_batch=MIN_BATCH, **kwargs)
    if not perf.feasible and perf.reason.startswith("memory"):
        return inference_perf(card, acc, min_batch=1, **kwargs)
    return perf
