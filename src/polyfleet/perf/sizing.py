"""The batch one inference replica runs, and the result record that follows from it.

Part of the inference model (``polyfleet.perf.inference``; notation there).  Given a
layout's ``Roofline`` (``polyfleet.perf.roofline``), ``idealised_perf`` picks the batch of
an idealised replica that always runs full; ``percentile_perf`` hands the roofline to the
queueing model (``polyfleet.perf.serving``) instead, which picks the load that holds the
SLO at a percentile under Poisson arrivals.

Batch (per micro-batch ``b``; ``max_batch = p*b``)::

    B_mem   = floor((t*p*HBM*u - W - h*input*kv) / kv_live)   requests the memory holds in
              steady state: kv_live = ((1-h)*input + output*(1 + cv^2)/2)*kv, a request's
              mean live KV (``Roofline.live_kv_bytes``), the rule the Poisson admission
              uses too (``polyfleet.perf.serving.steady_state_capacity``): a full batch's
              requests sit at staggered positions, each halfway through its output on
              average, so ``b`` slots hold ``b`` mean live contexts, not ``b`` full ones
    b_mem   = floor(B_mem / p)
    b_tpot  = largest b with tpot(b) <= T, T = tpot_ms/1000 (no cap when tpot_ms is None);
              dense: floor((T - s0) / s1); MoE: found by bisection (tpot grows with b)
    b       = min(b_mem, b_tpot)                    < 1 -> infeasible ("slo: tpot ...")

``max_batch`` caps ``b`` at ``max_batch // p``; a fixed ``batch`` replaces the search
(infeasible only when memory cannot hold it).  TTFT: serial prefill misses its target
-> infeasible ("slo: ttft"); chunked, ``b`` is the largest integer in ``[1, cap]`` with
``ttft(b) <= target`` (bisection: ``ttft`` grows with ``b``), infeasible when even
``b = 1`` misses it.

Throughput (replica time per request: its prefill slot plus its share of decode slots)::

    stage(b)      = tpot(b)/p
    per_request_s = pre/p + x(input_tokens) + output_tokens*stage(b)/b     (serial)
                  = output_tokens*stage(b)/b          (chunked: prompts ride in the steps)
    replica_requests_per_s = 1/per_request_s
    output_tokens_per_s_per_chip = replica_requests_per_s*output_tokens/(t*p)

``limit`` says what stopped the batch: "capacity" (b = b_mem), "slo: tpot", "slo: ttft"
or "batch" (fixed or capped).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from polyfleet.perf.result import InferencePerf
from polyfleet.perf.result import infeasible as _infeasible
from polyfleet.perf.roofline import Roofline
from polyfleet.perf.serving import steady_state_capacity

_EPS = 1e-9
"""Slack added before ``floor`` so a batch that fits exactly is not lost to rounding."""


def floor_eps(x: float) -> int:
    """Floor that tolerates float error on exact integers (10 - 1e-12 -> 10)."""
    return math.floor(x + _EPS)


def largest_true(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """Largest b in [lo, hi] with ok(b), given ok(lo) and ok monotone (true, then false)."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _memoised(fn: Callable[[float], float]) -> Callable[[float], float]:
    """``fn`` with its results kept per argument (a pure function of one number)."""
    seen: dict[float, float] = {}

    def cached(b: float) -> float:
        value = seen.get(b)
        if value is None:
            value = seen[b] = fn(b)
        return value

    return cached


def percentile_perf(
    roof: Roofline,
    *,
    chips: int,
    kv_room: float,
    output_tokens: int,
    max_batch: int | None,
    percentile: float,
    tpot_ms: float | None,
    ttft_ms: float | None,
    tags: dict[str, Any],
    input_tokens_cv: float = 1.0,
) -> InferencePerf:
    """The load the replica takes with its SLOs met at ``percentile`` (``polyfleet.perf.serving``).

    Each request holds its mean live KV, ``Roofline.live_kv_bytes``: steady state, not
    the full context for every slot.
    """
    from polyfleet.perf.serving import Replica, planned_load

    p = roof.stages
    tpot: Callable[[float], float] = roof.tpot
    if roof.moe:  # MoE steps cost ~4x a dense one; the queueing model asks the same batch often
        tpot = _memoised(roof.tpot)
    replica = Replica(
        tpot_s=tpot,
        prefill_s=roof.prefill_s + p * roof.xfer(roof.input_tokens),
        chunked=roof.chunked,
        chunks=roof.chunks,
        kv_room_bytes=kv_room,
        kv_bytes_per_request=roof.live_kv_bytes,
        stages=p,
        chips=chips,
        output_tokens=output_tokens,
        input_tokens=round(roof.live_in),
        max_batch=max_batch,
        prefill_cv=input_tokens_cv,
        bound_of=roof.bound_of,
    )
    return planned_load(replica, percentile=percentile, tpot_ms=tpot_ms, ttft_ms=ttft_ms, tags=tags)


def idealised_perf(
    roof: Roofline,
    *,
    chips: int,
    kv_room: float,
    output_tokens: int,
    tpot_ms: float | None,
    ttft_ms: float | None,
    max_batch: int | None,
    batch: int | None,
    tags: dict[str, Any],
) -> InferencePerf:
    """The batch of the module docstring for a replica that always runs full, and its result."""
    p = roof.stages
    tpot, ttft = roof.tpot, roof.ttft
    b_mem = steady_state_capacity(kv_room, roof.live_kv_bytes) // p
    b_tpot: float = math.inf
    if batch is not None:
        if batch // p > b_mem or batch < p:
            return _infeasible(
                f"memory: batch {batch} does not fit, the memory holds {b_mem * p} request(s)",
                chips_per_replica=chips,
                bound="memory",
                **tags,
            )
    elif b_mem < 1:  # a request's mean live KV (output*(1+cv^2)/2 tokens) can outgrow its full context
        holds = "no request" if p == 1 else f"fewer than the {p} requests its {p} stages need"
        return _infeasible(
            f"memory: the KV memory left after the weights holds {holds} ({kv_room / 1e9:.1f} GB; "
            f"{roof.live_kv_bytes / 1e9:.1f} GB of mean live KV each)",
            chips_per_replica=chips,
            bound="memory",
            **tags,
        )
    elif tpot_ms is not None:
        target = tpot_ms / 1000
        if not roof.moe:
            s0, s1 = roof.dense_line()
            b_tpot = floor_eps((target - s0) / s1)
        elif tpot(1) > target * (1 + _EPS):
            b_tpot = 0
        else:  # tpot grows with b: bisect for the largest b <= b_mem meeting the target
            b_tpot = largest_true(1, max(b_mem, 1), lambda b: tpot(b) <= target * (1 + _EPS))

    if b_tpot < 1:
        return _infeasible(
            f"slo: tpot {tpot_ms:g} ms unreachable, one-request step is {tpot(1) * 1000:.1f} ms",
            chips_per_replica=chips,
            tpot_ms=tpot(1) * 1000,
            ttft_ms=ttft(1) * 1000,
            bound=roof.bound_of(1),
            **tags,
        )
    cap = b_mem if max_batch is None else min(b_mem, max(1, max_batch // p))
    b = int(batch // p if batch is not None else min(cap, b_tpot))
    why = "capacity" if b == b_mem else "slo: tpot"
    if batch is not None or b < min(b_mem, b_tpot):
        why = "batch"

    reason = ""
    if ttft_ms is not None and batch is None and ttft(b) * 1000 > ttft_ms * (1 + _EPS):
        limit_s = ttft_ms / 1000 * (1 + _EPS)
        if roof.chunked and ttft(1) <= limit_s:  # ttft grows with b: the largest b meeting it
            b, why = largest_true(1, b, lambda x: ttft(x) <= limit_s), "slo: ttft"
        else:
            reason = f"slo: ttft {ttft(b) * 1000:.1f} ms exceeds target {ttft_ms:g} ms"
            if roof.chunked:
                reason += f"; lowest reachable {ttft(1) * 1000:.1f} ms at batch {p}"

    stage = tpot(b) / p
    if not roof.chunked:
        per_request = roof.prefill_s / p + roof.xfer(roof.input_tokens) + output_tokens * stage / b
    else:  # prompts ride in the decode steps: b requests finish every output_tokens steps
        per_request = output_tokens * stage / b
    requests_per_s = 1 / per_request
    return InferencePerf(
        feasible=not reason,
        reason=reason,
        chips_per_replica=chips,
        max_batch=b * p,
        tpot_ms=tpot(b) * 1000,
        ttft_ms=ttft(b) * 1000,
        replica_requests_per_s=requests_per_s,
        output_tokens_per_s_per_chip=requests_per_s * output_tokens / chips,
        bound=roof.bound_of(b),
        limit=why,
        tpot_mean_ms=tpot(b) * 1000,
        ttft_mean_ms=ttft(b) * 1000,
        **tags,
    )
