"""Measure decode and prefill step times on one CUDA GPU, for ``polyfleet perf calibrate``.

On a machine with an NVIDIA GPU (H100/H200/B200/A100/L40S ...)::

    python -m venv .venv && .venv/bin/pip install -e .
    .venv/bin/pip install torch                 # the CUDA build from PyPI (CUDA 12.x wheels)
    .venv/bin/python bench/gpu_measure.py --out bench/data/<gpu>-<date>.jsonl
    .venv/bin/polyfleet perf calibrate bench/data/<gpu>-<date>.jsonl --out my-gpu.yaml

and name ``calibration: my-gpu.yaml`` in a fleet spec.  It runs to the end in under
``--budget-s`` (default 300 s) on one datacenter GPU; ``--quick`` measures a smaller grid.

What it measures (random weights: speed does not depend on the values).  For each model
shape (``SHAPES``: Llama-3.1-8B, Llama-3.1-70B and Mixtral-8x7B layers, the real hidden,
intermediate, head and expert sizes) it builds ``measured_layers`` decoder layers plus
the LM head and times, in bf16 and in fp8 (``torch._scaled_mm``, per-tensor scales) where
the GPU supports it:

* decode: one step of ``batch`` requests, each with ``context`` tokens of KV cache
  (bf16, grouped-query attention by ``scaled_dot_product_attention``), over a batch x
  context grid;
* prefill: one prompt of ``prompt`` tokens (causal attention), over prompt lengths;
* Mixtral: the MoE layer stack (router, top-2 routing, one GEMM group per expert).

A case's full-model time is ``layers_time * layers / measured_layers + head_time``
(every decoder layer of a model does the same work).  Each case is timed with CUDA
events: ``WARMUP`` untimed runs, then the median of ``REPEATS``.  Cases that would not
fit the time budget or the GPU memory are skipped and listed as such.

Output, one JSON object per line: the measurements (``kind`` "decode" or "prefill",
in the keys ``polyfleet.perf.measurements`` reads: ``model, weight_dtype, accelerator,
tensor_parallel, input_tokens, output_tokens, output_tokens_per_s_whole_tp_group,
batch``, plus the raw seconds, the GPU's name and the date), then one ``kind: "skipped"``
line per case left out and one ``kind: "run"`` line with the totals.  It also prints a
markdown table of measured vs the inference model's prediction (default efficiencies).

Tests never need a GPU: the bookkeeping (grid, scaling, records, deadline, comparison)
runs on a ``FakeTimer`` in ``tests/test_gpu_measure.py``; only ``CudaTimer`` and
``torch_case`` import torch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

WARMUP = 3
"""Untimed runs before each case (CUDA graphs, allocator, clocks)."""

REPEATS = 10
"""Timed runs per case; the median is kept."""


@dataclass(frozen=True)
class Shape:
    """One model's layer shape (catalog card ``card``) and how many layers to build."""

    card: str
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    layers: int
    measured_layers: int
    experts: int = 0
    experts_per_token: int = 0


SHAPES: dict[str, Shape] = {
    "llama-3.1-8b": Shape("llama-3.1-8b", 4096, 14336, 32, 8, 128, 128256, 32, 4),
    "llama-3.1-70b": Shape("llama-3.1-70b", 8192, 28672, 64, 8, 128, 128256, 80, 2),
    "mixtral-8x7b": Shape(
        "mixtral-8x7b", 4096, 14336, 32, 8, 128, 32000, 32, 2, experts=8, experts_per_token=2
    ),
}
"""Model shapes measured; sizes from each model's published config.json."""

DECODE_BATCHES = (1, 8, 32, 128)
DECODE_CONTEXTS = (512, 4096)
PREFILL_PROMPTS = (128, 512, 2048, 8192)
MAX_DECODE_TOKENS = 256 * 1024
"""Largest batch x context of KV cache a decode case may hold (memory)."""


@dataclass(frozen=True)
class Case:
    """One timed point: ``kind`` "decode" (``batch`` x ``context``) or "prefill" (``tokens``)."""

    kind: str
    shape: str
    dtype: str
    batch: int
    tokens: int  # decode: context per request; prefill: prompt length


def plan_cases(dtypes: Iterable[str], quick: bool = False) -> list[Case]:
    """The grid, cheapest first so a deadline cuts the most expensive cases."""
    batches = DECODE_BATCHES[:3] if quick else DECODE_BATCHES
    contexts = DECODE_CONTEXTS[:1] if quick else DECODE_CONTEXTS
    prompts = PREFILL_PROMPTS[:3] if quick else PREFILL_PROMPTS
    out: list[Case] = []
    for dtype in dtypes:
        for name in SHAPES:
            for b in batches:
                for c in contexts:
                    if b * c <= MAX_DECODE_TOKENS:
                        out.append(Case("decode", name, dtype, b, c))
            out.extend(Case("prefill", name, dtype, 1, n) for n in prompts)
    return sorted(out, key=lambda c: (c.dtype != "bf16", c.batch * c.tokens, c.shape, c.kind))


class Timer(Protocol):
    """Seconds per run of one case's layers and of its LM head (median of ``REPEATS``)."""

    def measure(self, case: Case) -> tuple[float, float]: ...


@dataclass
class FakeTimer:
    """A timer for tests: ``seconds(case) -> (layers_s, head_s)``; advances ``clock``."""

    seconds: Callable[[Case], tuple[float, float]]
    clock: list[float] = field(default_factory=lambda: [0.0])
    cost_s: float = 1.0  # wall seconds one measurement takes on the fake clock

    def measure(self, case: Case) -> tuple[float, float]:
        self.clock[0] += self.cost_s
        return self.seconds(case)

    def now(self) -> float:
        return self.clock[0]


@dataclass(frozen=True)
class Record:
    """One measurement line (see the module docstring)."""

    kind: str
    model: str
    weight_dtype: str
    accelerator: str
    tensor_parallel: int
    input_tokens: int
    output_tokens: int
    output_tokens_per_s_whole_tp_group: float
    batch: int
    seconds: float
    layers_seconds: float
    head_seconds: float
    measured_layers: int
    layers: int
    gpu: str
    date: str
    source: str


def full_model_seconds(case: Case, layers_s: float, head_s: float) -> float:
    """``layers_s * layers / measured_layers + head_s``: the whole model's step or prefill."""
    shape = SHAPES[case.shape]
    return layers_s * shape.layers / shape.measured_layers + head_s


def to_record(case: Case, layers_s: float, head_s: float, *, accelerator: str, gpu: str, date: str) -> Record:
    """The measurement line of one case: decode rate ``batch / s``, prefill ``prompt / s``."""
    shape = SHAPES[case.shape]
    seconds = full_model_seconds(case, layers_s, head_s)
    rate = case.batch / seconds if case.kind == "decode" else case.tokens / seconds
    return Record(
        kind=case.kind, model=shape.card, weight_dtype=case.dtype, accelerator=accelerator, tensor_parallel=1,
        input_tokens=case.tokens, output_tokens=1, output_tokens_per_s_whole_tp_group=rate, batch=case.batch,
        seconds=seconds, layers_seconds=layers_s, head_seconds=head_s, measured_layers=shape.measured_layers,
        layers=shape.layers, gpu=gpu, date=date, source=f"bench/gpu_measure.py on {gpu}, {date}",
    )  # fmt: skip


def run(
    cases: list[Case],
    timer: Timer,
    *,
    accelerator: str,
    gpu: str,
    date: str,
    budget_s: float,
    now: Callable[[], float] = time.monotonic,
) -> tuple[list[Record], list[tuple[Case, str]]]:
    """Time ``cases`` in order until ``budget_s`` is spent; (records, skipped with why).

    A case is skipped, not run, once the time used plus the slowest case so far would
    pass the budget; a case the timer cannot run (``RuntimeError``, e.g. out of memory
    or fp8 unsupported) is skipped with the error.
    """
    start, slowest = now(), 0.0
    records: list[Record] = []
    skipped: list[tuple[Case, str]] = []
    for case in cases:
        used = now() - start
        if used + slowest > budget_s:
            skipped.append((case, f"time budget {budget_s:g} s"))
            continue
        began = now()
        try:
            layers_s, head_s = timer.measure(case)
        except RuntimeError as exc:
            skipped.append((case, str(exc).splitlines()[0][:120]))
            continue
        slowest = max(slowest, now() - began)
        records.append(to_record(case, layers_s, head_s, accelerator=accelerator, gpu=gpu, date=date))
    return records, skipped


def jsonl_lines(records: list[Record], skipped: list[tuple[Case, str]], wall_s: float) -> list[str]:
    """The output file's lines: measurements, skipped cases, then the run summary."""
    lines = [json.dumps(asdict(r)) for r in records]
    lines += [json.dumps({**asdict(c), "case": c.kind, "kind": "skipped", "why": why}) for c, why in skipped]
    summary = {"kind": "run", "measured": len(records), "skipped": len(skipped), "wall_s": wall_s}
    lines.append(json.dumps(summary))
    return lines


def comparison(records: list[Record]) -> tuple[list[str], float | None]:
    """Markdown rows of measured vs predicted seconds, and the median |error| (None if none)."""
    from polyfleet.catalog.io import load_bundled
    from polyfleet.perf.calibration import predict_perf
    from polyfleet.perf.measurements import Measurement

    catalog = load_bundled()
    rows = [
        "| kind | model | dtype | batch | tokens | measured ms | predicted ms | error |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    errors = []
    for r in records:
        card, acc = catalog.models.get(r.model), catalog.accelerators.get(r.accelerator)
        if card is None or acc is None:
            continue
        m = Measurement(
            model=r.model, dtype=r.weight_dtype, accelerator=r.accelerator, tensor_parallel=1,
            input_tokens=r.input_tokens, output_tokens=1,
            output_tokens_per_s=r.output_tokens_per_s_whole_tp_group, batch=r.batch, kind=r.kind,
        )  # fmt: skip
        rate, _ = predict_perf(card, acc, m, None)
        if not rate:
            continue
        work = r.batch if r.kind == "decode" else r.input_tokens
        predicted_s = work / rate
        err = predicted_s / r.seconds - 1
        errors.append(abs(err))
        rows.append(
            f"| {r.kind} | {r.model} | {r.weight_dtype} | {r.batch} | {r.input_tokens} "
            f"| {r.seconds * 1e3:.2f} | {predicted_s * 1e3:.2f} | {err * 100:+.1f}% |"
        )
    return rows, (statistics.median(errors) if errors else None)


# -- the GPU part: only this imports torch -------------------------------------------------------


class CudaTimer:
    """Times one case on the current CUDA device with CUDA events (median of ``REPEATS``)."""

    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.fp8 = torch.cuda.get_device_capability() >= (8, 9) and hasattr(torch, "_scaled_mm")

    def _time(self, fn: Callable[[], Any]) -> float:
        torch = self.torch
        for _ in range(WARMUP):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(REPEATS):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        return statistics.median(times)

    def measure(self, case: Case) -> tuple[float, float]:
        if case.dtype == "fp8" and not self.fp8:
            raise RuntimeError("fp8 GEMMs need compute capability 8.9+ and torch._scaled_mm")
        torch = self.torch
        try:
            layers, head = torch_case(torch, case)
            with torch.inference_mode():
                return self._time(layers), self._time(head)
        except torch.cuda.OutOfMemoryError as exc:
            raise RuntimeError(f"out of memory: {exc}") from None
        finally:
            torch.cuda.empty_cache()


def torch_case(torch: Any, case: Case) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """(run the measured layers once, run the LM head once) for ``case``, on the GPU."""
    f = torch.nn.functional
    s = SHAPES[case.shape]
    dev, bf16 = "cuda", torch.bfloat16
    tokens = case.batch if case.kind == "decode" else case.tokens
    rows = max(16, -(-tokens // 16) * 16)  # _scaled_mm wants multiples of 16

    def weight(n_in: int, n_out: int) -> Callable[[Any], Any]:
        w = torch.randn(n_out, n_in, device=dev, dtype=bf16) / n_in**0.5
        if case.dtype != "fp8":
            return lambda x: x @ w.t()
        w8 = w.to(torch.float8_e4m3fn).t()
        one = torch.ones((), device=dev)

        def mm(x: Any) -> Any:
            pad = torch.zeros(rows, n_in, device=dev, dtype=bf16)
            pad[: x.shape[0]] = x
            out = torch._scaled_mm(pad.to(torch.float8_e4m3fn), w8, scale_a=one, scale_b=one, out_dtype=bf16)
            return out[: x.shape[0]]

        return mm

    qkv_out = (s.heads + 2 * s.kv_heads) * s.head_dim
    layers = []
    for _ in range(s.measured_layers):
        layer: dict[str, Any] = {"qkv": weight(s.hidden, qkv_out)}
        layer["o"] = weight(s.heads * s.head_dim, s.hidden)
        n_mlp = s.experts or 1
        layer["up"] = [weight(s.hidden, 2 * s.intermediate) for _ in range(n_mlp)]
        layer["down"] = [weight(s.intermediate, s.hidden) for _ in range(n_mlp)]
        if s.experts:
            layer["router"] = torch.randn(s.experts, s.hidden, device=dev, dtype=bf16)
        if case.kind == "decode":
            shape = (case.batch, s.kv_heads, case.tokens, s.head_dim)
            layer["k"] = torch.randn(shape, device=dev, dtype=bf16)
            layer["v"] = torch.randn(shape, device=dev, dtype=bf16)
        layers.append(layer)
    x0 = torch.randn(tokens, s.hidden, device=dev, dtype=bf16)
    head_w = weight(s.hidden, s.vocab)

    def mlp(layer: dict[str, Any], x: Any) -> Any:
        if not s.experts:
            gate, up = layer["up"][0](x).chunk(2, dim=-1)
            return layer["down"][0](f.silu(gate) * up)
        top = torch.topk(x @ layer["router"].t(), s.experts_per_token, dim=-1).indices
        out = torch.zeros_like(x)
        for e in range(s.experts):  # grouped GEMMs, one group per expert
            idx = (top == e).any(dim=-1).nonzero().flatten()
            if idx.numel():
                gate, up = layer["up"][e](x[idx]).chunk(2, dim=-1)
                out.index_add_(0, idx, layer["down"][e](f.silu(gate) * up))
        return out

    def attention(layer: dict[str, Any], x: Any) -> Any:
        qkv = layer["qkv"](x)
        q = qkv[:, : s.heads * s.head_dim]
        if case.kind == "decode":
            q = q.view(case.batch, 1, s.heads, s.head_dim).transpose(1, 2)
            a = f.scaled_dot_product_attention(q, layer["k"], layer["v"], enable_gqa=True)
            return layer["o"](a.transpose(1, 2).reshape(case.batch, -1))
        kv = qkv[:, s.heads * s.head_dim :].view(tokens, 2, s.kv_heads, s.head_dim)
        q = q.view(1, tokens, s.heads, s.head_dim).transpose(1, 2)
        k = kv[:, 0].unsqueeze(0).transpose(1, 2)
        v = kv[:, 1].unsqueeze(0).transpose(1, 2)
        a = f.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return layer["o"](a.transpose(1, 2).reshape(tokens, -1))

    def run_layers() -> Any:
        x = x0
        for layer in layers:
            x = x + attention(layer, x)
            x = x + mlp(layer, x)
        return x

    def run_head() -> Any:
        last = x0 if case.kind == "decode" else x0[-1:]
        return head_w(last).argmax(dim=-1)

    return run_layers, run_head


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSONL file to write")
    parser.add_argument("--accelerator", default=None, help="catalog id (default: from the GPU's name)")
    parser.add_argument("--dtype", action="append", choices=["bf16", "fp8"], help="default: bf16 and fp8")
    parser.add_argument(
        "--budget-s", type=float, default=300.0, help="stop measuring after this (default 300)"
    )
    parser.add_argument("--quick", action="store_true", help="a smaller grid")
    args = parser.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("gpu_measure: needs PyTorch with CUDA: .venv/bin/pip install torch", file=sys.stderr)
        return 2
    if not torch.cuda.is_available():
        print("gpu_measure: no CUDA GPU visible", file=sys.stderr)
        return 2
    from polyfleet.catalog.io import load_bundled
    from polyfleet.perf.measurements import resolve_accelerator

    gpu = torch.cuda.get_device_name()
    accelerator = args.accelerator or resolve_accelerator(gpu, load_bundled()) or _guess_accelerator(gpu)
    if accelerator is None:
        print(f"gpu_measure: cannot tell the catalog id of {gpu!r}; pass --accelerator", file=sys.stderr)
        return 2
    date = datetime.date.today().isoformat()
    began = time.monotonic()
    cases = plan_cases(args.dtype or ["bf16", "fp8"], quick=args.quick)
    timer = CudaTimer()
    budget = args.budget_s
    records, skipped = run(cases, timer, accelerator=accelerator, gpu=gpu, date=date, budget_s=budget)
    wall = time.monotonic() - began
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text("\n".join(jsonl_lines(records, skipped, wall)) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    rows, median = comparison(records)
    print(f"# {gpu} ({accelerator}), {date}: {len(records)} cases in {wall:.0f} s, {len(skipped)} skipped")
    print()
    print("\n".join(rows))
    if median is not None:
        print(f"\nmedian |error| of the model (default efficiencies): {median * 100:.1f}%")
    print(f"wrote {args.out}; calibrate with: polyfleet perf calibrate {args.out}", file=sys.stderr)
    return 0


def _guess_accelerator(gpu: str) -> str | None:
    """Catalog id from a CUDA device name such as "NVIDIA H100 80GB HBM3" (None: unknown)."""
    name = gpu.lower()
    for needle, acc in (
        ("gh200", "nvidia-gh200"), ("h200", "nvidia-h200"), ("h100 pcie", "nvidia-h100-pcie"),
        ("h100 nvl", "nvidia-h100-nvl"), ("h100", "nvidia-h100-sxm"), ("gb200", "nvidia-gb200"),
        ("b200", "nvidia-b200"), ("a100-sxm4-40gb", "nvidia-a100-40gb"), ("a100", "nvidia-a100-80gb"),
        ("l40s", "nvidia-l40s"), ("l4", "nvidia-l4"), ("a10g", "nvidia-a10g"),
    ):  # fmt: skip
        if needle in name:
            return acc
    return None


if __name__ == "__main__":
    sys.exit(main())
