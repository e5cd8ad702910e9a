"""Typed catalog records: accelerators, offers, api offers and model cards.

Every bundled row carries ``source`` and ``as_of`` so a user can audit it.  The same
models validate rows written inline in a fleet spec, so inline and bundled entries
have exactly the same fields.  Units are in the field names.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Stack = Literal["cuda", "rocm", "xla", "neuron", "maia", "synapse"]
# capacity-block: a short reservation booked for a fixed number of days (AWS EC2 Capacity Blocks
# for ML, GCP DWS calendar mode), paid up front for the whole block, no lock beyond it.
Term = Literal["on-demand", "spot", "reserved-1y", "reserved-3y", "capacity-block"]
Dtype = Literal["fp32", "bf16", "fp16", "fp8", "int8", "fp4", "int4"]

BYTES_PER_DTYPE: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "int4": 0.5,
}


class _Record(BaseModel):
    """Base for catalog rows: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Accelerator(_Record):
    """One chip model with its dense peak rates, memory and software stack."""

    id: str = Field(description="polyfleet id, e.g. nvidia-h100-sxm")
    vendor: str = Field(description="who makes the chip: nvidia, amd, google, aws, microsoft, intel")
    name: str = ""
    bf16_tflops: float | None = Field(None, gt=0, description="dense BF16 peak, TFLOP/s; empty: none")
    fp8_tflops: float | None = Field(None, gt=0, description="dense FP8 peak, TFLOP/s; empty: none")
    fp6_tflops: float | None = Field(None, gt=0, description="dense FP6 peak, TFLOP/s; empty: none")
    fp4_tflops: float | None = Field(None, gt=0, description="dense FP4 peak, TFLOP/s; empty: none")
    int8_tops: float | None = Field(None, gt=0, description="dense INT8 peak, TOP/s; empty: none")
    hbm_gb: float = Field(gt=0, description="device memory, GB of 10^9 bytes (GiB quotes converted)")
    hbm_tbps: float = Field(gt=0, description="device memory bandwidth, TB/s (10^12 bytes/s)")
    scaleup_gbps: float | None = Field(None, ge=0, description="scale-up link, GB/s per chip")
    scaleup_links: int | None = Field(
        None,
        ge=1,
        description="point-to-point scale-up links of a full-mesh box (7 for 8 chips wired all-to-all); "
        "a tensor-parallel group of t chips uses min(t-1, links) of them; empty: switched fabric "
        "(NVSwitch, ICI), every group gets the whole scaleup_gbps",
    )
    stack: Stack
    confidence: Literal["high", "medium", "low"] = "medium"
    source: str = ""
    as_of: str = ""
    notes: str = ""

    def peak_tflops(self, dtype: str) -> float | None:
        """Dense peak (TFLOP/s or TOP/s) for weights of ``dtype``; None when no rate applies.

        A chip without a native rate for the dtype runs it in the next wider format it
        supports (FP4 weights on an H100 compute at its FP8 rate), never in a narrower,
        faster one: a blank column means "not supported", so a BF16 model on a chip with
        only an FP8 rate (Maia 200) gets None, not the FP8 figure.
        """
        for column in PEAK_COLUMNS_BY_DTYPE.get(dtype, ("bf16_tflops",)):
            value = getattr(self, column)
            if value:
                return float(value)
        return None


#: dtype of the weights -> accelerator rate columns tried in order (native, then wider formats)
PEAK_COLUMNS_BY_DTYPE: dict[str, tuple[str, ...]] = {
    "fp32": ("bf16_tflops",),
    "bf16": ("bf16_tflops",),
    "fp16": ("bf16_tflops",),
    "fp8": ("fp8_tflops", "bf16_tflops"),
    "fp6": ("fp6_tflops", "fp8_tflops", "bf16_tflops"),
    "fp4": ("fp4_tflops", "fp8_tflops", "bf16_tflops"),
    "int8": ("int8_tops", "bf16_tflops"),
    "int4": ("int8_tops", "bf16_tflops"),
}


#: Offer fields only a monthly plan reads; written inline in a spec, not catalog CSV columns
MONTHLY_FIELDS = ("available_from_month", "arrival_month_probabilities")


class Offer(_Record):
    """Capacity one can rent: provider x region x accelerator x term."""

    id: str
    provider: str
    region: str = ""
    accelerator: str = Field(description="accelerator id")
    instance_type: str = ""
    term: Term = "on-demand"
    chips_per_instance: int = Field(gt=0)
    usd_per_chip_hour: float = Field(gt=0)
    available_instances: int = Field(gt=0, description="most instances one can get")
    available_instances_assumed: bool = Field(
        False, description="true when available_instances is polyfleet's default, not a published figure"
    )
    available_from: str = Field("", description="date the capacity is announced for (information)")
    available_from_month: int | None = Field(
        None, ge=0, description="monthly plans: first month (0-based) the capacity can be used"
    )
    arrival_month_probabilities: dict[int, float] | None = Field(
        None, description="monthly plans: uncertain arrival, probability per first usable month"
    )
    estimate: bool = Field(False, description="true when no public price exists and the row is an estimate")
    estimate_basis: str = Field("", description="how an estimated price was derived")
    source: str = ""
    as_of: str = ""
    notes: str = ""

    @field_validator("arrival_month_probabilities")
    @classmethod
    def _distribution(cls, value: dict[int, float] | None) -> dict[int, float] | None:
        if value is None:
            return None
        if not value or any(m < 0 for m in value) or any(not 0 <= p <= 1 for p in value.values()):
            raise ValueError("expected {month >= 0: probability in [0, 1]}")
        if abs(sum(value.values()) - 1) > 1e-6:
            raise ValueError(f"probabilities must add up to 1, got {sum(value.values()):g}")
        return dict(sorted(value.items()))

    def first_month(self, quantile: float) -> int:
        """First usable month: ``available_from_month``, or the arrival quantile; 0 if neither."""
        if self.arrival_month_probabilities:
            total = 0.0
            for month, p in self.arrival_month_probabilities.items():
                total += p
                if total >= quantile - 1e-9:
                    return month
            return max(self.arrival_month_probabilities)
        return self.available_from_month or 0


class ApiOffer(_Record):
    """A model sold per token by a host; ``resells`` names the model maker it resells."""

    id: str
    provider: str
    model: str
    usd_per_mtok_in: float = Field(gt=0)
    usd_per_mtok_out: float = Field(gt=0)
    max_tokens_per_minute: float | None = Field(None, gt=0)
    fallback_tokens_per_minute: float | None = Field(
        None, gt=0, description="emergency quota survival may count, when not max_tokens_per_minute"
    )
    context_tokens: int | None = Field(None, gt=0, description="longest request (input + output) it accepts")
    resells: str = ""
    vendor: str = Field("", description="chip vendor serving it, when the host says so")
    tier: str = ""
    retired: str = Field(
        "", description="YYYY-MM-DD from which the host no longer serves the model; never planned"
    )
    estimate: bool = Field(False, description="true when no public price exists and the row is an estimate")
    estimate_basis: str = Field("", description="how an estimated price was derived")
    source: str = ""
    as_of: str = ""
    notes: str = ""

    @field_validator("retired")
    @classmethod
    def _iso_date(cls, value: str) -> str:
        if value:
            date.fromisoformat(value)  # ValueError -> a validation error naming the field
        return value

    @field_validator("resells", "vendor", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return "" if value is None else value


class Egress(_Record):
    """What moving data out of a provider costs: USD per GB past the free allowance.

    Moving a dataset or checkpoints from provider A to a placement at B is paid at A's
    internet egress rate (the first paid tier; volume discounts are left out).
    """

    provider: str
    usd_per_gb: float | None = Field(None, ge=0, description="empty when no price is published")
    free_gb_per_month: float | None = Field(None, ge=0)
    tier_note: str = ""
    source: str = ""
    as_of: str = ""


class ModelCard(_Record):
    """Architecture numbers a performance model needs.

    ``params_b`` is the total parameter count in billions; ``active_params_b`` the
    parameters touched per token (differs for mixture-of-experts).  The KV cache per
    token is ``2 x layers x kv_heads x head_dim x bytes(kv_dtype)`` for multi-head and
    grouped-query attention, or ``layers x kv_latent_dim x bytes(kv_dtype)`` for
    multi-head latent attention (DeepSeek), where K and V share one compressed latent, or
    ``2 x full_attention_layers x kv_heads x head_dim x bytes(kv_dtype)`` for hybrid
    linear/full attention (Qwen3-Next, Qwen3.5: only the full-attention layers cache per
    token; the linear layers' fixed per-sequence state is in ``notes``, not in this figure).
    Attention kinds the card cannot describe (DeepSeek-V4's compressed attention) have no
    card: ``catalog import-hf-config`` rejects them by name.
    Without an explicit ``kv_dtype`` the KV cache is stored at the weight dtype, except
    that fp4/int4 weights get an fp8 KV cache (serving stacks quantise KV to 8 bits, not 4).
    """

    name: str = ""
    params_b: float = Field(gt=0)
    active_params_b: float | None = Field(None, gt=0)
    layers: int | None = Field(None, gt=0)
    hidden: int | None = Field(None, gt=0)
    heads: int | None = Field(None, gt=0)
    kv_heads: int | None = Field(None, gt=0)
    head_dim: int | None = Field(None, gt=0)
    attention: Literal["mha", "gqa", "mla", "hybrid"] = "gqa"
    kv_latent_dim: int | None = Field(None, gt=0, description="MLA: latent + rope dims per layer")
    full_attention_layers: int | None = Field(
        None,
        gt=0,
        description="hybrid: layers with full (GQA) attention and a per-token KV cache; the other "
        "layers are linear attention with a fixed-size state per sequence, no per-token cache",
    )
    experts: int | None = Field(None, gt=0)
    experts_per_token: int | None = Field(None, gt=0)
    dtype: Dtype = "bf16"
    kv_dtype: Dtype | None = None
    context_tokens: int | None = Field(None, gt=0)
    source: str = ""
    as_of: str = ""
    notes: str = ""

    @property
    def active_b(self) -> float:
        """Parameters used per token, billions."""
        return self.active_params_b or self.params_b

    @property
    def weight_bytes(self) -> float:
        """Bytes of weights at the card's dtype."""
        return self.params_b * 1e9 * BYTES_PER_DTYPE[self.dtype]

    @property
    def kv_bytes_per_token(self) -> float | None:
        """KV-cache bytes per token of context; None when the card lacks the numbers."""
        kv_bytes = BYTES_PER_DTYPE[self.kv_dtype or ("fp8" if self.dtype in ("fp4", "int4") else self.dtype)]
        if self.layers is None:
            return None
        if self.attention == "mla":
            if self.kv_latent_dim is None:
                return None
            return float(self.layers * self.kv_latent_dim * kv_bytes)
        kv_heads = self.kv_heads or self.heads
        if kv_heads is None or self.head_dim is None:
            return None
        layers = self.layers
        if self.attention == "hybrid":
            if self.full_attention_layers is None:
                return None
            layers = self.full_attention_layers
        return float(2 * layers * kv_heads * self.head_dim * kv_bytes)
