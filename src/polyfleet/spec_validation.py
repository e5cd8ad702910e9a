"""Pydantic validation errors turned into one line naming the file, YAML line and field.

``check_bools`` refuses ``true``/``false`` in number fields (pydantic would read 1/0);
``translate`` picks the most useful error of a ``ValidationError`` and says what is
accepted, with a did-you-mean for misspelt keys.
"""

from __future__ import annotations

from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from polyfleet.catalog.models import Accelerator, ApiOffer, Egress, ModelCard, Offer
from polyfleet.errors import SpecError, did_you_mean
from polyfleet.risk.assumptions import RiskAssumptions
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
)
from polyfleet.yamlio import dotted, line_of


def _admits(annotation: Any, kinds: tuple[type, ...]) -> bool:
    """Whether a field's type admits one of ``kinds`` (itself, or in a union or container)."""
    if annotation in kinds:
        return True
    return any(_admits(arg, kinds) for arg in get_args(annotation))


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


def check_bools(data: Any, file: str, lines: dict) -> None:
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


def translate(exc: ValidationError, data: Any, file: str, lines: dict) -> SpecError:
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
