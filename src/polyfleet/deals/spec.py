"""The ``deals:`` and ``uncertainty:`` sections of a spec (``docs/deals.md``).

Pure pydantic models: ``polyfleet.spec`` imports them, so this module imports nothing of
polyfleet's.  References to offers and providers are checked against the catalog by
``polyfleet.deals.problem`` when ``polyfleet deal`` runs (``polyfleet plan`` ignores both
sections).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SizeRange(_Strict):
    """A size chosen freely between min and max (continuous first-stage variable)."""

    min: float = Field(0.0, ge=0)
    max: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> SizeRange:
        if self.min > self.max:
            raise ValueError("min must be <= max")
        return self


def _non_empty_grid(value: object) -> object:
    if isinstance(value, list) and not value:  # else pydantic reports only "a valid number"
        raise ValueError("expected a number, a non-empty list of sizes or {min, max}, got []")
    return value


#: a deal's size: one number (sign it or not), a grid of sizes to pick one from, or a range
Size = Annotated[float | list[Annotated[float, Field(gt=0)]] | SizeRange, BeforeValidator(_non_empty_grid)]


def size_options(size: Size) -> tuple[list[float], tuple[float, float] | None]:
    """(grid of sizes, continuous range or None) of a ``Size``."""
    if isinstance(size, SizeRange):
        return [], (size.min, size.max)
    if isinstance(size, list):
        return sorted(set(size)), None
    return [float(size)], None


class Exit(_Strict):
    """Right to walk away from month ``after_month`` on, paying a share of what is cancelled."""

    after_month: int = Field(ge=1, description="first month the deal may be exited in")
    penalty_share: float = Field(
        ge=0, le=1, description="penalty as a share of the commitment (USD) the exit cancels"
    )


class Conversion(_Strict):
    """Right to convert reserved instances to another offer of the same provider."""

    to_offer: str = Field(min_length=1, description="offer id of the other chip generation")
    ratio: float = Field(gt=0, description="instances of to_offer per converted instance")
    from_month: int = Field(0, ge=0, description="first month a conversion may happen")


class SpendCommitment(_Strict):
    """Commit USD per year with a provider for a discount on its listed prices (take-or-pay)."""

    kind: Literal["spend"]
    name: str = Field(min_length=1)
    provider: str = Field(min_length=1)
    offers: list[str] | None = Field(None, description="offer ids covered; default all of the provider's")
    api_offers: list[str] | None = Field(
        None, description="api offer ids covered; default all of the provider's"
    )
    discount: float = Field(gt=0, lt=1, description="off listed prices of covered usage")
    usd_per_year: Size = Field(description="commitment per deal year (or in total with total: true)")
    years: int = Field(ge=1, le=10)
    start_month: int = Field(0, ge=0)
    total: bool = Field(False, description="the commitment is on the total over all years, not each year")
    ramp: list[Annotated[float, Field(ge=0)]] | None = Field(
        None, description="share of usd_per_year committed in each deal year (default 1 each)"
    )
    carry_over: bool = Field(False, description="unused commitment of a year pays for later usage")
    exit: Exit | None = None

    @model_validator(mode="after")
    def _ramp_length(self) -> SpendCommitment:
        if self.ramp is not None and len(self.ramp) != self.years:
            raise ValueError(f"ramp needs one share per deal year ({self.years}), got {len(self.ramp)}")
        if self.total and self.ramp is not None:
            raise ValueError("give ramp (a yearly schedule) or total: true, not both")
        return self


class Reservation(_Strict):
    """K instances of an offer for a date range at a stated price, paid whether used or not."""

    kind: Literal["reservation"]
    name: str = Field(min_length=1)
    offer: str = Field(min_length=1, description="catalog offer whose chips and provider it reserves")
    instances: Size
    usd_per_instance_month: float = Field(gt=0)
    start_month: int = Field(0, ge=0)
    months: int = Field(ge=1, description="length of the block")
    resale_share: float = Field(0.0, ge=0, le=1, description="most of the block that may be resold")
    resale_recovery: float = Field(
        0.0, ge=0, le=1, description="share of the price a resold instance recovers"
    )
    exit: Exit | None = None
    convert: Conversion | None = None


Deal = Annotated[SpendCommitment | Reservation, Field(discriminator="kind")]


class NamedScenario(_Strict):
    """One scenario listed by hand."""

    name: str = Field(min_length=1)
    probability: float = Field(gt=0, le=1)
    family: str | None = Field(None, description="group for regret; default the name")
    demand_growth_per_year: float = Field(
        0.0, gt=-1, description="extra demand growth on top of the workloads' own paths"
    )
    price_decline_per_year: float | None = Field(
        None, ge=0, lt=1, description="overrides the price model's declines in this scenario"
    )
    arrival_month: dict[str, Annotated[int, Field(ge=0)]] = Field(
        {}, description="offer id -> first usable month"
    )
    capacity_loss: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        {}, description="provider -> share of its capacity lost for the whole horizon"
    )


class DemandModel(_Strict):
    """Log-normal demand: multiplier exp((drift - vol^2/2) t + vol W_t), t in years."""

    drift_per_year: float = Field(0.0, description="mean extra growth (log) per year")
    volatility_per_year: float = Field(0.0, ge=0)


class PriceModel(_Strict):
    """List prices fall by a share per year: by accelerator id, api offers, or the default."""

    default: float = Field(0.0, ge=0, lt=1)
    api: float | None = Field(None, ge=0, lt=1)
    by_accelerator: dict[str, Annotated[float, Field(ge=0, lt=1)]] = {}
    sd: float = Field(0.0, ge=0, description="sampled: normal noise on each scenario's declines")


class Sampled(_Strict):
    """Scenarios drawn at random, reproducible from the seed."""

    count: int = Field(50, ge=1, le=100_000)
    seed: int = Field(0, ge=0)
    demand: DemandModel = DemandModel()
    arrival_month: dict[str, dict[int, float]] = Field(
        {}, description="offer id -> {first usable month: probability}; default the offer's own"
    )
    shocks: bool = Field(True, description="draw outages and capacity shocks from the spec's risk: section")


class Uncertainty(_Strict):
    """What is uncertain, and how the decision weighs it."""

    scenarios: list[NamedScenario] | None = Field(None, min_length=1)
    sampled: Sampled | None = None
    prices: PriceModel = PriceModel()
    out_of_sample: int = Field(200, ge=1, le=1_000_000, description="fresh scenarios to evaluate on")
    cvar_alpha: float = Field(0.95, gt=0, lt=1)
    cvar_weight: float = Field(0.0, ge=0, le=1, description="objective: (1-w) mean + w CVaR_alpha")
    quarters_after_month: int = Field(24, ge=0, description="months past this are planned by quarter")
    gap: float = Field(0.01, gt=0, lt=1, description="relative gap at which the decomposition stops")

    @model_validator(mode="after")
    def _one_source(self) -> Uncertainty:
        if (self.scenarios is None) == (self.sampled is None):
            raise ValueError("give scenarios (listed by hand) or sampled, exactly one")
        if self.scenarios is not None:
            total = sum(s.probability for s in self.scenarios)
            if abs(total - 1) > 1e-6:
                raise ValueError(f"scenario probabilities must add up to 1, got {total:g}")
        return self
