"""The parallel layout of one inference replica: tensor-parallel chips ``t`` x pipeline stages ``p``.

Part of the inference model (``polyfleet.perf.inference``; notation there).  Weights and
KV cache are split evenly over the ``t*p`` chips, so the layout is chosen by memory
capacity: the fewest chips whose usable memory (``HBM*u`` each) holds the weights and
the KV of the requests the replica must admit.

Chips per replica.  Let ``need = W + m*ctx_full*kv`` with ``m = min_batch`` (1 unless
the caller asks for KV room for more requests).  Tensor parallelism: the smallest power
of two ``t`` in 1, 2, 4, ..., MAX_TENSOR_PARALLEL (and <= max_chips, and <= chips_per_node
when given) with ``t*HBM*u >= need``; then ``p = 1``.  Pipeline parallelism, only when
``chips_per_node`` is given and no such ``t`` exists: ``t`` = the largest power of two
<= chips_per_node (and the caps above) and ``p`` the smallest power of two in
2, 4, ..., MAX_PIPELINE_STAGES with ``t*p <= max_chips`` and
``t*p*HBM*u >= W + max(m, p)*ctx_full*kv`` (room for one request per micro-batch).
chips_per_replica = ``t*p``; each stage holds ``L/p`` layers on ``t`` chips of one node.

A forced layout (``tensor_parallel``/``pipeline_stages``) is taken as given and only
checked: it must hold the weights and one request per micro-batch.  With prefix caching
the shared prefix's KV (``shared_kv``) is stored once per replica and counts in ``W``.

``mesh_share`` is the share of a chip's scale-up bandwidth a ``t``-chip group can use
and ``link_gbps`` the bidirectional GB/s per chip the group's all-reduce achieves (the
tensor-parallel all-reduce's link, ``polyfleet.perf.roofline``): ``scaleup_gbps*mesh_share``
times the fabric's measured share of its line rate (``defaults.LINK_EFFICIENCY``: PCIe 0.65,
the H100 NVL bridge 0.855, xGMI 0.75, switched NVLink 1), or, on a bridged part
(``defaults.SCALEUP_GROUP``: H100 NVL/PCIe pairs) whose group is larger than the bridge
joins, the PCIe figure beyond it (a ring runs at its slowest hop).  ``allreduce_latency_s``
is one all-reduce's fixed cost on that fabric (PCIe 24 us, else 10 us).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from polyfleet.catalog.models import Accelerator
from polyfleet.perf.defaults import (
    ALLREDUCE_LATENCY_S,
    ALLREDUCE_LATENCY_S_BY_FABRIC,
    FABRIC_BY_ACCELERATOR,
    LINK_EFFICIENCY,
    MAX_PIPELINE_STAGES,
    MAX_TENSOR_PARALLEL,
    SCALEUP_GROUP,
    fabric_of,
)
from polyfleet.perf.result import InferencePerf
from polyfleet.perf.result import infeasible as _infeasible


@dataclass(frozen=True)
class Memory:
    """Bytes the layout must hold: weights, a cached prefix's KV, and KV per request.

    ``usable`` is one chip's usable memory (``HBM*u``), ``shared_kv`` the prefix KV stored
    once per replica, ``ctx_full`` a request's context at its end (tokens) and ``kv``
    bytes per context token.
    """

    usable: float
    weights: float
    shared_kv: float
    ctx_full: float
    kv: float

    def need(self, requests: int) -> float:
        """Bytes for the weights, the shared prefix and ``requests`` requests' KV at full context."""
        return self.weights + self.shared_kv + requests * self.ctx_full * self.kv


def pow2_floor(n: int) -> int:
    """Largest power of two <= n (n >= 1)."""
    return 1 << (n.bit_length() - 1)


def mesh_share(acc: Accelerator, t: int) -> float:
    """Share of the chip's scale-up bandwidth a ``t``-chip group can use.

    On a switched fabric (NVSwitch, TPU ICI: no ``scaleup_links``) any group gets it all.
    In a full-mesh box (MI300X, Gaudi: ``scaleup_links`` point-to-point peer links) a chip
    reaches its ``t - 1`` group peers over one link each and the others sit idle.
    """
    links = acc.scaleup_links
    if not links:
        return 1.0
    return min(t - 1, links) / links


def link_gbps(acc: Accelerator, t: int) -> float:
    """Bidirectional GB/s per chip a ``t``-chip tensor-parallel group's all-reduce achieves.

    ``scaleup_gbps * mesh_share`` times the fabric's ``LINK_EFFICIENCY`` (point-to-point
    fabrics: PCIe, the H100 NVL/PCIe NVLink bridge, MI300X/MI325X xGMI; a switched fabric
    keeps its line rate); a bridged part (``SCALEUP_GROUP``) whose group is larger than its
    bridge joins goes over PCIe between bridges, so it gets that figure (times the PCIe
    efficiency) when lower.
    """
    gbps = (acc.scaleup_gbps or 0.0) * mesh_share(acc, t)
    gbps *= LINK_EFFICIENCY.get(FABRIC_BY_ACCELERATOR.get(acc.id, ""), 1.0)
    group = SCALEUP_GROUP.get(acc.id)
    if group is not None and t > group[0]:
        gbps = min(gbps, group[1] * LINK_EFFICIENCY["pcie"])
    return gbps


def allreduce_latency_s(acc: Accelerator, t: int) -> float:
    """Fixed seconds of one all-reduce of a ``t``-chip group: the fabric's measured figure
    (``ALLREDUCE_LATENCY_S_BY_FABRIC``, PCIe 24 us) or ``ALLREDUCE_LATENCY_S`` (10 us)."""
    return ALLREDUCE_LATENCY_S_BY_FABRIC.get(fabric_of(acc.id, t), ALLREDUCE_LATENCY_S)


def forced_layout(
    memory: Memory, tensor_parallel: int, pipeline_stages: int | None, tags: dict[str, Any]
) -> tuple[int, int] | InferencePerf:
    """``(t, p)`` as the caller fixed them, or an infeasible result when they cannot hold
    the weights and one request per micro-batch (why: a forced layout is not resized)."""
    t, p = tensor_parallel, pipeline_stages or 1
    need = memory.need(p)
    if t * p * memory.usable < need:
        return _infeasible(
            f"memory: weights + KV need {need / 1e9:.1f} GB, "
            f"at most {t * p * memory.usable / 1e9:.1f} GB usable on TP{t} x PP{p}",
            bound="memory",
            chips_per_replica=t * p,
            tensor_parallel=t,
            pipeline_stages=p,
            **tags,
        )
    return t, p


def smallest_layout(
    memory: Memory,
    *,
    min_batch: int,
    max_chips: int | None,
    chips_per_node: int | None,
    tags: dict[str, Any],
) -> tuple[int, int] | InferencePerf:
    """The smallest ``(t, p)`` of the module docstring's rule, or an infeasible result.

    Why the smallest: more chips than memory needs is the configuration search's choice
    (``polyfleet.perf.configs``), not the single estimate's.
    """
    limit = MAX_TENSOR_PARALLEL
    for cap in (max_chips, chips_per_node):
        if cap is not None:
            limit = min(limit, cap)
    need = memory.need(min_batch)
    usable = memory.usable
    t, p = 1, 1
    while t * usable < need:
        if t * 2 > limit:
            break
        t *= 2
    if t * usable >= need:
        return t, p
    largest, stages = pow2_floor(limit), 0
    if chips_per_node is not None:
        # Pipeline stages across nodes, each stage a whole (power-of-two) node group.
        t, q = largest, 2
        while q <= MAX_PIPELINE_STAGES and (max_chips is None or t * q <= max_chips):
            if t * q * usable >= memory.need(max(min_batch, q)):
                return t, q
            stages, q = q, q * 2
    where = f"{largest} chip(s)"
    if stages:
        largest = t * stages
        where = f"{largest} chip(s) ({stages} pipeline stages of {t})"
    return _infeasible(
        f"memory: weights + KV for {min_batch} request(s) need {need / 1e9:.1f} GB, "
        f"at most {largest * usable / 1e9:.1f} GB usable on {where}",
        bound="memory",
        **tags,
    )
