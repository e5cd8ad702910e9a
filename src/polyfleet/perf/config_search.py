"""The fast configuration search: one memo of estimates per (service, accelerator), pruned.

``polyfleet.perf.configs`` defines the search (``search_configs``) and the choice
(``best_config``); a planner asks it for every (service, instance size) pair: 240
services x 52 (accelerator, chips per instance) keys in ``bench/vs_skypilot.py``'s
portfolio.  ``ConfigSearch`` answers every instance size and demand of one (service,
accelerator) from one memo and skips layouts that cannot win (its docstring), with the
same answer as ``configs.reference_best_inference_perf``; ``search_for`` shares one per
set of arguments.  ``configs.best_inference_perf`` and the planner
(``polyfleet.plan.candidates``) use it.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

from polyfleet.catalog.models import Accelerator, ModelCard
from polyfleet.perf.configs import Config, _dtypes, _layouts, _same, best_config
from polyfleet.perf.inference import Prepared, inference_at, prepare_inference
from polyfleet.perf.moe import moe_split
from polyfleet.perf.result import InferencePerf


class ConfigSearch:
    """The configuration search of one (card, accelerator, request lengths, SLO), evaluated lazily.

    ``best(chips_per_node, multi_node, demand_rps)`` returns what ``best_inference_perf``
    returns, i.e. ``best_config(search_configs(...), demand_rps)`` (or its infeasible
    fallback), but cheaper, for a planner that asks for many instance sizes and demands:

    - each (precision, ``t``, ``p``, ``e``) estimate is computed once and shared by every
      ``chips_per_node`` (``inference_perf`` does not depend on it once the layout is
      fixed; the instance size only bounds which layouts are searched), and what no
      layout changes is derived once per precision (``prepare_inference``, then
      ``inference_at`` per layout: the same result as ``inference_perf`` with that
      layout forced);
    - with a demand, a layout of ``t*p`` chips is skipped once a configuration already
      serves the demand on fewer than ``t*p`` chips: it needs at least one replica, so at
      least ``t*p`` chips, and ``best_config`` ranks by chips first.  Skipped
      configurations rank strictly behind the one found, so the choice is unchanged (ties
      keep ``search_configs``'s order).
    """

    def __init__(
        self,
        card: ModelCard,
        acc: Accelerator,
        *,
        input_tokens: int,
        output_tokens: int,
        dtypes: list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        if "batches" in kwargs:
            raise TypeError("ConfigSearch searches SLO-limited batches only (no batches=)")
        self.acc = acc
        self.cards = [
            card if d == card.dtype else card.model_copy(update={"dtype": d})
            for d in _dtypes(card, acc, dtypes)
        ]
        self.moe = moe_split(card) is not None
        self.kwargs = {"input_tokens": input_tokens, "output_tokens": output_tokens, **kwargs}
        self._memo: dict[tuple[int, int, int, int], InferencePerf] = {}
        self._prepared: dict[int, Prepared | InferencePerf] = {}

    def perf(self, i: int, t: int, p: int, ep: int) -> InferencePerf:
        """``inference_perf`` of precision ``self.cards[i]`` on TP ``t`` x PP ``p`` x EP ``ep`` (memoised)."""
        key = (i, t, p, ep)
        found = self._memo.get(key)
        if found is None:
            prepared = self._prepared.get(i)
            if prepared is None:  # checks and derives what no layout changes, once
                prepared = self._prepared[i] = prepare_inference(self.cards[i], self.acc, **self.kwargs)
            found = self._memo[key] = inference_at(prepared, t, p, ep)
        return found

    def configs(
        self, chips_per_node: int | None = None, multi_node: bool = False, max_chips: int | None = None
    ) -> list[Config]:
        """``search_configs``'s list (without ``batches``), from the memo."""
        out: list[Config] = []
        for i, c in enumerate(self.cards):
            for t, p in _layouts(chips_per_node, multi_node, max_chips):
                for ep in [1, t] if self.moe and t > 1 else [1]:
                    perf = self.perf(i, t, p, ep)
                    if ep > 1 and out and _same(out[-1].perf, perf):
                        continue
                    out.append(Config(c.dtype, perf))
        return out

    def best(
        self,
        chips_per_node: int | None = None,
        multi_node: bool = False,
        demand_rps: float | None = None,
        max_chips: int | None = None,
    ) -> InferencePerf:
        """``best_inference_perf``'s answer for one instance size and demand (class docstring)."""
        if demand_rps is None or demand_rps <= 0:
            chosen = best_config(self.configs(chips_per_node, multi_node, max_chips))
            if chosen is not None:
                return chosen.perf
            return self._fallback(chips_per_node, multi_node, max_chips)
        best_key: tuple[float, ...] | None = None
        best_perf: InferencePerf | None = None
        layouts = _layouts(chips_per_node, multi_node, max_chips)
        for i in range(len(self.cards)):
            for t, p in layouts:
                if best_key is not None and t * p > best_key[0]:
                    continue  # needs >= t*p chips: strictly behind the best found
                first: InferencePerf | None = None
                for ep in [1, t] if self.moe and t > 1 else [1]:
                    perf = self.perf(i, t, p, ep)
                    if ep == 1:
                        first = perf
                    elif first is not None and _same(first, perf):
                        continue  # as search_configs: expert parallelism changes nothing here
                    if not perf.feasible or perf.replica_requests_per_s <= 0:
                        continue
                    replicas = math.ceil(demand_rps / perf.replica_requests_per_s - 1e-9)
                    key = (
                        max(1, replicas) * perf.chips_per_replica,
                        -perf.output_tokens_per_s_per_chip,
                        perf.chips_per_replica,
                        perf.pipeline_stages,
                    )
                    if best_key is None or key < best_key:
                        best_key, best_perf = key, perf
        if best_perf is not None:
            return best_perf
        return self._fallback(chips_per_node, multi_node, max_chips)

    def _fallback(self, chips_per_node: int | None, multi_node: bool, max_chips: int | None) -> InferencePerf:
        """No feasible configuration: the least-bad infeasible one (an SLO miss before a memory one)."""
        configs = self.configs(chips_per_node, multi_node, max_chips)
        if not configs:
            raise ValueError("no configuration to search")
        slo = [c for c in configs if c.perf.reason.startswith("slo")]
        return (slo or configs)[0].perf


def search_for(card: ModelCard, acc: Accelerator, **kwargs: Any) -> ConfigSearch:
    """The shared ``ConfigSearch`` for these arguments (``ConfigSearch``'s; no instance size).

    Memoised (least recently used, ``SEARCH_CACHE_SIZE``): a planner asks the same search
    for every instance size of an accelerator and every demand, and plans a spec more
    than once (``--explain``, benches).  A pure function of frozen records and numbers,
    so sharing cannot change a result; an unhashable argument searches afresh.
    """
    try:
        return _search_for(card, acc, tuple(sorted((k, _frozen(v)) for k, v in kwargs.items())))
    except TypeError:
        return ConfigSearch(card, acc, **kwargs)


def _frozen(value: Any) -> Any:
    """Lists as tuples, so the search's arguments can key a cache."""
    return tuple(value) if isinstance(value, list) else value


SEARCH_CACHE_SIZE = 16384
"""Searches ``search_for`` keeps: one per (service, accelerator) of a 300-service,
50-accelerator portfolio, each a few estimates."""


@lru_cache(maxsize=SEARCH_CACHE_SIZE)
def _search_for(card: ModelCard, acc: Accelerator, args: tuple[tuple[str, Any], ...]) -> ConfigSearch:
    """``search_for``'s cache (arguments as sorted, frozen pairs)."""
    return ConfigSearch(card, acc, **{k: list(v) if isinstance(v, tuple) else v for k, v in args})
