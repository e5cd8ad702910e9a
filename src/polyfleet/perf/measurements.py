"""Measured throughput points: reading and validating a measurements CSV.

Columns: ``model, weight_dtype, accelerator, tensor_parallel, input_tokens, output_tokens,
output_tokens_per_s_whole_tp_group[, tpot_ms][, batch], source`` (the published points'
format).  ``batch`` is the batch the point was measured at when the source states one
(static-batch runs such as Intel's Gaudi tables); the model then predicts at that batch
instead of the largest that fits.
Names are matched to the catalog leniently (case, ``org/`` prefixes, ``-Instruct``).

A ``.jsonl`` file (what ``bench/gpu_measure.py`` writes) holds one JSON object per line
with the same keys, plus ``kind``: "throughput" (the default: a serving run, as in the
CSV), "decode" (one decode step of ``batch`` requests at ``input_tokens`` of context:
``output_tokens_per_s_whole_tp_group = batch / step seconds``) or "prefill" (one prompt
of ``input_tokens``: ``output_tokens_per_s_whole_tp_group = input_tokens / seconds``,
prompt tokens per second).  Lines whose ``kind`` is anything else (the harness's own
bookkeeping) are skipped.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyfleet.catalog.io import Catalog, load_bundled
from polyfleet.catalog.models import BYTES_PER_DTYPE
from polyfleet.errors import SpecError, did_you_mean
from polyfleet.perf.defaults import (
    MAX_TENSOR_PARALLEL,
)
from polyfleet.yamlio import loads_json, read_input

REQUIRED_COLUMNS = (
    "model",
    "weight_dtype",
    "accelerator",
    "tensor_parallel",
    "input_tokens",
    "output_tokens",
    "output_tokens_per_s_whole_tp_group",
)
"""Columns a measurements CSV must have; ``tpot_ms``, ``batch`` and ``source`` are optional."""


@dataclass(frozen=True)
class Measurement:
    """One measured point; ``model`` and ``accelerator`` are catalog names.

    ``output_tokens_per_s`` is for the whole tensor-parallel group; ``tpot_ms`` is the
    TPOT target it was measured at (None: offline max throughput).
    """

    model: str
    dtype: str
    accelerator: str
    tensor_parallel: int
    input_tokens: int
    output_tokens: int
    output_tokens_per_s: float
    tpot_ms: float | None = None
    batch: int | None = None
    source: str = ""
    kind: str = "throughput"
    line: int | None = field(default=None, compare=False)


# -- reading measurements --------------------------------------------------------------------


def _norm(name: str) -> str:
    return re.sub(r"[\s_]+", "-", name.strip().lower())


def _model_aliases(name: str) -> list[str]:
    """Candidate catalog names for a published model name, most literal first."""
    base = _norm(name)
    out = [base]
    base = base.rsplit("/", 1)[-1]  # meta-llama/Llama-3.1-8B
    out.append(base)
    for prefix in ("meta-",):
        if base.startswith(prefix):
            base = base[len(prefix) :]
            out.append(base)
    for suffix in ("-instruct", "-chat", "-it", "-hf"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            out.append(base)
    return out


def resolve_model(name: str, catalog: Catalog) -> str | None:
    """Catalog model name for ``name`` (case-insensitive, common aliases), or None."""
    lower = {k.lower(): k for k in catalog.models}
    for alias in _model_aliases(name):
        if alias in lower:
            return lower[alias]
    return None


def resolve_accelerator(name: str, catalog: Catalog) -> str | None:
    """Catalog accelerator id for ``name`` (case-insensitive; vendor prefix optional), or None."""
    key = _norm(name)
    lower = {k.lower(): k for k in catalog.accelerators}
    if key in lower:
        return lower[key]
    bare = [k for k in catalog.accelerators if k.lower().split("-", 1)[-1] == key]
    return bare[0] if len(bare) == 1 else None


def read_measurements(path: Path, catalog: Catalog | None = None) -> list[Measurement]:
    """Measurements from a CSV; any bad row raises one-line ``SpecError`` (file, line, column)."""
    catalog = catalog or load_bundled()
    file = str(path)
    try:  # read_input: a pipe or device (/dev/zero) is refused, not a hang or a MemoryError
        text = read_input(path, "measurements").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"cannot read measurements: not UTF-8 text (byte {exc.start})", file=file) from exc
    if Path(path).suffix.lower() == ".jsonl":
        return _read_jsonl(text, catalog, file)
    reader = csv.DictReader(text.splitlines())
    try:
        header = [h.strip() for h in (reader.fieldnames or [])]
    except csv.Error as exc:  # a header cell past the field limit
        raise SpecError(f"malformed CSV: {exc}", file=file, line=1) from None
    if not header:
        raise SpecError("empty measurements file: expected a CSV header", file=file, line=1)
    reader.fieldnames = header
    for col in REQUIRED_COLUMNS:
        if col not in header:
            raise SpecError(
                f"missing column{did_you_mean(col, header) or ''}; need {', '.join(REQUIRED_COLUMNS)}",
                file=file,
                line=1,
                path=col,
            )
    out: list[Measurement] = []
    try:
        for rec in reader:
            out.append(_measurement(rec, catalog, file, reader.line_num))
    except csv.Error as exc:
        raise SpecError(f"malformed CSV: {exc}", file=file, line=reader.line_num + 1) from exc
    if not out:
        raise SpecError("no measurements: the CSV has a header but no rows", file=file, line=1)
    return out


KINDS = ("throughput", "decode", "prefill")
"""Measurement kinds a JSONL line may have (see the module docstring)."""


def _read_jsonl(text: str, catalog: Catalog, file: str) -> list[Measurement]:
    """Measurements from JSONL text: one object per line, the CSV's keys plus ``kind``."""
    out: list[Measurement] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rec = loads_json(raw, file, number)
        except json.JSONDecodeError as exc:
            raise SpecError(f"not a JSON object: {exc.msg}", file=file, line=number) from exc
        if not isinstance(rec, dict):
            raise SpecError("expected a JSON object per line", file=file, line=number)
        kind = str(rec.get("kind", "throughput"))
        if kind not in KINDS:
            continue
        missing = [c for c in REQUIRED_COLUMNS if c not in rec]
        if missing:
            need = ", ".join(REQUIRED_COLUMNS)
            raise SpecError(f"missing key; need {need}", file=file, line=number, path=missing[0])
        cells = {k: "" if v is None else str(v) for k, v in rec.items()}
        out.append(_measurement(cells, catalog, file, number, kind=kind))
    if not out:
        raise SpecError("no measurements: no line of kind throughput, decode or prefill", file=file, line=1)
    return out


def _measurement(
    rec: dict[str | Any, Any], catalog: Catalog, file: str, line: int, kind: str = "throughput"
) -> Measurement:
    def cell(col: str) -> str:
        value = rec.get(col)
        return "" if value is None else str(value).strip()

    def fail(col: str, msg: str) -> SpecError:
        return SpecError(msg, file=file, line=line, path=col)

    def required(col: str) -> str:
        value = cell(col)
        if not value:
            raise fail(col, "missing value")
        return value

    def integer(col: str, lo: int) -> int:
        raw = required(col)
        try:
            value = int(raw)
        except ValueError:
            raise fail(col, f"expected an integer, got {raw!r}") from None
        if value < lo:
            raise fail(col, f"must be >= {lo}, got {value}")
        return value

    def positive(col: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise fail(col, f"expected a number, got {raw!r}") from None
        if not math.isfinite(value) or value <= 0:
            raise fail(col, f"must be a positive number, got {raw}")
        return value

    raw_model = required("model")
    model = resolve_model(raw_model, catalog)
    if model is None:
        hint = did_you_mean(_model_aliases(raw_model)[-1], sorted(catalog.models))
        raise fail("model", f"unknown model {raw_model!r}{hint}")
    dtype = required("weight_dtype").lower()
    if dtype not in BYTES_PER_DTYPE:
        raise fail("weight_dtype", f"unknown dtype {dtype!r}; expected one of {', '.join(BYTES_PER_DTYPE)}")
    raw_acc = required("accelerator")
    acc = resolve_accelerator(raw_acc, catalog)
    if acc is None:
        hint = did_you_mean(_norm(raw_acc), sorted(catalog.accelerators))
        raise fail("accelerator", f"unknown accelerator {raw_acc!r}{hint}")
    tp = integer("tensor_parallel", 1)
    if tp & (tp - 1) or tp > MAX_TENSOR_PARALLEL:
        raise fail("tensor_parallel", f"must be a power of two <= {MAX_TENSOR_PARALLEL}, got {tp}")
    inp = integer("input_tokens", 0)
    out = integer("output_tokens", 1)
    rate_col = "output_tokens_per_s_whole_tp_group"
    rate = positive(rate_col, required(rate_col))
    tpot = cell("tpot_ms")
    batch = integer("batch", 1) if cell("batch") else None
    return Measurement(
        model=model,
        dtype=dtype,
        accelerator=acc,
        tensor_parallel=tp,
        input_tokens=inp,
        output_tokens=out,
        output_tokens_per_s=rate,
        tpot_ms=positive("tpot_ms", tpot) if tpot else None,
        batch=batch,
        source=cell("source"),
        kind=kind,
        line=line,
    )
