"""Fit per-accelerator compute and memory efficiencies of the inference model to measurements.

The inference model (``polyfleet.perf.inference``) has two free factors per accelerator
and software stack: ``compute_efficiency`` (achieved fraction of dense peak FLOP/s) and
``memory_efficiency`` (achieved fraction of peak HBM bandwidth).  Their defaults and
sources are in ``polyfleet.perf.defaults``.  This module fits them to measured points::

    measurements = read_measurements(Path("measured.csv"))
    cal = fit(measurements, load_bundled(), fitted_at="2025-06-01", source="measured.csv")
    text = dump_yaml(cal)                  # the CLI writes it; a spec can name the file
    cal = load_calibration(Path("calibration.yaml"))

Measurements CSV (the format of ``published_throughput.csv``), one row per point::

    model,weight_dtype,accelerator,tensor_parallel,input_tokens,output_tokens,
    output_tokens_per_s_whole_tp_group[,tpot_ms],source

Other columns (e.g. ``scenario``) are ignored.  An empty ``tpot_ms`` means offline max
throughput (no latency target); otherwise the point was measured at that TPOT target.

Prediction of one point forces the replica to the measured tensor-parallel degree ``tp``
exactly as ``bench/perf_validation.py`` does: ``max_chips=tp`` and a ``min_batch`` just
larger than what ``tp/2`` chips can hold (``min_batch`` only sizes the group; the batch
is still the memory- or TPOT-limited maximum).  Group tokens/s is
``output_tokens_per_s_per_chip * tp``.

Fit, per accelerator with at least ``MIN_POINTS`` usable points: minimise
``sum(log(predicted / measured)^2)`` over ``(compute, memory)`` in ``[EFF_MIN, 1]``,
searched in log space: a fixed grid, then bounded Nelder-Mead from the best grid point
(deterministic).  A tiny ridge toward the defaults (``RIDGE``) only breaks ties along
directions the data cannot see (e.g. compute when every point is memory-bound).  Points
the model cannot place at all (the weights do not fit ``tp`` chips, or the catalog lacks
data) are left out of the fit and the error figures.  Accelerators with fewer points
keep their defaults.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.optimize import minimize

from polyfleet.catalog.io import Catalog
from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.errors import SpecError, did_you_mean
from polyfleet.perf.defaults import (
    COMPUTE_EFFICIENCY,
    HBM_UTILISATION,
    MEMORY_EFFICIENCY,
    efficiency_for,
)
from polyfleet.perf.inference import InferencePerf, inference_perf
from polyfleet.perf.measurements import Measurement, read_measurements, resolve_accelerator, resolve_model
from polyfleet.yamlio import line_of, read_yaml

__all__ = [
    "EFF_MIN",
    "AcceleratorFit",
    "Calibration",
    "Efficiency",
    "Measurement",
    "dump_yaml",
    "fit",
    "load_calibration",
    "predict",
    "predict_perf",
    "read_measurements",
    "resolve_accelerator",
    "resolve_model",
]

EFF_MIN = 0.05
"""Lower bound of a fitted efficiency (the upper bound is 1)."""

MIN_POINTS = 2
"""Usable points an accelerator needs before its efficiencies are fitted."""

RIDGE = 1e-6
"""Weight of ``log(eff / default)^2`` added to the objective to break ties."""

GRID = 13
"""Grid points per dimension (log-spaced over ``[EFF_MIN, 1]``) before refinement."""

FORMAT_VERSION = 1
"""``polyfleet_calibration`` value written to and required in calibration files."""


@dataclass(frozen=True)
class Efficiency:
    """Achieved fractions of peak: ``compute`` of dense FLOP/s, ``memory`` of HBM bandwidth."""

    compute: float
    memory: float

    @classmethod
    def default(cls, accelerator: str | None = None) -> Efficiency:
        """The defaults of ``polyfleet.perf.defaults``: the accelerator's own where it has
        one (``EFFICIENCY_BY_ACCELERATOR``), else the global ones."""
        if accelerator is None:
            return cls(compute=COMPUTE_EFFICIENCY, memory=MEMORY_EFFICIENCY)
        compute, memory = efficiency_for(accelerator)
        return cls(compute=compute, memory=memory)

    def kwargs(self) -> dict[str, float]:
        """Keyword arguments for ``inference_perf``."""
        return {"compute_efficiency": self.compute, "memory_efficiency": self.memory}


@dataclass(frozen=True)
class AcceleratorFit:
    """One accelerator's result: efficiencies, points used and median |error| in percent.

    ``fitted`` is False when it had fewer than ``MIN_POINTS`` points; ``efficiency`` is
    then the default it kept and ``error_after_pct == error_before_pct``.
    ``residuals_pct``: each point it came from (``model dtype TPn in/out``, with the batch
    and kind where given) -> signed error after the fit, percent.
    """

    efficiency: Efficiency
    n_points: int
    error_before_pct: float
    error_after_pct: float
    fitted: bool
    residuals_pct: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Calibration:
    """Fitted efficiencies per accelerator id, with where and when they came from.

    Errors are median absolute percentage errors of predicted vs measured group tokens/s
    over all usable points, with the defaults (``before``) and the calibration (``after``).
    """

    accelerators: dict[str, AcceleratorFit]
    source: str
    fitted_at: str
    n_points: int
    error_before_pct: float
    error_after_pct: float
    n_skipped: int = 0

    @property
    def efficiencies(self) -> dict[str, Efficiency]:
        """accelerator id -> fitted ``Efficiency`` (accelerators that kept defaults left out)."""
        return {k: v.efficiency for k, v in self.accelerators.items() if v.fitted}

    def kwargs(self, accelerator: str) -> dict[str, float]:
        """``inference_perf`` keyword arguments for ``accelerator``: its fitted efficiencies, or
        nothing when it was not fitted (a calibration never changes other accelerators)."""
        fit_ = self.accelerators.get(accelerator)
        return fit_.efficiency.kwargs() if fit_ is not None and fit_.fitted else {}

    def efficiency(self, accelerator: str, default: Efficiency | None = None) -> Efficiency:
        """The fitted efficiency of ``accelerator``, else ``default`` (its defaults)."""
        fit_ = self.accelerators.get(accelerator)
        if fit_ is not None and fit_.fitted:
            return fit_.efficiency
        return default or Efficiency.default(accelerator)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for YAML: numbers, strings, bools and nested dicts only."""
        return {
            "polyfleet_calibration": FORMAT_VERSION,
            "source": self.source,
            "fitted_at": self.fitted_at,
            "n_points": self.n_points,
            "n_skipped": self.n_skipped,
            "median_abs_error_pct_before": self.error_before_pct,
            "median_abs_error_pct_after": self.error_after_pct,
            "accelerators": {
                acc: {
                    "compute_efficiency": f.efficiency.compute,
                    "memory_efficiency": f.efficiency.memory,
                    "fitted": f.fitted,
                    "n_points": f.n_points,
                    "median_abs_error_pct_before": f.error_before_pct,
                    "median_abs_error_pct_after": f.error_after_pct,
                    "residuals_pct": dict(f.residuals_pct),
                }
                for acc, f in self.accelerators.items()
            },
        }

    @classmethod
    def from_dict(
        cls, data: Any, *, file: str = "", lines: Mapping[tuple[Any, ...], int] | None = None
    ) -> Calibration:
        """Inverse of ``to_dict``; bad data raises ``SpecError`` naming the field (and line)."""
        lines = lines or {}

        def fail(msg: str, path: tuple[Any, ...]) -> SpecError:
            dotted = ".".join(str(p) for p in path)
            return SpecError(msg, file=file, line=line_of(dict(lines), path), path=dotted)

        def number(obj: Mapping[str, Any], key: str, path: tuple[Any, ...], lo: float, hi: float) -> float:
            if key not in obj:
                raise fail(f"missing {key!r}", path)
            value = obj[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise fail(f"expected a number, got {value!r}", (*path, key))
            if not lo <= value <= hi:
                raise fail(f"must be in [{lo:g}, {hi:g}], got {value!r}", (*path, key))
            return float(value)

        def integer(
            obj: Mapping[str, Any], key: str, path: tuple[Any, ...], default: int | None = None
        ) -> int:
            value = obj.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise fail(f"expected a non-negative integer, got {value!r}", (*path, key))
            return value

        if not isinstance(data, dict):
            raise fail("expected a mapping with 'polyfleet_calibration' and 'accelerators'", ())
        version = data.get("polyfleet_calibration")
        if version != FORMAT_VERSION:
            raise fail(
                f"not a polyfleet calibration file (need polyfleet_calibration: {FORMAT_VERSION}, "
                f"got {version!r})",
                ("polyfleet_calibration",),
            )
        known = {
            "polyfleet_calibration", "source", "fitted_at", "n_points", "n_skipped",
            "median_abs_error_pct_before", "median_abs_error_pct_after", "accelerators",
        }  # fmt: skip
        for key in data:
            if key not in known:
                raise fail(f"unknown key{did_you_mean(str(key), sorted(known))}", (key,))
        accs = data.get("accelerators")
        if not isinstance(accs, dict):
            raise fail("expected a mapping of accelerator id -> efficiencies", ("accelerators",))
        out: dict[str, AcceleratorFit] = {}
        acc_keys = {
            "compute_efficiency", "memory_efficiency", "fitted", "n_points",
            "median_abs_error_pct_before", "median_abs_error_pct_after", "residuals_pct",
        }  # fmt: skip
        for acc, entry in accs.items():
            path = ("accelerators", acc)
            if not isinstance(entry, dict):
                raise fail("expected a mapping with compute_efficiency and memory_efficiency", path)
            for key in entry:
                if key not in acc_keys:
                    raise fail(f"unknown key{did_you_mean(str(key), sorted(acc_keys))}", (*path, key))
            fitted = entry.get("fitted", True)
            if not isinstance(fitted, bool):
                raise fail(f"expected true or false, got {fitted!r}", (*path, "fitted"))
            out[str(acc)] = AcceleratorFit(
                efficiency=Efficiency(
                    compute=_positive_eff(number(entry, "compute_efficiency", path, 0.0, 1.0), fail, path),
                    memory=_positive_eff(number(entry, "memory_efficiency", path, 0.0, 1.0), fail, path),
                ),
                n_points=integer(entry, "n_points", path, 0),
                error_before_pct=_opt_pct(entry, "median_abs_error_pct_before", path, number),
                error_after_pct=_opt_pct(entry, "median_abs_error_pct_after", path, number),
                fitted=fitted,
                residuals_pct=_residuals(entry.get("residuals_pct", {}), fail, (*path, "residuals_pct")),
            )
        for key in ("source", "fitted_at"):
            if not isinstance(data.get(key, ""), str):
                raise fail(f"expected a string, got {data[key]!r}", (key,))
        return cls(
            accelerators=out,
            source=data.get("source", ""),
            fitted_at=data.get("fitted_at", ""),
            n_points=integer(data, "n_points", (), 0),
            error_before_pct=_opt_pct(data, "median_abs_error_pct_before", (), number),
            error_after_pct=_opt_pct(data, "median_abs_error_pct_after", (), number),
            n_skipped=integer(data, "n_skipped", (), 0),
        )


def _residuals(value: Any, fail: Callable[..., SpecError], path: tuple[Any, ...]) -> dict[str, float]:
    if not isinstance(value, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value.values()
    ):
        raise fail("expected a mapping of point -> signed error in percent", path)
    return {str(k): float(v) for k, v in value.items()}


def _point_label(m: Measurement) -> str:
    """``llama-3.1-8b fp8 TP1 128/128`` (+ `` b256`` and `` decode``/`` prefill`` where given)."""
    label = f"{m.model} {m.dtype} TP{m.tensor_parallel} {m.input_tokens}/{m.output_tokens}"
    label += f" b{m.batch}" if m.batch else ""
    return label + ("" if m.kind == "throughput" else f" {m.kind}")


def _positive_eff(value: float, fail: Callable[..., SpecError], path: tuple[Any, ...]) -> float:
    if value <= 0:
        raise fail("efficiencies must be in (0, 1]", path)
    return value


def _opt_pct(obj: Mapping[str, Any], key: str, path: tuple[Any, ...], number: Callable[..., float]) -> float:
    if key not in obj:
        return math.nan
    return number(obj, key, path, 0.0, math.inf)


# -- prediction ------------------------------------------------------------------------------


def forced_min_batch(
    card: ModelCard, acc: Accelerator, tp: int, input_tokens: int, output_tokens: int
) -> int:
    """``min_batch`` just above what ``tp/2`` chips hold, so the smallest group that fits is ``tp``."""
    kv = card.kv_bytes_per_token or 0.0
    if tp <= 1 or kv <= 0:
        return 1
    half = (tp // 2) * acc.hbm_gb * 1e9 * HBM_UTILISATION
    return max(1, int((half - card.weight_bytes) // ((input_tokens + output_tokens) * kv)) + 1)


def predict_perf(
    card: ModelCard, acc: Accelerator, m: Measurement, eff: Efficiency | None, **extra: Any
) -> tuple[float | None, InferencePerf]:
    """Predicted group tokens/s for ``m`` (None when infeasible) and the perf result.

    ``card`` is the catalog card; it is set to ``m.dtype`` here.  ``extra`` keyword
    arguments go through to ``inference_perf`` (e.g. ``step_overhead_s_per_layer``).
    ``eff`` None: the model's own defaults (with their per-precision scale).
    """
    if card.dtype != m.dtype:
        card = card.model_copy(update={"dtype": m.dtype})
    tp = m.tensor_parallel
    if m.kind in ("decode", "prefill"):  # one step at a fixed batch (bench/gpu_measure.py)
        perf = inference_perf(
            card, acc, input_tokens=m.input_tokens, output_tokens=1, tensor_parallel=tp,
            batch=m.batch or 1, **(eff.kwargs() if eff is not None else {}), **extra,
        )  # fmt: skip
        if not perf.feasible:
            return None, perf
        if m.kind == "decode":  # context input + 1/2: the step reads the KV of the whole context
            return (m.batch or 1) / (perf.tpot_ms / 1000), perf
        return m.input_tokens / (perf.ttft_ms / 1000), perf
    args: dict[str, Any] = dict(
        input_tokens=m.input_tokens, output_tokens=m.output_tokens, tpot_ms=m.tpot_ms, max_chips=tp,
        max_batch=m.batch, **(eff.kwargs() if eff is not None else {}), **extra,
    )  # fmt: skip
    min_batch = forced_min_batch(card, acc, tp, m.input_tokens, m.output_tokens)
    perf = inference_perf(card, acc, min_batch=min_batch, **args)
    if not perf.feasible and perf.reason.startswith("memory") and min_batch > 1:
        perf = inference_perf(card, acc, **args)
    if not perf.feasible:
        return None, perf
    return perf.output_tokens_per_s_per_chip * tp, perf


def predict(card: ModelCard, acc: Accelerator, m: Measurement, eff: Efficiency) -> float:
    """Predicted output tokens/s of ``m``'s whole tensor-parallel group; 0.0 when infeasible."""
    value, _perf = predict_perf(card, acc, m, eff)
    return value or 0.0


# -- fitting ---------------------------------------------------------------------------------

_FLOOR = 1e-3
"""An infeasible prediction counts as ``_FLOOR * measured`` in the objective."""


def _abs_err_pct(pred: float | None, measured: float) -> float:
    return abs((pred or 0.0) / measured - 1) * 100


def _median_pct(errors: list[float]) -> float:
    return round(statistics.median(errors), 2) if errors else math.nan


def _fit_one(card_acc: list[tuple[ModelCard, Accelerator, Measurement]], start: Efficiency) -> Efficiency:
    """Minimise the sum of squared log errors over (compute, memory) for one accelerator."""
    lo = math.log(EFF_MIN)
    x0 = np.array([math.log(start.compute), math.log(start.memory)])

    def objective(x: np.ndarray) -> float:
        x = np.clip(x, lo, 0.0)
        eff = Efficiency(compute=math.exp(x[0]), memory=math.exp(x[1]))
        total = 0.0
        for card, acc, m in card_acc:
            pred, _ = predict_perf(card, acc, m, eff)
            pred = max(pred or 0.0, _FLOOR * m.output_tokens_per_s)
            total += math.log(pred / m.output_tokens_per_s) ** 2
        return total + RIDGE * float(np.sum((x - x0) ** 2))

    axis = np.linspace(lo, 0.0, GRID)
    best = min(((objective(np.array([c, mm])), c, mm) for c in axis for mm in axis), key=lambda t: t[0])
    res = minimize(
        objective,
        np.array([best[1], best[2]]),
        method="Nelder-Mead",
        bounds=[(lo, 0.0), (lo, 0.0)],
        options={"xatol": 1e-6, "fatol": 1e-12, "maxiter": 2000},
    )
    x = res.x if res.fun <= best[0] else np.array([best[1], best[2]])
    x = np.clip(x, lo, 0.0)
    return Efficiency(
        compute=round(min(1.0, max(EFF_MIN, math.exp(x[0]))), 4),
        memory=round(min(1.0, max(EFF_MIN, math.exp(x[1]))), 4),
    )


def fit(
    measurements: Iterable[Measurement],
    catalog: Catalog,
    *,
    fitted_at: str,
    source: str = "",
    default_for: Callable[[Accelerator], Efficiency] | None = None,
) -> Calibration:
    """Fit efficiencies per accelerator (see the module docstring); no I/O.

    ``default_for`` gives the starting/default efficiency of an accelerator (its
    ``Efficiency.default`` when None): it is what "before" is measured with (when None: the
    model's own defaults, with their per-precision scale) and what accelerators with
    fewer than ``MIN_POINTS`` points keep.
    """
    own_defaults = default_for is None  # "before" is then the model's own defaults (eff None)
    default_for = default_for or (lambda acc: Efficiency.default(acc.id))
    groups: dict[str, list[tuple[ModelCard, Accelerator, Measurement]]] = {}
    skipped = 0
    for m in measurements:
        card = catalog.models.get(m.model)
        acc = catalog.accelerators.get(m.accelerator)
        if card is None or acc is None:
            what = f"model {m.model!r}" if card is None else f"accelerator {m.accelerator!r}"
            raise SpecError(f"{what} is not in the catalog", line=m.line)
        pred, perf = predict_perf(card, acc, m, default_for(acc))
        if pred is None and not perf.reason.startswith("slo"):
            skipped += 1  # no efficiency can place it: weights do not fit, or data missing
            continue
        groups.setdefault(acc.id, []).append((card, acc, m))

    if not groups:
        raise SpecError(f"no usable measurements ({skipped} the model cannot place)", file=source)
    fits: dict[str, AcceleratorFit] = {}
    all_before: list[float] = []
    all_after: list[float] = []
    for acc_id in sorted(groups):
        points = groups[acc_id]
        start = default_for(points[0][1])
        base = None if own_defaults else start
        before = [_abs_err_pct(predict_perf(c, a, m, base)[0], m.output_tokens_per_s) for c, a, m in points]
        fitted = len(points) >= MIN_POINTS
        eff = _fit_one(points, start) if fitted else start
        preds = [predict_perf(c, a, m, eff if fitted else base)[0] for c, a, m in points]
        signed = {
            _point_label(m): round(((p or 0.0) / m.output_tokens_per_s - 1) * 100, 2)
            for p, (_, _, m) in zip(preds, points, strict=True)
        }
        after = (
            [_abs_err_pct(p, m.output_tokens_per_s) for p, (_, _, m) in zip(preds, points, strict=True)]
            if fitted
            else before
        )
        all_before += before
        all_after += after
        fits[acc_id] = AcceleratorFit(
            efficiency=eff,
            n_points=len(points),
            error_before_pct=_median_pct(before),
            error_after_pct=_median_pct(after),
            fitted=fitted,
            residuals_pct=signed,
        )
    return Calibration(
        accelerators=fits,
        source=source,
        fitted_at=fitted_at,
        n_points=len(all_before),
        error_before_pct=_median_pct(all_before),
        error_after_pct=_median_pct(all_after),
        n_skipped=skipped,
    )


# -- files -----------------------------------------------------------------------------------


def dump_yaml(cal: Calibration) -> str:
    """The calibration file's text (the CLI writes it)."""
    header = (
        "# polyfleet calibration: per-accelerator efficiencies of the inference model,\n"
        "# fitted by `polyfleet perf calibrate`.  Errors are median |predicted/measured - 1| in %.\n"
    )
    return header + yaml.safe_dump(cal.to_dict(), sort_keys=False, default_flow_style=False)


def load_calibration(path: Path) -> Calibration:
    """Read a calibration file; bad YAML or fields raise a one-line ``SpecError``."""
    data, lines = read_yaml(Path(path), "calibration file")
    return Calibration.from_dict(data, file=str(path), lines=lines)
