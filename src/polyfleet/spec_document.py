"""The spec document's models: policy, workloads (inference, training, api) and the YAML root.

Re-exported by ``polyfleet.spec``, which validates a document against ``SpecModel`` and
resolves its catalog.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from polyfleet.catalog.models import Accelerator, ApiOffer, Dtype, Egress, ModelCard, Offer, Stack
from polyfleet.catalog.settings import CatalogSettings
from polyfleet.deals.spec import Deal, Uncertainty
from polyfleet.risk.assumptions import RiskAssumptions

INPUT_TOKENS_CV = 1.0
"""Default prompt-length coefficient of variation: ``inference_perf``'s, the exponential
spread behind the M/M/1 prefill queue plans used before the field existed."""
OUTPUT_TOKENS_CV = 0.0
"""Default output-length coefficient of variation: ``inference_perf``'s, every request
the same length (requests in flight hold n/2 output tokens on average)."""
MAX_TOKENS_CV = 10.0
"""Largest accepted length CV: a spread beyond ten times the mean is a typo, not a workload
(MLPerf's data sets measure 0.38 to 1.25: docs/perf-validation.md)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class MaxShare(_Strict):
    """Lock-in caps: the most any one provider / chip vendor may take.

    As ``policy.max_share``: of every service's peak capacity (dilution-proof); as
    ``policy.max_spend_share``: of total spend (``docs/planning-model.md``, Lock-in caps).
    """

    provider: float | None = Field(None, gt=0, le=1)
    vendor: float | None = Field(None, gt=0, le=1)


class Policy(_Strict):
    """Policies the plan must respect."""

    max_share: MaxShare = Field(
        MaxShare(), description="most of each service's peak capacity one provider / vendor may serve"
    )
    max_spend_share: MaxShare = Field(
        MaxShare(), description="most of total spend one provider / vendor may take (dilution can meet it)"
    )
    api_fallback: Literal["quota", "unlimited"] = Field(
        "quota",
        description="survival counts an api offer up to its stated quota; unlimited: also offers with none",
    )
    survive_provider_loss: float = Field(0.0, ge=0, le=1, description="f: fraction served after N-1")
    budget_usd: float | None = Field(None, gt=0)
    max_spot_share: float = Field(
        1.0, ge=0, le=1, description="most of a workload's peak demand spot capacity may serve"
    )
    spot_counts_for_survival: bool = Field(
        False, description="count spot replicas as capacity that survives a provider loss"
    )
    plan_arrival_quantile: float = Field(
        0.9, gt=0, le=1, description="monthly plans: plan an uncertain arrival at this quantile month"
    )
    move_hours_per_chip: float = Field(
        24.0,
        ge=0,
        le=730,
        description="monthly plans: moving capacity onto an offer after month 0 costs this many hours "
        "of its chips (deploy, warm-up, overlap)",
    )
    min_allocation_share: float = Field(
        0.02,
        ge=0,
        lt=1,
        description="monthly plans: an api allocation is 0 or at least this share of the workload's demand",
    )


class Slo(_Strict):
    """Latency targets for an inference service."""

    ttft_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)


class Throughput(_Strict):
    """A measured replica: how many chips it takes and the requests/s it sustains."""

    chips_per_replica: int = Field(gt=0)
    requests_per_s: float = Field(gt=0)
    force: bool = Field(
        False, description="use the measurement even where its replica cannot hold the weights (no warning)"
    )


class LengthBucket(_Strict):
    """One bucket of a request-length histogram: its tokens and its share of requests."""

    input_tokens: int = Field(gt=0)
    output_tokens: int = Field(gt=0)
    weight: float = Field(gt=0, description="relative share of requests; normalised over buckets")


class _Workload(_Strict):
    name: str = Field(min_length=1)
    stacks: list[Stack] | None = None


class _Placed(_Workload):
    """A workload that runs on rented capacity, so spot preemption concerns it."""

    max_spot_share: float | None = Field(
        None, ge=0, le=1, description="overrides policy.max_spot_share for this workload"
    )
    port_usd_by_stack: dict[Stack, float] = Field(
        {}, description="monthly plans: one-off USD to port the workload to a stack it first uses"
    )

    @field_validator("port_usd_by_stack")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        if any(v < 0 for v in value.values()):
            raise ValueError("porting costs must be >= 0")
        return value


class InferenceWorkload(_Placed):
    """A model served at a traffic rate under latency SLOs."""

    kind: Literal["inference"]
    model: str | ModelCard
    requests_per_s: float = Field(gt=0, description="mean requests/s")
    input_tokens: int = Field(gt=0, description="with lengths: derived, the rounded weighted mean")
    output_tokens: int = Field(gt=0, description="with lengths: derived, the rounded weighted mean")
    lengths: list[LengthBucket] | None = Field(None, min_length=1, description="request-length histogram")
    peak_to_mean: float = Field(1.0, ge=1)
    slo: Slo = Slo()
    throughput: dict[str, Throughput] = {}
    allow_multi_instance: bool = False
    batching: Literal["serial", "chunked"] = Field(
        "serial", description="serving model: prefill apart from decode, or chunked into its steps"
    )
    slo_percentile: float = Field(0.99, gt=0, lt=1, description="slo targets hold at this percentile")
    prefix_cache_hit: float = Field(0.0, ge=0, lt=1, description="share of each prompt that is cached")
    input_tokens_cv: float = Field(
        INPUT_TOKENS_CV, ge=0, le=MAX_TOKENS_CV,
        description="prompt lengths' coefficient of variation: the prefill queue's wait x (1+cv^2)/2",
    )  # fmt: skip
    output_tokens_cv: float = Field(
        OUTPUT_TOKENS_CV, ge=0, le=MAX_TOKENS_CV,
        description="output lengths' coefficient of variation: live output KV n(1+cv^2)/2 per request",
    )  # fmt: skip
    precisions: list[Dtype] | None = Field(
        None, min_length=1, description="weight precisions the configuration search may use (default: card's)"
    )
    allow_api: bool = Field(True, description="may buy this model per token from api offers")
    growth_per_month: float = Field(0.0, gt=-1, description="monthly plans: demand x (1 + g)^month")
    requests_per_s_by_month: list[float] | None = Field(
        None, min_length=1, description="monthly plans: mean requests/s per month (overrides growth)"
    )

    @model_validator(mode="before")
    @classmethod
    def _tokens_from_lengths(cls, data: Any) -> Any:
        """With ``lengths``, input_tokens/output_tokens are derived: placeholders until validated."""
        if isinstance(data, dict) and data.get("lengths") is not None:
            if "input_tokens" in data or "output_tokens" in data:
                raise ValueError(
                    "give input_tokens/output_tokens or lengths, not both "
                    "(with lengths they are the weighted means)"
                )
            data = {**data, "input_tokens": 1, "output_tokens": 1}
        return data

    @model_validator(mode="after")
    def _mean_tokens(self) -> InferenceWorkload:
        """Fill input_tokens/output_tokens with the (rounded) weighted means of ``lengths``."""
        if self.lengths is not None:
            mean_in, mean_out = self.mean_tokens
            # frozen model: the derived fields are set once, during validation
            object.__setattr__(self, "input_tokens", max(1, round(mean_in)))
            object.__setattr__(self, "output_tokens", max(1, round(mean_out)))
        return self

    @property
    def length_mix(self) -> list[tuple[int, int, float]]:
        """(input_tokens, output_tokens, weight) per bucket, weights summing to 1."""
        if self.lengths is None:
            return [(self.input_tokens, self.output_tokens, 1.0)]
        total = sum(b.weight for b in self.lengths)
        return [(b.input_tokens, b.output_tokens, b.weight / total) for b in self.lengths]

    @property
    def mean_tokens(self) -> tuple[float, float]:
        """Exact weighted mean (input, output) tokens per request (unrounded)."""
        mix = self.length_mix
        return sum(i * p for i, _, p in mix), sum(o * p for _, o, p in mix)

    @property
    def peak_requests_per_s(self) -> float:
        """D in the planning model: capacity is bought for the peak."""
        return self.requests_per_s * self.peak_to_mean


class TrainingWorkload(_Placed):
    """A job of a given FLOP count with a deadline, gang-scheduled on one offer.

    A job is placed whole, so its spot share is 0 or 1: with a max spot share below 1 it
    is not placed on spot.  ``data_gb`` at ``data_at`` (its dataset and checkpoints) is
    moved to a placement at any other provider, at ``data_at``'s egress price.
    """

    kind: Literal["training"]
    model: str | ModelCard
    tokens_b: float = Field(gt=0, description="training tokens, billions")
    deadline_days: float = Field(gt=0)
    flops: float | None = Field(None, gt=0, description="total FLOPs; default 6 x active params x tokens")
    mfu: float | None = Field(None, gt=0, le=1)
    data_gb: float | None = Field(None, gt=0, description="dataset and checkpoints to move, GB")
    data_at: str | None = Field(None, min_length=1, description="provider that holds the data")

    @model_validator(mode="after")
    def _data_both(self) -> TrainingWorkload:
        if (self.data_gb is None) != (self.data_at is None):
            raise ValueError("give data_gb and data_at together (how much data, and which provider holds it)")
        return self


class ApiWorkload(_Workload):
    """Token demand for a model bought per token."""

    kind: Literal["api"]
    model: str
    mtok_in_per_month: float = Field(ge=0)
    mtok_out_per_month: float = Field(ge=0)
    growth_per_month: float = Field(0.0, gt=-1, description="monthly plans: tokens x (1 + g)^month")

    @model_validator(mode="after")
    def _some_tokens(self) -> ApiWorkload:
        if self.mtok_in_per_month + self.mtok_out_per_month <= 0:
            raise ValueError("an api workload needs mtok_in_per_month or mtok_out_per_month > 0")
        return self


Workload = Annotated[InferenceWorkload | TrainingWorkload | ApiWorkload, Field(discriminator="kind")]


class SpecModel(_Strict):
    """The YAML document, field for field."""

    horizon_months: float = Field(
        1.0, gt=0, le=1200, description="months the plan covers (at most a century: costs scale with it)"
    )
    periods: Literal["single", "monthly"] = Field(
        "single", description="single: one period of horizon_months; monthly: one MILP over every month"
    )
    catalog: Literal["bundled", "none"] | list[str] | CatalogSettings = "bundled"
    calibration: str | None = Field(
        None, description="file written by `polyfleet perf calibrate`, or `bundled` (fit to published points)"
    )
    accelerators: list[Accelerator] = []
    offers: list[Offer] = []
    api_offers: list[ApiOffer] = []
    models: list[ModelCard] = []
    egress: list[Egress] = []
    policy: Policy = Policy()
    risk: RiskAssumptions = RiskAssumptions()
    workloads: list[Workload] = Field(min_length=1)
    deals: list[Deal] = Field([], description="commitment deals `polyfleet deal` evaluates")
    uncertainty: Uncertainty | None = Field(None, description="scenarios for `polyfleet deal`")
