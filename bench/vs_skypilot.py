"""polyfleet vs SkyPilot's optimizer on the same SkyPilot catalog, side by side in one run.

Run from the repository root (needs the ``dev`` extra, which brings ``skypilot``)::

    .venv/bin/python bench/vs_skypilot.py [DIR] [--repeat 5] [--workloads 300] [--time-limit 10]

DIR is a SkyPilot catalog (``catalogs/v8`` or the repository root above it); it defaults to
/work/shared/data/skypilot-catalog, falling back to tests/data/skypilot (which has no
``common/accelerators.csv``, so SkyPilot's optimizer cannot run on it).

1. Questions: 20 single tasks ("8 x H100 for 100 hours", spot or on-demand).  polyfleet
   answers with :func:`polyfleet.catalog.cheapest.cheapest_offers` on the offers
   ``import_skypilot(DIR)`` makes; SkyPilot answers with ``sky.optimizer.Optimizer.optimize``
   run in this process, offline, the way SkyPilot's own tests run it: ``HOME`` and
   ``SKY_RUNTIME_DIR`` point at a temporary folder holding a copy of DIR as
   ``.sky/catalogs/v8`` (no ``.meta/*.md5`` next to the files, so SkyPilot treats them as
   user-edited and never re-downloads them), the enabled-cloud check is replaced by the
   clouds whose folders DIR has, and every socket connect raises, so nothing reaches the
   network.  Each answer is (cloud, region, instance type, $ total); polyfleet (asked with
   ``names="skypilot"``, SkyPilot's name matching) lists every offer tied at the lowest
   price and the answers agree when SkyPilot's pick is among them at the same total.  Where
   polyfleet's default ``names="chip"`` finds a cheaper offer of the same chip under
   another cloud's name, that is printed too.  Each question is timed ``--repeat`` times
   per tool (median), after one untimed warm-up query per tool that loads its catalog (load
   times printed apart).
2. Portfolio: a spec of ``--workloads`` workloads (80% inference over the bundled model
   cards, 20% training) against ``catalog: [bundled, "skypilot:DIR"]``, planned with
   ``polyfleet.plan`` under ``--time-limit``; prints build/solve seconds, status and gap.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from polyfleet.catalog.cheapest import Choice, OfferTable, parse_request
from polyfleet.catalog.io import load_bundled
from polyfleet.catalog.skypilot import import_skypilot
from polyfleet.report.skypilot_task import imported_skypilot_name

DEFAULTS = (Path("/work/shared/data/skypilot-catalog"), Path(__file__).parents[1] / "tests/data/skypilot")
HOURS = 100.0
#: (request, use_spot): the 20 questions.
QUESTIONS: list[tuple[str, bool]] = [
    ("H100:1", False),
    ("H100:2", False),
    ("H100:3", False),
    ("H100:4", False),
    ("H100:8", False),
    ("H100:1", True),
    ("H100:8", True),
    ("H200:1", False),
    ("H200:8", False),
    ("H200:8", True),
    ("B200:1", False),
    ("B200:8", False),
    ("B200:2", True),
    ("A100:1", False),
    ("A100:8", False),
    ("A100-80GB:1", False),
    ("A100-80GB:8", False),
    ("L40S:1", False),
    ("L40S:4", False),
    ("L40S:8", True),
]


@dataclass
class Answer:
    """One tool's answer to one question: where, what, how much, how long it took."""

    cloud: str
    region: str
    instance_type: str
    usd_total: float
    seconds: float

    def cell(self) -> str:
        """``cloud region instance $total`` or ``none``."""
        if not self.cloud:
            return "none"
        return f"{self.cloud} {self.region} {self.instance_type} ${self.usd_total:,.2f}"


def v8_folder(directory: Path) -> Path:
    """The ``catalogs/v8`` folder inside a SkyPilot catalog checkout (or DIR itself)."""
    for candidate in (directory / "catalogs" / "v8", directory / "v8", directory):
        if any(candidate.glob("*/vms.csv")):
            return candidate
    raise SystemExit(f"vs_skypilot: no <cloud>/vms.csv under {directory}")


def offline_skypilot(v8: Path) -> tuple[Any, Path]:
    """Import SkyPilot in-process against a private copy of ``v8``; no network, no ~/.sky.

    Must run before anything imports ``sky``: SkyPilot fixes its catalog folder from
    ``SKY_RUNTIME_DIR``/``HOME`` at import.  Returns the ``sky`` module and the temp home.
    """
    if "sky" in sys.modules:
        raise SystemExit("vs_skypilot: sky was imported before the offline set-up")
    if not (v8 / "common" / "accelerators.csv").is_file():
        raise SystemExit(f"vs_skypilot: {v8}/common/accelerators.csv is missing; SkyPilot needs it")
    home = Path(tempfile.mkdtemp(prefix="polyfleet-sky-"))
    shutil.copytree(v8, home / ".sky" / "catalogs" / "v8")
    os.environ["HOME"] = str(home)
    os.environ["SKY_RUNTIME_DIR"] = str(home)

    def no_network(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("vs_skypilot: network access is blocked")

    socket.socket.connect = no_network  # type: ignore[method-assign]
    socket.create_connection = no_network  # type: ignore[assignment]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import sky
        from sky import check
        from sky.utils import registry

    clouds = [registry.CLOUD_REGISTRY.from_str(p.parent.name) for p in sorted(v8.glob("*/vms.csv"))]
    enabled = [c for c in clouds if c is not None]
    check.get_cached_enabled_clouds_or_refresh = lambda *_a, **_k: enabled
    check.check_capability = lambda *_a, **_k: None
    return sky, home


def skypilot_answer(sky: Any, request: str, use_spot: bool) -> Answer:
    """SkyPilot's optimizer's pick for one task of ``request`` on ``HOURS`` hours."""
    start = time.perf_counter()
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        task = sky.Task(name="q").set_resources(sky.Resources(accelerators=request, use_spot=use_spot))
        task.set_time_estimator(lambda _resources: HOURS * 3600)
        dag = sky.Dag()
        dag.add(task)
        try:
            sky.optimizer.Optimizer.optimize(dag, quiet=True)
        except sky.exceptions.ResourcesUnavailableError:
            return Answer("", "", "", float("nan"), time.perf_counter() - start)
        best = task.best_resources
        cost = best.get_cost(HOURS * 3600) * task.num_nodes
    seconds = time.perf_counter() - start
    return Answer(str(best.cloud).lower(), best.region or "", best.instance_type or "", cost, seconds)


def polyfleet_answer(
    table: OfferTable, request: str, use_spot: bool, names: str = "skypilot"
) -> tuple[Answer, list[Choice]]:
    """polyfleet's cheapest offer(s) for one task; the Answer shows the first of the ties."""
    start = time.perf_counter()
    name, count = parse_request(request)
    choices = table.cheapest(name, count, HOURS, use_spot=use_spot, names=names)  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    if not choices:
        return Answer("", "", "", float("nan"), seconds), choices
    first = choices[0]
    return Answer(first.provider, first.region, first.instance_type, first.usd_total, seconds), choices


def median_seconds(fn: Callable[[], Answer], repeat: int) -> float:
    """Median wall time of ``repeat`` calls (each call times itself)."""
    return statistics.median(fn().seconds for _ in range(repeat))


def same_answer(sky_answer: Answer, choices: list[Choice]) -> bool:
    """SkyPilot's pick is among polyfleet's ties at the same total (or neither has one)."""
    if not sky_answer.cloud or not choices:
        return not sky_answer.cloud and not choices
    picks = {(c.provider, c.region.lower(), c.instance_type) for c in choices}
    key = (sky_answer.cloud, sky_answer.region.lower(), sky_answer.instance_type)
    return key in picks and bool(np.isclose(sky_answer.usd_total, choices[0].usd_total, rtol=1e-9))


def questions(sky: Any, table: OfferTable, repeat: int) -> None:
    """Section 1: the 20 questions, both answers, both times, the ratio."""
    print(f"\n## 1. cheapest place for one task ({HOURS:g} h), {len(QUESTIONS)} questions\n")
    print("polyfleet is asked with names='skypilot' (SkyPilot's name matching, the like-for-like")
    print("question); where its default names='chip' finds a cheaper offer of the same chip that a")
    print("cloud files under another name, that answer is shown on a third line.\n")
    header = f"{'#':>2} {'question':<22} {'tool':<9} {'answer':<58} {'median':>10}"
    print(header)
    print("-" * len(header))
    by_id = {o.id: o for o in table.offers}
    ratios, same = [], 0
    for i, (request, spot) in enumerate(QUESTIONS, 1):
        sky_answer = skypilot_answer(sky, request, spot)
        pf_answer, choices = polyfleet_answer(table, request, spot)
        sky_s = median_seconds(lambda r=request, s=spot: skypilot_answer(sky, r, s), repeat)
        pf_s = median_seconds(lambda r=request, s=spot: polyfleet_answer(table, r, s)[0], repeat)
        ratio = sky_s / pf_s
        ratios.append(ratio)
        equal = same_answer(sky_answer, choices)
        same += equal
        ties = f", {len(choices)}-way tie" if len(choices) > 1 else ""
        label = f"{request} {'spot' if spot else 'on-demand'}"
        print(f"{i:>2} {label:<22} {'SkyPilot':<9} {sky_answer.cell():<58} {sky_s * 1e3:>8.2f}ms")
        print(f"{'':>2} {'':<22} {'polyfleet':<9} {pf_answer.cell():<58} {pf_s * 1e3:>8.3f}ms")
        print(
            f"{'':>2} {'':<22} {'':<9} {'SAME' if equal else 'DIFFERENT'}{ties};"
            f" polyfleet {ratio:,.0f}x faster"
        )
        chip_answer, chip_choices = polyfleet_answer(table, request, spot, names="chip")
        if chip_choices and not same_answer(chip_answer, choices):
            offer = by_id[chip_choices[0].offer]
            called = imported_skypilot_name(offer) or offer.accelerator
            print(f"{'':>2} {'':<22} {'chip':<9} {chip_answer.cell():<58} (SkyPilot calls it {called!r})")
    print(
        f"\nanswers equal: {same}/{len(QUESTIONS)}; speed ratio per question (SkyPilot / polyfleet):"
        f" min {min(ratios):,.0f}x, median {statistics.median(ratios):,.0f}x, max {max(ratios):,.0f}x"
        f" -> {'OK' if min(ratios) >= 10 else 'BELOW'} the 10x target"
    )


# --- section 2: a 300-workload portfolio ----------------------------------------------------

INFERENCE_MODELS = ["llama-3.1-8b", "llama-3.1-70b", "qwen2.5-7b", "mistral-7b", "gpt-oss-20b", "qwen2.5-72b"]
TRAINING_MODELS = ["llama-3.1-8b", "qwen2.5-7b", "mistral-7b", "llama-3.1-70b"]


def portfolio_spec(n: int, catalog_dir: Path, rng: np.random.Generator) -> dict[str, Any]:
    """A spec document: ``n`` workloads, 80% inference and 20% training, on bundled + SkyPilot."""
    workloads: list[dict[str, Any]] = []
    n_train = n // 5
    for i in range(n - n_train):
        workloads.append(
            {
                "name": f"inf-{i:03d}",
                "kind": "inference",
                "model": INFERENCE_MODELS[int(rng.integers(len(INFERENCE_MODELS)))],
                "requests_per_s": round(float(rng.uniform(0.5, 6)), 2),
                "peak_to_mean": round(float(rng.uniform(1.0, 2.0)), 2),
                "input_tokens": int(rng.integers(200, 3000)),
                "output_tokens": int(rng.integers(50, 600)),
                "slo": {"ttft_ms": 2000, "tpot_ms": int(rng.choice([40, 50, 80]))},
                "allow_api": bool(rng.random() < 0.5),
            }
        )
    for i in range(n_train):
        workloads.append(
            {
                "name": f"train-{i:03d}",
                "kind": "training",
                "model": TRAINING_MODELS[int(rng.integers(len(TRAINING_MODELS)))],
                "tokens_b": round(float(rng.uniform(5, 40)), 1),
                "deadline_days": round(float(rng.uniform(14, 30)), 1),
                "stacks": ["cuda", "rocm"],
            }
        )
    return {
        "horizon_months": 1,
        "catalog": ["bundled", f"skypilot:{catalog_dir}"],
        "policy": {"max_spend_share": {"provider": 0.6}},
        "workloads": workloads,
    }


def portfolio(catalog_dir: Path, n: int, time_limit: float, seed: int) -> None:
    """Section 2: plan ``n`` workloads over every offer and report the solver's numbers."""
    import polyfleet
    from polyfleet.plan import SolveOptions, build_candidates, build_milp

    print(f"\n## 2. portfolio: {n} workloads x all offers, time limit {time_limit:g} s\n")
    doc = portfolio_spec(n, catalog_dir, np.random.default_rng(seed))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "portfolio.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        start = time.perf_counter()
        spec = polyfleet.load_spec(path)
        load_s = time.perf_counter() - start
    start = time.perf_counter()
    candidates = build_candidates(spec)
    cand_s = time.perf_counter() - start
    start = time.perf_counter()
    result = polyfleet.plan(spec, SolveOptions(time_limit_s=time_limit))
    total_s = time.perf_counter() - start
    kinds = {k: sum(w["kind"] == k for w in doc["workloads"]) for k in ("inference", "training")}
    print(f"workloads: {kinds}; offers in catalog: {len(spec.catalog.offers)}")
    print(f"load_spec {load_s:.2f} s; build_candidates {cand_s:.2f} s (plan() rebuilds, from the cache)")
    milp = build_milp(candidates, spec.policy)
    rows, cols = milp.A.shape
    print(
        f"MILP: {rows:,} rows x {cols:,} columns ({int(milp.integer.sum()):,} integer),"
        f" {milp.A.nnz:,} nonzeros"
    )
    print(
        f"plan: status {result.status}, build {result.build_seconds:.2f} s,"
        f" solve {result.solve_seconds:.2f} s,"
        f" gap {result.gap:.2e}, total plan() {total_s:.2f} s"
    )
    if result.feasible:
        print(f"total ${result.to_dict()['total_usd']:,.0f} per {spec.horizon_months:g} month(s)")
    elif result.infeasibility is not None:
        print(f"no plan: {result.infeasibility}")
    wall = load_s + total_s
    if not result.feasible:  # no plan is never OK, however fast
        print(f"-> NO PLAN: the 10 s target is not met (load + plan {wall:.2f} s)")
    else:
        print(f"-> {'OK' if wall < 10 else 'ABOVE'} the 10 s target (load + plan {wall:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per question and tool")
    parser.add_argument("--workloads", type=int, default=300)
    parser.add_argument("--time-limit", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-portfolio", action="store_true")
    args = parser.parse_args()
    directory = (args.dir or next(d for d in DEFAULTS if d.is_dir())).resolve()
    v8 = v8_folder(directory)

    start = time.perf_counter()
    sky, home = offline_skypilot(v8)
    sky_import_s = time.perf_counter() - start
    try:
        start = time.perf_counter()
        skypilot_answer(sky, "H100:8", False)  # loads every cloud's catalog
        sky_load_s = time.perf_counter() - start

        start = time.perf_counter()
        imported = import_skypilot(v8, load_bundled().accelerators)
        table = OfferTable(imported.offers)
        polyfleet_answer(table, "H100:8", False)
        pf_load_s = time.perf_counter() - start

        print(f"# polyfleet vs SkyPilot {sky.__version__} on {v8}")
        print(f"clouds: {', '.join(sorted({o.provider for o in imported.offers.values()}))}")
        print(
            f"one-time: SkyPilot import {sky_import_s:.2f} s"
            f" + first query (reads catalogs) {sky_load_s:.2f} s;"
            f" polyfleet import_skypilot + OfferTable + first query {pf_load_s * 1e3:.1f} ms"
            f" ({len(table)} offers)"
        )
        questions(sky, table, args.repeat)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if not args.skip_portfolio:
        portfolio(directory, args.workloads, args.time_limit, args.seed)


if __name__ == "__main__":
    main()
