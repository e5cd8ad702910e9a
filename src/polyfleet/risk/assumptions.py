"""Scenario assumptions for ``polyfleet risk``: the spec's ``risk:`` section.

Every field has a default, with its reasoning in ``docs/risk.md``; units are in the
names.  Probabilities are per provider (or per accelerator) and are independent across
providers and accelerators.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RiskAssumptions(BaseModel):
    """What can go wrong with a bought fleet, and what a shortfall costs.

    Read by :func:`polyfleet.risk.draw_scenarios` (the random events) and
    :func:`polyfleet.risk.evaluate` (the re-dispatch and its emergency prices).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    outage_probability_per_month: float = Field(
        0.02,
        ge=0,
        le=1,
        description="chance that a whole provider goes down at least once in a month",
    )
    outage_duration_days: float = Field(
        1.0, gt=0, description="how long a provider outage lasts (all of the provider's capacity is lost)"
    )
    capacity_shock_probability_per_month: float = Field(
        0.05,
        ge=0,
        le=1,
        description="chance that a provider loses part of its capacity (reclaims spot, loses a cluster) "
        "in a month",
    )
    capacity_shock_fraction_beta: tuple[float, float] = Field(
        (2.0, 5.0),
        description="Beta(a, b) of the fraction of capacity lost in a shock (mean a/(a+b)); the shock lasts "
        "the whole horizon",
    )
    spot_price_volatility_per_sqrt_month: float = Field(
        0.25,
        ge=0,
        description="lognormal sigma of spot price moves over one month (scales with sqrt(months))",
    )
    on_demand_price_volatility_per_sqrt_month: float = Field(
        0.03, ge=0, description="lognormal sigma of on-demand price moves over one month"
    )
    chip_delay_probability: float = Field(
        0.03,
        ge=0,
        le=1,
        description="chance, per accelerator in the plan and per horizon, that its capacity arrives late",
    )
    chip_delay_probability_by_accelerator: dict[str, float] = Field(
        default_factory=dict,
        description="per-accelerator override of chip_delay_probability (e.g. a new chip: 0.3)",
    )
    chip_delay_max_months: int = Field(
        2, ge=1, le=24, description="a delay lasts 1..max whole months, uniformly (capped at the horizon)"
    )
    emergency_price_multiplier: float = Field(
        2.0,
        ge=1,
        description="emergency capacity costs this times the workload's own average price per unit "
        "of capacity",
    )
    emergency_capacity_fraction: float | None = Field(
        0.5,
        ge=0,
        description="most emergency capacity a workload can buy, as a fraction of its peak demand; "
        "null: unlimited (nothing is ever unserved)",
    )
    cvar_alpha: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="tail level of the mean-CVaR objective of `polyfleet deal` (issue 17); "
        "null: uncertainty.cvar_alpha (default 0.95)",
    )
    cvar_weight: float | None = Field(
        None,
        ge=0,
        le=1,
        description="weight w of CVaR in `polyfleet deal`'s objective (1 - w) E[cost] + w CVaR; "
        "null: uncertainty.cvar_weight (default 0)",
    )

    @field_validator("capacity_shock_fraction_beta")
    @classmethod
    def _beta_shape(cls, value: tuple[float, float]) -> tuple[float, float]:
        if min(value) <= 0:
            raise ValueError("expected two numbers > 0 (Beta shape a, b)")
        return value

    @field_validator("chip_delay_probability_by_accelerator")
    @classmethod
    def _probabilities(cls, value: dict[str, float]) -> dict[str, float]:
        for accelerator, p in value.items():
            if not 0 <= p <= 1:
                raise ValueError(f"expected a probability in [0, 1] for {accelerator!r}, got {p!r}")
        return value
