"""Which compute precision a model runs at on a chip, and that precision's peak.

A model card gives the *weight* precision (``dtype``) and optionally the KV-cache one
(``kv_dtype``).  The GEMMs run at an *activation* (compute) precision::

    weights fp8 / int8 / fp6 / fp4  ->  the same (W8A8, W4A4 / NVFP4, ...)
    weights bf16 / fp16 / fp32      ->  bf16
    weights int4                    ->  bf16 (weight-only W4A16: AWQ, GPTQ)

or the one the caller names (``activation_dtype``).  A precision is used only where the
chip publishes its peak.  When it does not, there is never a silent fallback to another
precision's peak; either the result says which conversion it made::

    fp4 / fp6 activations, no FP4/FP6 peak  ->  fp8 peak, "weight-only fp4: computed at fp8"
                                                (bf16 when the chip has no FP8 either)
    fp8 / int8 activations, no such peak    ->  bf16 peak, "weight-only fp8: computed at bf16"

or, for bf16 on a chip that publishes no BF16 peak (Maia 200 publishes FP8 and FP4
only), ``PrecisionError``: nothing in the data says what such a chip does at bf16.

Peaks are read from the accelerator record's ``bf16_tflops``, ``fp8_tflops``,
``fp6_tflops``, ``fp4_tflops`` and ``int8_tops`` fields (``getattr``: a catalog without
the newer columns has them as missing).
"""

from __future__ import annotations

from dataclasses import dataclass

from polyfleet.catalog.models import Accelerator

PEAK_FIELD: dict[str, str] = {
    "bf16": "bf16_tflops",
    "fp16": "bf16_tflops",
    "fp8": "fp8_tflops",
    "int8": "int8_tops",
    "fp6": "fp6_tflops",
    "fp4": "fp4_tflops",
}
"""Accelerator field holding the dense peak of each compute precision."""

DEFAULT_ACTIVATION: dict[str, str] = {
    "fp32": "bf16",
    "bf16": "bf16",
    "fp16": "fp16",
    "fp8": "fp8",
    "int8": "int8",
    "fp6": "fp6",
    "fp4": "fp4",
    "int4": "bf16",
}
"""Compute precision of each weight dtype when the caller names none."""

_CONVERSION: dict[str, tuple[str, ...]] = {
    "fp4": ("fp8", "bf16"),
    "fp6": ("fp8", "bf16"),
    "fp8": ("bf16",),
    "int8": ("bf16",),
}
"""Stated conversions, in order, when the chip lacks a precision's peak (weight-only
quantisation: low-precision weights dequantised to a precision the chip has)."""


class PrecisionError(ValueError):
    """The chip publishes no peak for the precision asked and no stated conversion applies."""


@dataclass(frozen=True)
class ComputePeak:
    """The precision GEMMs run at on one chip, its dense peak, and any conversion made."""

    dtype: str
    tflops: float
    note: str = ""


def peak_of(acc: Accelerator, dtype: str) -> float | None:
    """The chip's published dense peak for one compute precision, TFLOP/s (None: not published)."""
    field = PEAK_FIELD.get(dtype)
    if field is None:
        return None
    value = getattr(acc, field, None)
    return float(value) if value else None


def compute_peak(acc: Accelerator, weight_dtype: str, activation_dtype: str | None = None) -> ComputePeak:
    """The compute precision and peak of weights ``weight_dtype`` on ``acc``.

    ``activation_dtype`` overrides the default compute precision of the weights (see the
    module docstring).  Raises ``PrecisionError`` when neither the precision nor a stated
    conversion has a published peak on the chip.
    """
    want = activation_dtype or DEFAULT_ACTIVATION.get(weight_dtype, weight_dtype)
    if want not in PEAK_FIELD:
        raise PrecisionError(f"no compute precision {want!r} (accepted: {', '.join(PEAK_FIELD)})")
    value = peak_of(acc, want)
    if value is not None:
        return ComputePeak(want, value)
    for other in _CONVERSION.get(want, ()):
        value = peak_of(acc, other)
        if value is not None:
            return ComputePeak(
                other,
                value,
                f"{acc.id} publishes no {want.upper()} peak: weight-only {weight_dtype}, computed at {other}",
            )
    raise PrecisionError(
        f"{acc.id} publishes no {want.upper()} peak"
        + (" (nor a peak to convert to)" if want in _CONVERSION else "")
        + "; run the model at a precision the chip has (--dtype) or add the peak to the catalog"
    )


def supported_dtypes(acc: Accelerator) -> list[str]:
    """Compute precisions with a published peak on ``acc``, widest first."""
    return [d for d in ("bf16", "fp8", "int8", "fp6", "fp4") if peak_of(acc, d) is not None]
