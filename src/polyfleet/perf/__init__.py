"""Performance model: inference replicas (configuration search, tail-latency SLOs) and training.

Pure arithmetic on catalog records (``ModelCard``, ``Accelerator``); tunable constants
live in :mod:`polyfleet.perf.defaults`.
"""

from __future__ import annotations

from polyfleet.perf import defaults
from polyfleet.perf.configs import best_inference_perf, sized_inference_perf
from polyfleet.perf.inference import inference_perf
from polyfleet.perf.result import InferencePerf
from polyfleet.perf.training import TrainingPerf, training_perf

__all__ = [
    "InferencePerf",
    "TrainingPerf",
    "best_inference_perf",
    "defaults",
    "inference_perf",
    "sized_inference_perf",
    "training_perf",
]
