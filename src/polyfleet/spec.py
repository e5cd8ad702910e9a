"""The fleet spec: what an organisation must run and what it may buy.

``load_spec(path)`` reads YAML, validates it against the pydantic models below, merges
the inline catalog entries over the bundled catalog, and checks every reference.  Every
problem becomes a one-line ``SpecError`` naming ``file:line``, the field path and what
was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from polyfleet.catalog.io import Catalog, load_bundled, load_catalog_file
from polyfleet.catalog.lifecycle import without_retired
from polyfleet.catalog.models import Accelerator, ApiOffer, Dtype, Egress, ModelCard, Offer, Stack
from polyfleet.catalog.settings import CatalogSettings, catalog_entries
from polyfleet.catalog.skypilot import load_skypilot_catalog
from polyfleet.deals.spec import Deal, Uncertainty
from polyfleet.errors import SpecError, did_you_mean
from polyfleet.perf.calibration import Calibration, load_calibration
from polyfleet.risk.assumptions import RiskAssumptions
from polyfleet.yamlio import dotted, line_of, read_yaml


def _admits(annotation: Any, kinds: tuple[type, ...]) -> bool:
    """Whether a field's type admits one of ``kinds`` (itself, or in a union or container)."""
    if annotation in kinds:
        return True
    return any(_admits(arg, kinds) for arg in get_args(annotation))


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


@dataclass
class Spec:
    """A validated spec with its catalog resolved; the input to ``polyfleet.plan``."""

    model: SpecModel
    catalog: Catalog
    file: str = "<spec>"
    lines: dict[tuple[Any, ...], int] = field(default_factory=dict, repr=False)
    calibration: Calibration | None = None
    #: things the spec asks for that look wrong but are planned as given (``spec_checks``)
    warnings: list[str] = field(default_factory=list)

    @property
    def workloads(self) -> list[InferenceWorkload | TrainingWorkload | ApiWorkload]:
        return list(self.model.workloads)

    @property
    def policy(self) -> Policy:
        return self.model.policy

    @property
    def horizon_months(self) -> float:
        return self.model.horizon_months

    def card(self, workload: InferenceWorkload | TrainingWorkload) -> ModelCard:
        """The model card a workload names (inline cards are returned as given)."""
        if isinstance(workload.model, ModelCard):
            return workload.model
        return self.catalog.models[workload.model]

    def error(self, message: str, *path: Any) -> SpecError:
        """A SpecError pointing at ``path`` in this spec's file."""
        return SpecError(message, file=self.file, line=line_of(self.lines, path), path=dotted(path))


# --- validation errors -> one line --------------------------------------------------------

_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "accelerators": Accelerator,
    "offers": Offer,
    "api_offers": ApiOffer,
    "models": ModelCard,
    "egress": Egress,
}
_KIND_MODELS: dict[str, type[BaseModel]] = {
    "inference": InferenceWorkload,
    "training": TrainingWorkload,
    "api": ApiWorkload,
}


def _model_at(data: Any, path: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``path`` (for did-you-mean)."""
    if not path:
        return SpecModel
    head = path[0]
    if head == "risk":
        return RiskAssumptions if len(path) == 1 else None
    if head == "policy":
        caps = path[1:2] in (("max_share",), ("max_spend_share",))
        return {1: Policy, 2: MaxShare if caps else None}.get(len(path))
    if head in _SECTION_MODELS and len(path) == 2:
        return _SECTION_MODELS[head]
    if head == "workloads" and len(path) >= 2:
        try:
            kind = data["workloads"][path[1]].get("kind")
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
        if len(path) == 2:
            return _KIND_MODELS.get(kind) if isinstance(kind, str) else None  # kind: [] is no kind
        rest = path[2:]
        if rest == ("slo",):
            return Slo
        if rest == ("model",):
            return ModelCard
        if len(rest) == 2 and rest[0] == "throughput":
            return Throughput
        if len(rest) == 2 and rest[0] == "lengths":
            return LengthBucket
    return None


def _check_bools(data: Any, file: str, lines: dict) -> None:
    """``requests_per_s: true`` is a mistake, not 1: a number field never takes true/false.

    Pydantic reads a bool as 0/1 for number fields; this walk finds every bool whose
    field (by the models that validate each mapping) admits no bool.
    """
    stack: list[tuple[Any, tuple[Any, ...]]] = [(data, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            stack.extend((v, (*path, k)) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*path, i)) for i, v in enumerate(node))
        elif isinstance(node, bool) and path:
            key_at = len(path) - 2 if isinstance(path[-1], int) else len(path) - 1
            model = _model_at(data, path[:key_at]) if key_at >= 0 else None
            field_info = model.model_fields.get(str(path[key_at])) if model else None
            if (
                field_info is not None
                and _admits(field_info.annotation, (int, float))
                and not _admits(field_info.annotation, (bool,))
            ):
                raise SpecError(
                    f"expected a number, got {str(node).lower()}",
                    file=file,
                    line=line_of(lines, path),
                    path=dotted(path),
                )


def _walk(data: Any, loc: tuple[Any, ...], kind: str) -> tuple[tuple[Any, ...], Any]:
    """Follow a pydantic error location through the raw data, dropping union tags."""
    path: list[Any] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif last and isinstance(node, dict) and kind in ("missing", "extra_forbidden"):
            path.append(part)
            node = None
        # else: a union tag such as 'inference' or 'str'; skip it
    return tuple(path), node


def _translate(exc: ValidationError, data: Any, file: str, lines: dict) -> SpecError:
    """The most useful single error of a pydantic ValidationError."""
    errors = exc.errors()
    # Prefer errors that are not about union branches the user did not mean.
    errors.sort(
        key=lambda e: (
            "str" in e["loc"] or "function-after" in e["type"],  # a union branch not meant
            e["type"] != "extra_forbidden",  # a misspelt key explains the "missing" one
            len(e["loc"]),
        )
    )
    err = errors[0]
    path, value = _walk(data, tuple(err["loc"]), err["type"])
    kind = err["type"]
    if kind == "extra_forbidden":
        model = _model_at(data, path[:-1])
        hint = did_you_mean(str(path[-1]), model.model_fields) if model else ""
        allowed = f"; expected one of: {', '.join(model.model_fields)}" if model and not hint else ""
        message = f"unknown field {path[-1]!r}{hint}{allowed}"
    elif kind == "missing":
        message = "required field is missing"
        if path and path[-1] in ("input_tokens", "output_tokens"):
            message += " (or give a lengths histogram)"
    elif kind == "union_tag_invalid" or kind == "union_tag_not_found":
        message = "expected kind: inference, training or api"
        path = (*path, "kind")
    else:
        message = err["msg"].replace("Value error, ", "")
        if value is not None and not isinstance(value, dict | list):
            message += f" (got {value!r})"
    return SpecError(message, file=file, line=line_of(lines, path), path=dotted(path))


# --- resolving references ---------------------------------------------------------------


def _inline_catalog(model: SpecModel) -> Catalog:
    return Catalog(
        accelerators={a.id: a for a in model.accelerators},
        offers={o.id: o for o in model.offers},
        api_offers={a.id: a for a in model.api_offers},
        models={m.name: m for m in model.models},
        egress={e.provider: e for e in model.egress},
    )


def _base_catalog(model: SpecModel, spec_dir: Path, spec: Spec) -> Catalog:
    entries = catalog_entries(model.catalog)  # a list, a word, or {use, max_age_days}
    if entries == "none":
        return Catalog()
    if entries == "bundled":
        return load_bundled()
    catalog = Catalog()
    for index, entry in enumerate(entries):
        if entry == "bundled":
            catalog = catalog.merged(load_bundled())
            continue
        if entry.startswith("skypilot:"):  # a SkyPilot catalog folder; list it after bundled
            folder = Path(entry.removeprefix("skypilot:"))
            folder = folder if folder.is_absolute() else spec_dir / folder
            if not folder.is_dir():
                raise spec.error(f"SkyPilot catalog folder not found: {folder}", "catalog", index)
            catalog = catalog.merged(load_skypilot_catalog(folder, catalog.accelerators))
            continue
        path = Path(entry) if Path(entry).is_absolute() else spec_dir / entry
        if not path.exists():
            raise spec.error(f"catalog file not found: {path}", "catalog", index)
        catalog = catalog.merged(load_catalog_file(path))
    return catalog


def build_spec(
    data: Any, *, file: str = "<spec>", lines: dict | None = None, base_dir: Path | None = None
) -> Spec:
    """Validate a parsed spec document and resolve its catalog."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise SpecError("expected a mapping with a 'workloads' list", file=file, line=1)
    _check_bools(data, file, lines)
    try:
        model = SpecModel.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, data, file, lines) from None
    from polyfleet.spec_checks import (  # uses Spec
        check_duplicates,
        check_periods,
        check_references,
        throughput_warnings,
    )

    spec = Spec(model=model, catalog=Catalog(), file=file, lines=lines)
    check_duplicates(spec)
    spec.catalog = _base_catalog(model, base_dir or Path.cwd(), spec).merged(_inline_catalog(model))
    spec.catalog = without_retired(spec.catalog, date.today())  # never planned; named by check_references
    check_references(spec)
    check_periods(spec)
    spec.warnings.extend(throughput_warnings(spec))
    if model.calibration == "bundled":
        with resources.as_file(resources.files("polyfleet.perf") / "data" / "calibration.yaml") as bundled:
            spec.calibration = load_calibration(bundled)
    elif model.calibration is not None:
        path = Path(model.calibration)
        path = path if path.is_absolute() else (base_dir or Path.cwd()) / path
        if not path.exists():
            raise spec.error(f"calibration file not found: {path}", "calibration")
        spec.calibration = load_calibration(path)
        for key in spec.calibration.accelerators:  # a fit for no known chip would silently do nothing
            if key not in spec.catalog.accelerators:
                raise spec.error(
                    f"{path.name}: unknown accelerator {key!r}{did_you_mean(key, spec.catalog.accelerators)}",
                    "calibration",
                )
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a fleet spec file; raises ``SpecError`` on bad input."""
    path = Path(path)
    data, lines = read_yaml(path)
    return build_spec(data, file=str(path), lines=lines, base_dir=path.parent)
