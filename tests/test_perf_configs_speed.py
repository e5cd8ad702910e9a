"""The fast configuration search (``ConfigSearch``) gives exactly the straightforward one's answers.

``ConfigSearch`` shares each estimate between instance sizes and skips layouts that need
more chips than a configuration already found (``polyfleet.perf.config_search``); the planner's
candidates must come out bit for bit as with ``reference_best_inference_perf`` (every
configuration, then ``best_config``), on the bundled examples and on a grid of cards,
chips, demands, precisions and SLO modes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import polyfleet
from polyfleet.catalog.io import load_bundled
from polyfleet.errors import SpecError
from polyfleet.perf import config_search, inference_perf
from polyfleet.perf.config_search import ConfigSearch
from polyfleet.perf.configs import reference_best_inference_perf
from polyfleet.perf.inference import inference_at, prepare_inference
from polyfleet.plan import build_candidates

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))


class _Reference:
    """Stands in for ``search_for`` in the planner: the straightforward search per call."""

    def __init__(self, card: Any, acc: Any, **kwargs: Any) -> None:
        self.card, self.acc, self.kwargs = card, acc, kwargs

    def best(self, chips_per_node: int | None, multi_node: bool, demand_rps: float | None) -> Any:
        return reference_best_inference_perf(
            self.card,
            self.acc,
            demand_rps=demand_rps,
            chips_per_node=chips_per_node,
            multi_node=multi_node,
            **self.kwargs,
        )


def _inference_columns(spec: Any) -> tuple[np.ndarray, ...]:
    c = build_candidates(spec)
    return c.inf_w, c.inf_o, c.inf_chips, c.inf_rps, c.inf_config


def test_candidates_on_the_examples_equal_the_straightforward_search(monkeypatch: pytest.MonkeyPatch) -> None:
    compared = 0
    for path in EXAMPLES:
        try:
            spec = polyfleet.load_spec(path)
        except SpecError:
            continue  # not a plan spec (e.g. a gateway's backends file)
        config_search._search_for.cache_clear()
        fast = _inference_columns(spec)
        with monkeypatch.context() as m:
            # polyfleet.plan is also a function's name on the package: reach the module itself
            m.setattr(sys.modules["polyfleet.plan.candidates"], "search_for", _Reference)
            slow = _inference_columns(spec)
        assert len(fast[0]) > 0, path.name
        for got, want in zip(fast, slow, strict=True):
            assert np.array_equal(got, want), path.name
        compared += 1
    assert compared >= 5  # copilot-reseller, five-year-deal, frontier-lab, migration, risk, startup


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [
        ("llama-3.1-8b", {"tpot_ms": 40, "ttft_ms": 2000, "percentile": 0.99}),
        (
            "llama-3.1-70b",
            {"tpot_ms": 50, "ttft_ms": 2000, "percentile": 0.99, "dtypes": ["bf16", "fp8", "fp4"]},
        ),
        ("mixtral-8x7b", {"tpot_ms": 60, "percentile": 0.9, "batching": "chunked"}),
        ("llama-3.1-70b", {"tpot_ms": 30}),  # idealised full batch, no percentile
    ],
)
def test_best_equals_the_straightforward_search(model: str, kwargs: dict[str, Any]) -> None:
    cat = load_bundled()
    card = cat.models[model]
    for acc_id in ("nvidia-h100-sxm", "amd-mi300x", "nvidia-l4", "nvidia-b200"):
        acc = cat.accelerators[acc_id]
        search = ConfigSearch(card, acc, input_tokens=1500, output_tokens=300, **kwargs)
        for chips_per_node in (1, 8):
            for multi_node in (False, True):
                for demand in (None, 0.3, 20.0, 2000.0):
                    want = reference_best_inference_perf(
                        card,
                        acc,
                        input_tokens=1500,
                        output_tokens=300,
                        chips_per_node=chips_per_node,
                        multi_node=multi_node,
                        demand_rps=demand,
                        **kwargs,
                    )
                    got = search.best(chips_per_node, multi_node, demand)
                    assert got == want, (acc_id, chips_per_node, multi_node, demand)


def test_a_small_demand_skips_the_larger_layouts() -> None:
    # Llama 3.1 8B bf16 (16 GB) fits one H100; its TP1 replica serves far more than
    # 0.1 request/s, so 1 chip serves the demand and TP2/4/8 (>= 2 chips each) are never
    # estimated: one estimate where the straightforward search makes four.
    cat = load_bundled()
    card, acc = cat.models["llama-3.1-8b"], cat.accelerators["nvidia-h100-sxm"]
    kw = {"input_tokens": 1000, "output_tokens": 200, "tpot_ms": 50, "percentile": 0.99}
    search = ConfigSearch(card, acc, **kw)
    best = search.best(8, False, 0.1)
    assert best.tensor_parallel == 1 and best.feasible
    assert len(search._memo) == 1
    # without a demand every layout is scored (most tokens/s per chip wins): all four
    assert search.best(8, False, None) == reference_best_inference_perf(card, acc, chips_per_node=8, **kw)
    assert len(search._memo) == 4
    # another instance size of the same chip reuses the estimates: nothing new
    search.best(4, False, 0.1)
    assert len(search._memo) == 4
    assert search.perf(0, 2, 1, 1) == inference_perf(card, acc, tensor_parallel=2, pipeline_stages=1, **kw)


def test_prepared_estimate_equals_inference_perf_with_the_layout_forced() -> None:
    cat = load_bundled()
    kw = {"input_tokens": 2000, "output_tokens": 400, "tpot_ms": 60, "ttft_ms": 3000, "percentile": 0.99}
    for model in ("llama-3.1-70b", "mixtral-8x7b"):
        card = cat.models[model]
        for acc_id in ("nvidia-h100-sxm", "amd-mi300x", "nvidia-l4"):
            acc = cat.accelerators[acc_id]
            prepared = prepare_inference(card, acc, **kw)
            for t, p, ep in ((1, 1, 1), (2, 1, 2), (4, 2, 1), (8, 1, 8)):
                want = inference_perf(
                    card, acc, tensor_parallel=t, pipeline_stages=p, expert_parallel=ep, **kw
                )
                assert inference_at(prepared, t, p, ep) == want, (model, acc_id, t, p, ep)
    # a chip without the precision: the same "spec:" answer for every layout
    maia = cat.accelerators["microsoft-maia-200"]  # publishes FP8/FP4 peaks only
    spec = prepare_inference(cat.models["llama-3.1-8b"], maia, **kw)
    assert inference_at(spec, 2) == inference_perf(cat.models["llama-3.1-8b"], maia, tensor_parallel=2, **kw)
    assert not inference_at(spec, 2).feasible and inference_at(spec, 2).reason.startswith("spec:")
    # arguments no workload can have raise as inference_perf does
    with pytest.raises(ValueError, match="tpot_ms must be > 0"):
        prepare_inference(card, acc, input_tokens=10, output_tokens=10, tpot_ms=0)
