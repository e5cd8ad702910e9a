"""Performance model v1: inference replica sizing and training chip counts.

Pure arithmetic on catalog records (``ModelCard``, ``Accelerator``); tunable constants
live in :mod:`polyfleet.perf.defaults`.
"""

from __future__ import annotations

from polyfleet.perf import defaults
from polyfleet.perf.inference import InferencePerf, inference_perf, sized_inference_perf
from polyfleet.perf.training import TrainingPerf, training_perf

__all__ = [
    "InferencePerf",
    "TrainingPerf",
    "defaults",
    "inference_perf",
    "sized_inference_perf",
    "training_perf",
]
