"""The inference model's result record (``InferencePerf``) and its infeasible form."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class InferencePerf:
    """Result of the inference model for one (model card, accelerator, workload).

    ``reason`` is "" when feasible, else a sentence starting with its category:
    "memory:", "slo: tpot", "slo: ttft" or "spec:".  When infeasible the numeric fields
    hold the best values computed (0 where unknown) and ``bound`` may be "".
    ``chips_per_replica`` is ``t*pipeline_stages`` and ``max_batch`` the requests in
    flight over all stages (``pipeline_stages`` micro-batches of equal size).

    ``bound`` is what dominates one decode step: "memory" (bandwidth), "compute", or
    "overhead" (the fixed per-step cost exceeds memory + compute: small batches).
    ``limit`` is what stops the batch or the load from growing: "capacity" (KV memory),
    "slo: tpot", "slo: ttft", "batch" (a fixed or capped batch) or "stability" (the
    replica is busy all the time).  With a ``percentile`` (``polyfleet.perf.serving``)
    ``tpot_ms``/``ttft_ms`` are that percentile under Poisson arrivals at
    ``replica_requests_per_s`` and ``*_mean_ms`` the means; without one they are the
    idealised full-batch figures and the means equal them.  ``dtype`` is the precision
    the GEMMs run at and ``precision_note`` any stated conversion.
    """

    feasible: bool
    reason: str
    chips_per_replica: int
    max_batch: int
    tpot_ms: float
    ttft_ms: float
    replica_requests_per_s: float
    output_tokens_per_s_per_chip: float
    bound: str
    pipeline_stages: int = 1
    tensor_parallel: int = 0
    expert_parallel: int = 1
    dtype: str = ""
    precision_note: str = ""
    limit: str = ""
    tpot_mean_ms: float = 0.0
    ttft_mean_ms: float = 0.0
    percentile: float | None = None

    def to_dict(self) -> dict:
        """Plain dict of all fields, for JSON and tables."""
        return asdict(self)

    @property
    def configuration(self) -> str:
        """Short label of the replica: ``TP4 PP1 fp8 b=64`` (``EP`` when experts are split)."""
        ep = f" EP{self.expert_parallel}" if self.expert_parallel > 1 else ""
        return f"TP{self.tensor_parallel} PP{self.pipeline_stages}{ep} {self.dtype} b={self.max_batch}"


def infeasible(reason: str, **fields: float | int | str | None) -> InferencePerf:
    """An infeasible result with zeros for every field not given."""
    base: dict = {
        "chips_per_replica": 0,
        "max_batch": 0,
        "tpot_ms": 0.0,
        "ttft_ms": 0.0,
        "replica_requests_per_s": 0.0,
        "output_tokens_per_s_per_chip": 0.0,
        "bound": "",
    }
    base.update(fields)
    return InferencePerf(feasible=False, reason=reason, **base)
