"""The fleet spec: what an organisation must run and what it may buy.

``load_spec(path)`` reads YAML, validates it against the pydantic models of
``spec_document.py`` (re-exported here), merges the inline catalog entries over the
bundled catalog, and checks every reference.  Every problem becomes a one-line
``SpecError`` naming ``file:line``, the field path and what was expected
(``spec_validation.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from polyfleet.catalog.io import Catalog, load_bundled, load_catalog_file
from polyfleet.catalog.lifecycle import without_retired
from polyfleet.catalog.models import ModelCard
from polyfleet.catalog.settings import catalog_entries
from polyfleet.catalog.skypilot import load_skypilot_catalog
from polyfleet.errors import SpecError, did_you_mean
from polyfleet.perf.calibration import Calibration, load_calibration
from polyfleet.spec_document import (
    ApiWorkload,
    InferenceWorkload,
    LengthBucket,
    MaxShare,
    Policy,
    Slo,
    SpecModel,
    Throughput,
    TrainingWorkload,
    Workload,
)
from polyfleet.spec_validation import check_bools, translate
from polyfleet.yamlio import dotted, line_of, read_yaml

__all__ = [
    "ApiWorkload",
    "InferenceWorkload",
    "LengthBucket",
    "MaxShare",
    "Policy",
    "Slo",
    "Spec",
    "SpecModel",
    "Throughput",
    "TrainingWorkload",
    "Workload",
    "build_spec",
    "load_spec",
]


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
        if not entry.removeprefix("skypilot:").strip():  # '' or 'skypilot:' would read the spec's folder
            raise spec.error(
                f"expected bundled, skypilot:DIR or a catalog file, got {entry!r}", "catalog", index
            )
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
    check_bools(data, file, lines)
    try:
        model = SpecModel.model_validate(data)
    except ValidationError as exc:
        raise translate(exc, data, file, lines) from None
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
