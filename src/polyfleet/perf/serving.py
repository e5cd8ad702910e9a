"""Tail-latency SLOs under Poisson arrivals: the load one replica can take at a percentile.

``polyfleet.perf.inference`` gives a replica's step time ``T(b)`` (seconds per output
token of one request when ``b`` requests decode per micro-batch; ``p`` pipeline stages
hold ``p`` micro-batches) and its prompt cost.  An idealised replica runs a full batch
all the time; a served one sees requests arrive at random.  This module finds the
largest arrival rate ``lam`` (requests/s per replica) at which the ``percentile`` (e.g.
p99) of TTFT and TPOT still meets the targets and the KV memory still admits the
requests in flight.  The replica's throughput in a plan is that ``lam``.

Steady state at load ``lam`` with ``n`` output tokens per request (continuous batching:
a request joins the running batch when its prompt is done and leaves after ``n``
tokens).  Serial prefill: prompts run one at a time between decode steps, each taking
``pre`` (``prefill_s``, all stages); the prefill lane is busy ``u = lam*pre/p`` of the
time (``u < 1`` or the replica is unstable) and decode slows to ``T_wall = T(N/p)/(1-u)``
per token.  Chunked prefill: prompts ride in the decode steps (``T`` already carries the
average prompt tokens), ``T_wall = T(N/p)`` and the prompt lane's utilisation is
``u = lam*input*T/CHUNK_TOKENS`` (share of the per-step prompt budget in use).  The
requests decoding, by Little's law::

    N = lam * n * T_wall(N)   =>   serial:  lam = N / (n*T(N/p) + N*pre/p)
                                   chunked: lam = N / (n*T(N/p))

Occupancy.  Requests in service in an M/G/infinity system are Poisson with mean ``N``,
so the batch the replica must admit at the percentile is ``B = Q(N)``, the Poisson
``percentile`` quantile (``poisson_quantile``).  Memory (steady state, not the full
context for every slot): each request holds its mean live KV, ``((1-h)*input + n_live)*kv``
(``h`` = prefix-cache hit, the shared prefix stored once), and ``B`` of them must fit.
``n_live = n*(1 + cv^2)/2`` where ``cv`` is the coefficient of variation of output lengths
(``output_tokens_cv``; ``n/2`` when all are equal): the requests in flight are a
length-biased sample (a request of ``k`` tokens is in flight ``k`` steps), each halfway
through on average, so ``E[k^2]/(2*E[k])`` (the inspection paradox of renewal theory).
The step time's KV reads and attention use the same ``n_live``.  DeepSeek-R1's MLPerf
outputs (cv 1.25) hold 2.56x the ``n/2`` of equal lengths::

    B <= floor(kv_room / kv_per_request)                       ("capacity")

TPOT at the percentile, a request's mean time per output token.  Serial: the number of
prompts that arrive during its ``n`` tokens is Poisson with mean ``lam*n*T_wall``; at the
percentile ``K`` of them each stall it for ``pre/p``.  Chunked: ``T`` already carries the
mean number of prompts, ``K_mean = lam*n*T(N/p)``; at the percentile the ``K - K_mean``
extra prompts' work rides in the request's steps (a 9,400-token prompt is seconds of
work: ignoring its variance made long-prompt TPOT tails look free)::

    TPOT_p = T(B/p) + K*(pre/p)/n                        mean: T_wall
    chunked: TPOT_p = T(B/p) + (K - K_mean)*(pre/p)/n    mean: T(N/p)

TTFT at the percentile: the prompt waits for the prefill lane (M/G/1 waiting time with
mean service ``S``, utilisation ``u`` and service-time coefficient of variation ``c``, the
prompt lengths' ``input_tokens_cv``: Pollaczek-Khinchine's mean wait ``u*S*(1+c^2)/(2(1-u))``
with an exponential tail, ``P(W > w) = u*exp(-(1-u)*w/S')``, ``S' = S*(1+c^2)/2``; ``c = 1``,
the default, is the M/M/1 queue, ``c = 0`` equal prompts), for the step in flight to end
(one ``T``), then runs::

    w_p    = S'/(1-u) * ln(u/(1-percentile))  when u > 1-percentile, else 0
    serial:  S = pre;        TTFT_p = pre + w_p + T(B/p)
    chunked: S = chunks*T;   TTFT_p = chunks*T(B/p) + w_p + T(B/p)
    means:   w = u*S'/(1-u);  T/2 for the step in flight

``lam`` grows with ``N`` and every constraint with both, so the largest feasible load is
found by bisection on ``N`` in ``(0, cap + 1]``.  ``limit`` names the constraint that
stops it: "capacity", "slo: tpot", "slo: ttft", "batch" (``max_batch``) or
"stability".  With no feasible load (one request alone misses a target) the result is
infeasible with the one-request figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from statistics import NormalDist
from typing import Any

from polyfleet.perf import defaults
from polyfleet.perf.result import InferencePerf
from polyfleet.perf.result import infeasible as _infeasible

_BISECT = 30
"""Bisection steps on the requests in flight (precision 2^-30 of the capacity)."""


@lru_cache(maxsize=64)
def _z(percentile: float) -> float:
    """Standard normal quantile (cached: a planner asks for few percentiles, many times)."""
    return NormalDist().inv_cdf(percentile)


def poisson_quantile(mean: float, percentile: float) -> int:
    """Smallest ``k`` with ``P(Poisson(mean) <= k) >= percentile``.

    Exact summation up to a mean of 30; above it the normal approximation with the
    Cornish-Fisher skew term, ``mean + z*sqrt(mean) + (z^2 - 1)/6``, rounded up (within
    one of the exact quantile there).
    """
    if mean <= 0:
        return 0
    if mean > 30:
        z = _z(percentile)
        return max(0, math.ceil(mean + z * math.sqrt(mean) + (z * z - 1) / 6 - 0.5))
    term = math.exp(-mean)
    total, k = term, 0
    while total < percentile - 1e-12:
        k += 1
        term *= mean / k
        total += term
        if term == 0.0 and k > mean:
            break
    return k


def mm1_wait_quantile(utilisation: float, service_s: float, percentile: float) -> float:
    """Waiting time at ``percentile`` in an M/M/1 queue: ``S/(1-u) * ln(u/(1-percentile))``, or 0."""
    if utilisation <= 1 - percentile:
        return 0.0
    return service_s / (1 - utilisation) * math.log(utilisation / (1 - percentile))


def mg1_wait_quantile(utilisation: float, service_s: float, cv: float, percentile: float) -> float:
    """Waiting time at ``percentile`` in an M/G/1 queue whose service times have coefficient
    of variation ``cv``: the M/M/1 tail with ``S`` scaled by ``(1 + cv^2)/2``.

    Why: the Pollaczek-Khinchine mean wait is ``u*S*(1 + cv^2)/(2*(1 - u))``, the M/M/1
    one times ``(1 + cv^2)/2``, and the tail of the wait is close to exponential with that
    mean (Kingman's heavy-traffic approximation); ``cv = 1`` is the M/M/1 queue exactly,
    ``cv = 0`` equal prompts (half the wait).
    """
    return mm1_wait_quantile(utilisation, service_s * ((1 + cv * cv) / 2), percentile)


@dataclass(frozen=True)
class Replica:
    """What ``planned_load`` needs from the roofline of one replica (see the module docstring)."""

    tpot_s: Callable[[float], float]
    prefill_s: float
    chunked: bool
    chunks: int
    kv_room_bytes: float
    kv_bytes_per_request: float
    stages: int
    chips: int
    output_tokens: int
    input_tokens: int = 0
    max_batch: int | None = None
    prefill_cv: float = 1.0
    bound_of: Callable[[float], str] = lambda b: ""


@dataclass(frozen=True)
class _State:
    """Steady state of a replica at one load."""

    load: float
    in_flight: float
    batch: int
    tpot_p: float
    tpot_mean: float
    ttft_p: float
    ttft_mean: float
    failed: str  # the first constraint it breaks, "" if none


def steady_state_capacity(kv_room_bytes: float, kv_bytes_per_request: float) -> int:
    """Requests a replica's KV memory holds in steady state: ``floor(kv_room / kv_per_request)``
    with ``kv_per_request`` a request's *mean* live KV (``Roofline.live_kv_bytes``:
    ``((1-h)*input + output*(1 + cv^2)/2)*kv``), not its full context.

    Why one function: the idealised full batch (no SLO, ``polyfleet.perf.sizing``) and the
    Poisson admission at the percentile (``planned_load``) size KV by the same rule.  A
    full batch of ``b`` requests at staggered positions holds ``b`` mean live contexts
    (its count does not vary); under Poisson arrivals the percentile of the count must
    fit.  A card without KV (``kv_per_request`` 0) is not limited here.
    """
    if kv_bytes_per_request <= 0:
        return 10**9
    return math.floor(kv_room_bytes / kv_bytes_per_request + 1e-9)


def _cap(r: Replica) -> int:
    """Requests the KV memory admits at their mean live context (and ``max_batch``)."""
    cap = steady_state_capacity(r.kv_room_bytes, r.kv_bytes_per_request)
    return cap if r.max_batch is None else min(cap, r.max_batch)


def _state(
    r: Replica, n_fl: float, percentile: float, tpot_s: float | None, ttft_s: float | None, cap: int
) -> _State:
    """Steady state with ``n_fl`` requests decoding on average, and the first constraint it breaks.

    Little's law solved for the load: serial ``lam = N / (n*T(N/p) + N*pre/p)``,
    chunked ``lam = N / (n*T(N/p))``; ``lam`` grows with ``N`` (``T`` has a positive
    intercept), so a bisection on ``N`` is one on the load.
    """
    p, n = r.stages, r.output_tokens
    pre_slot = r.prefill_s / p

    def micro(b: float) -> float:
        return max(1.0, b / p)

    t_mean = r.tpot_s(micro(n_fl))
    lam = n_fl / (n * t_mean + (0.0 if r.chunked else n_fl * pre_slot))
    batch = max(1, poisson_quantile(n_fl, percentile))
    t_tail = r.tpot_s(micro(batch))
    if r.chunked:
        u = lam * max(r.input_tokens, 1) * t_tail / defaults.CHUNK_TOKENS
        # T carries the mean prompt share; at the percentile more prompts arrive during a
        # request's n tokens than on average, each adding its prompt work to the steps
        k_mean = lam * n * t_mean
        excess = max(0, poisson_quantile(k_mean, percentile) - k_mean)
        tpot_p, tpot_mean = t_tail + excess * pre_slot / n, t_mean
        service = run = r.chunks * t_tail
        run_mean = r.chunks * t_mean
    else:
        u = lam * pre_slot
        wall = t_mean / (1 - u)
        stalls = poisson_quantile(lam * n * wall, percentile)
        tpot_p, tpot_mean = t_tail + stalls * pre_slot / n, wall
        service = run = run_mean = r.prefill_s
    if u >= 1:
        return _State(lam, n_fl, batch, math.inf, math.inf, math.inf, math.inf, "stability")
    spread = (1 + r.prefill_cv * r.prefill_cv) / 2  # M/G/1: the wait scales with (1 + cv^2)/2
    ttft_p = run + mg1_wait_quantile(u, service, r.prefill_cv, percentile) + t_tail
    ttft_mean = run_mean + u * service * spread / (1 - u) + t_mean / 2
    failed = ""
    if batch > cap:
        failed = "batch" if r.max_batch is not None and cap == r.max_batch else "capacity"
    elif tpot_s is not None and tpot_p > tpot_s * (1 + 1e-9):
        failed = "slo: tpot"
    elif ttft_s is not None and ttft_p > ttft_s * (1 + 1e-9):
        failed = "slo: ttft"
    return _State(lam, n_fl, batch, tpot_p, tpot_mean, ttft_p, ttft_mean, failed)


def planned_load(
    r: Replica,
    *,
    percentile: float,
    tpot_ms: float | None,
    ttft_ms: float | None,
    tags: dict[str, Any],
) -> InferencePerf:
    """The largest Poisson load that meets the targets at ``percentile`` (module docstring)."""
    tpot_s = None if tpot_ms is None else tpot_ms / 1000
    ttft_s = None if ttft_ms is None else ttft_ms / 1000
    fields = {**tags, "chips_per_replica": r.chips}
    cap = _cap(r)
    low = _state(r, 1e-9, percentile, tpot_s, ttft_s, cap)
    if low.failed:
        what = low.failed if low.failed.startswith("slo") else "memory"
        if what == "memory":
            reason = "memory: the KV memory left after the weights holds no request"
        elif what == "slo: tpot":
            reason = f"slo: tpot {tpot_ms:g} ms unreachable, one request alone: {low.tpot_p * 1000:.1f} ms"
        else:
            reason = f"slo: ttft {ttft_ms:g} ms unreachable, one request alone: {low.ttft_p * 1000:.1f} ms"
        return _infeasible(
            reason,
            **fields,
            max_batch=1,
            tpot_ms=low.tpot_p * 1000,
            ttft_ms=low.ttft_p * 1000,
            bound=r.bound_of(1.0),
        )
    lo, hi, best = 1e-9, float(cap) + 1, low
    for _ in range(_BISECT):
        mid = (lo + hi) / 2
        s = _state(r, mid, percentile, tpot_s, ttft_s, cap)
        if s.failed:
            hi = mid
        else:
            lo, best = mid, s
    limit = _state(r, hi, percentile, tpot_s, ttft_s, cap).failed or "stability"
    lam = best.load
    return InferencePerf(
        feasible=True,
        reason="",
        max_batch=best.batch,
        tpot_ms=best.tpot_p * 1000,
        ttft_ms=best.ttft_p * 1000,
        replica_requests_per_s=lam,
        output_tokens_per_s_per_chip=lam * r.output_tokens / r.chips,
        bound=r.bound_of(max(1.0, best.batch / r.stages)),
        limit=limit,
        tpot_mean_ms=best.tpot_mean * 1000,
        ttft_mean_ms=best.ttft_mean * 1000,
        **fields,
    )
