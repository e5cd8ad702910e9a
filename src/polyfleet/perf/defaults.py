"""Named constants of the performance model, each with what it is and where it comes from.

Values marked *estimate* are polyfleet's judgement, not a published measurement; every
function that uses one takes it as a keyword argument so a caller can override it.
"""

from __future__ import annotations

HBM_UTILISATION: float = 0.90
"""Fraction of device memory usable for weights + KV cache (the rest: activations,
CUDA graphs, allocator slack).  vLLM's default ``gpu_memory_utilization`` is 0.9."""

MEMORY_EFFICIENCY: float = 0.80
"""Achieved fraction of peak HBM bandwidth in memory-bound decode.  *Estimate*: tuned
memory-bound kernels typically reach ~80-90% of peak bandwidth; we take the low end."""

COMPUTE_EFFICIENCY: float = 0.60
"""Achieved fraction of dense peak FLOP/s in prefill GEMMs.  *Estimate*: large GEMMs
reach 70-80% of peak in isolation; attention, norms and launch overheads lower it."""

EFFICIENCY_BY_ACCELERATOR: dict[str, tuple[float, float]] = {
    "amd-mi300x": (0.38, 0.70),
    "amd-mi325x": (0.38, 0.70),
}
"""Per-accelerator (compute, memory) efficiencies where a like-for-like microbenchmark
shows the chip reaching a smaller share of its datasheet peak than the H100 on which
``COMPUTE_EFFICIENCY``/``MEMORY_EFFICIENCY`` are anchored (the TensorRT-LLM points
validate them on Nvidia).  Rule: ``default * min(1, chip share / H100 share)`` from one
harness run on both chips, so only the chip-to-chip difference is taken from the
benchmark, not the end-to-end overheads.  A chip whose microbenchmark matches or beats
the H100 keeps the global defaults (never raised: its serving software's overheads are
not measured); see ``EFFICIENCY_SOURCES``.  Other chips: the global defaults."""

EFFICIENCY_SOURCES: dict[str, str] = {
    "amd-mi300x": (
        "compute 0.60 x 44.6/69.8 = 0.38: Azure AI-benchmarking-guide (ND_MI300X_v5 and ND_H100_v5 "
        "results; same harness, 10,000 warm-ups, random data) FP8 GEMM 1159.5 TFLOPS of 2600 on "
        "MI300X (hipBLASLt, 6144x12288x12288) vs 1382.2 of 1979 on H100 (cuBLASLt, 32768^3); "
        "cross-check: stas00/ml-engineering max-achievable matmul BF16 668.4/1300 (51.4%, ROCm 6.3) "
        "vs 794.5/989 (80.3%): 0.60 x 0.64 = 0.38. Memory 0.80 x 77.2/88.7 = 0.70: the same Azure "
        "guide's HBM triad 4.09 of 5.3 TB/s vs 2.97 of 3.35 TB/s. Undated pages read 2026-11."
    ),
    "amd-mi325x": (
        "*estimate*: MI300X's 0.38/0.70, as the MI325X has the same CDNA 3 compute dies and ROCm "
        "kernels (only the HBM3E stacks differ); no like-for-like MI325X benchmark was read"
    ),
    "nvidia-h200": "kept: Azure FP8 GEMM 1366.3/1979 (69.0%) and triad 4.15/4.8 TB/s match the H100",
    "intel-gaudi2": "kept: stas00/ml-engineering max-achievable matmul FP8 826.5/865 (95.5%) >= H100's 70.9%",
    "intel-gaudi3": "kept: stas00/ml-engineering max-achievable matmul FP8 1289.5/1677 (76.9%) >= H100 70.9%",
    "google-tpu-v5e": "kept: JAX Pallas TPU matmul docs, BF16 8192^3 at 92.3% of peak",
}
"""Where each ``EFFICIENCY_BY_ACCELERATOR`` entry (or the choice to keep the defaults)
comes from.  No published bandwidth microbenchmark was found for Gaudi, TPU or
Trainium; their memory efficiency is the global estimate."""


def efficiency_for(accelerator: str) -> tuple[float, float]:
    """(compute, memory) efficiency defaults of one accelerator id (the global ones if none)."""
    return EFFICIENCY_BY_ACCELERATOR.get(accelerator, (COMPUTE_EFFICIENCY, MEMORY_EFFICIENCY))


STEP_OVERHEAD_S_PER_LAYER: dict[str, float] = {"neuron": 150.5e-6}
"""Fixed seconds per layer of one pass through the model (a decode step or a prefill),
per software stack: kernel launches, synchronisation and collective latency the roofline
does not contain.  neuron 150.5 us: *fitted* (``bench/latency_validation.py``; 139.3 us
before the catalog's Trainium1 row moved to 0.88 TB/s in 2026-12, 150.6 us before attention FLOPs
were counted) as the median over
Neuron's published trn1 batch-1 decoder latencies (13 rows, Neuron 2.18, Llama 3 8B/70B,
Llama 2 70B, Mistral 7B on 16 Trainium chips; ``examples/published_latency.csv``) of
(measured TPOT - roofline TPOT) / layers; checked on Trainium2 rows it was not fitted to
(median |error| 21.0%, max 28.9%).  Stacks not listed: 0 per layer (cuda's all-reduce
latency is ``ALLREDUCE_LATENCY_S``); xla, synapse, rocm and maia have no
batch-1 latency data here; their fixed cost is per step (``STEP_OVERHEAD_S_PER_STEP``)."""

MFU_BY_STACK: dict[str, float] = {
    "cuda": 0.40,  # measured: Llama 3 405B, 38-43% BF16 MFU on 16k H100
    "xla": 0.46,  # measured: PaLM 540B, 46.2% MFU on TPU v4
    "rocm": 0.30,  # estimate: below CUDA for software maturity
    "neuron": 0.35,  # estimate
    "synapse": 0.35,  # estimate
    "maia": 0.30,  # estimate
}
"""Model FLOPs utilisation of large-scale training, per software stack."""

MFU_SOURCES: dict[str, str] = {
    "cuda": "The Llama 3 Herd of Models (Meta, 2024): 38-43% BF16 MFU, 405B on 16k H100",
    "xla": "PaLM (Chowdhery et al., 2022): 46.2% MFU, 540B on 6144 TPU v4",
    "rocm": "estimate: below CUDA, less mature software stack",
    "neuron": "estimate",
    "synapse": "estimate",
    "maia": "estimate",
}
"""Where each ``MFU_BY_STACK`` value comes from; "estimate" marks polyfleet's guesses."""

TRAINING_BYTES_PER_PARAM: float = 16.0
"""Training state bytes per parameter for mixed-precision Adam: bf16 weights 2 + bf16
grads 2 + fp32 master weights 4 + Adam m 4 + Adam v 4 (ZeRO, Rajbhandari et al. 2020).
Activations are added separately (``ACTIVATION_BYTES_FACTOR``)."""

MAX_TENSOR_PARALLEL: int = 64
"""Largest tensor-parallel group (chips per inference replica) the model will consider."""

MIN_BATCH: int = 8
"""Requests a replica must hold at once when the planner sizes its tensor-parallel
degree.  With 1 (the bare "fits one request" rule) a 70B model lands on 2 H100s with
room for 4 requests and ~10x fewer tokens/s per chip than on 4; serving engines are
sized for a working batch.  The planner falls back to 1 when 8 does not fit in one
instance, so a model that barely fits is still placed.  *Estimate*."""

ALLREDUCE_LATENCY_S: float = 10e-6
"""Fixed cost of one tensor-parallel all-reduce, seconds (kernel launch, synchronisation
and link latency, independent of message size).  *Estimate*: NCCL all-reduces of small
messages within one NVLink domain take on the order of 5-20 microseconds; we take 10.
The inference model charges 2 all-reduces per layer (after attention and after the MLP)
when ``t > 1``, each moving ``2(t-1)/t`` of the activations over one direction of the
scale-up link."""

SCALEUP_GROUP: dict[str, tuple[int, float]] = {
    "nvidia-h100-nvl": (2, 128.0),
    "nvidia-h100-pcie": (2, 128.0),
}
"""Bridged parts: ``(chips a bridge joins, GB/s bidirectional per chip beyond them)``.  The
H100 NVL and H100 PCIe boards take an NVLink bridge between TWO cards (600 GB/s within the
pair); a tensor-parallel group of more than 2 crosses PCIe Gen5 x16 between pairs, 128 GB/s
bidirectional (64 GB/s each way), and a ring all-reduce runs at its slowest hop.  Sources:
NVIDIA's H100 page, spec table (H100 NVL and PCIe: NVLink 600 GB/s, PCIe Gen5 128 GB/s;
https://www.nvidia.com/en-us/data-center/h100/, the catalog's source, 2026-08) and
https://www.aiminingco.com/gpu/h100-nvl/specs (the NVL bridge joins two cards at 600 GB/s
bidirectional; read 2026-12-07); Azure's NC H100 v5 health checks find 12 of the 18 NVLink
links active and 256.6 GB/s one way GPU0->GPU1 P2P, of the 300 that 12 links carry
(https://github.com/Azure/azurehpc-health-checks/issues/162, 2026-06-10).  The PCIe figure is
the link's peak, not a measured all-reduce rate.  Parts not listed: one scale-up domain
(``polyfleet.perf.layout``)."""

FABRIC_BY_ACCELERATOR: dict[str, str] = {
    "nvidia-h100-nvl": "nvlink-bridge",
    "nvidia-h100-pcie": "nvlink-bridge",
    "nvidia-l40s": "pcie",
    "nvidia-l4": "pcie",
    "nvidia-a10": "pcie",
    "nvidia-rtx-pro-6000": "pcie",
    "amd-mi300x": "xgmi",
    "amd-mi325x": "xgmi",
}
"""The point-to-point fabric a chip's tensor-parallel all-reduce crosses (the catalog's
``scaleup_gbps`` is that fabric's line rate).  Parts not listed: a switched fabric
(NVSwitch, TPU ICI, NeuronLink...), which keeps the line rate and ``ALLREDUCE_LATENCY_S``.
A bridged part's group beyond its bridge (``SCALEUP_GROUP``) crosses "pcie"."""

LINK_EFFICIENCY: dict[str, float] = {
    "pcie": 0.65,
    "nvlink-bridge": 0.855,
    "xgmi": 0.75,
}
"""Share of a point-to-point fabric's line rate a tensor-parallel all-reduce achieves
(protocol overhead, CRC, flow control and, on PCIe, the collective library's own
overhead), per fabric of ``FABRIC_BY_ACCELERATOR``; see ``LINK_EFFICIENCY_SOURCES``.
Switched NVLink keeps 1: NCCL's NVLink SHARP all-reduce on 8 H100 reaches an algorithm
bandwidth of ~275 GB/s (busBw ~480 GB/s; NCCL maintainer S. Jeaugey,
https://github.com/NVIDIA/nccl-tests/issues/212, 2024-05-06), at least the 257 GB/s a ring
at the full 450 GB/s line rate gives (``450 / (2*7/8)``), so the line-rate ring is not
optimistic there."""

LINK_EFFICIENCY_SOURCES: dict[str, str] = {
    "pcie": (
        "measured: NCCL all_reduce_perf bus bandwidth 37.6-41.7 GB/s on 7-8 RTX PRO 6000 Blackwell "
        "over PCIe Gen5 x16 (63 GB/s one way; P2P copies 53-56 GB/s), best 41.1: 41.1/63 = 0.65 "
        "(https://github.com/voipmonitor/rtx6kpro/blob/master/hardware/pcie-bandwidth.md @ 41d9d68, "
        "2026-03-20, read 2026-12-07); taken for every PCIe generation (a share of the line rate)"
    ),
    "nvlink-bridge": (
        "measured: 256.6 GB/s one way GPU0->GPU1 P2P over the H100 NVL bridge of 300 GB/s "
        "(Azure NC H100 v5, https://github.com/Azure/azurehpc-health-checks/issues/162, 2026-06-10): 0.855"
    ),
    "xgmi": (
        "AMD: each MI300X xGMI link is rated 64 GB/s; CRC and protocol overhead leave ~48 GB/s usable, "
        "0.75 (AMD ROCm blog 'Understanding RCCL Bandwidth and xGMI Performance on AMD Instinct MI300X', "
        "2025-03-02, https://rocm.blogs.amd.com/software-tools-optimization/mi300x-rccl-xgmi/README.html); "
        "MI325X has the same 7 x 128 GB/s Infinity Fabric links"
    ),
}
"""Where each ``LINK_EFFICIENCY`` comes from."""

ALLREDUCE_LATENCY_S_BY_FABRIC: dict[str, float] = {"pcie": 24e-6}
"""Fixed cost of one all-reduce on a fabric where it is measured to differ from
``ALLREDUCE_LATENCY_S``.  pcie 24 us: NCCL all-reduce of 256 B to 64 KB on 8 RTX PRO 6000
over PCIe Gen5 takes 24.1-24.6 us (same page as ``LINK_EFFICIENCY_SOURCES["pcie"]``, its
"Custom Allreduce vs NCCL" table); an 8-GPU figure, taken for any PCIe group."""


SCALEUP_DOMAIN_CHIPS: dict[str, int] = {"nvidia-gb200": 72, "nvidia-gb300": 72}
"""Chips one NVLink switch domain joins where it is larger than an 8-GPU node: the GB200
and GB300 NVL72 racks (72 GPUs, one NVLink domain, 1.8 TB/s per GPU; NVIDIA GB200 NVL72
page https://www.nvidia.com/en-us/data-center/gb200-nvl72/, the catalog's source; GB300:
glennklockwood.com/garden/processors/B300, both read 2026-12).  A system of such a part
can run one tensor/expert-parallel group over up to this many chips
(``bench/mlperf_validation.py``); a cloud offer's instance is still its own node
(``chips_per_node``), as a rack's VMs are not promised one domain."""


def fabric_of(accelerator: str, t: int) -> str:
    """The fabric a ``t``-chip tensor-parallel group of one accelerator id crosses:
    ``FABRIC_BY_ACCELERATOR``, "pcie" beyond a bridge's group, "switched" otherwise."""
    group = SCALEUP_GROUP.get(accelerator)
    if group is not None and t > group[0]:
        return "pcie"
    return FABRIC_BY_ACCELERATOR.get(accelerator, "switched")


SCALING_BASE_CHIPS: int = 512
"""Chip count up to which training is taken to scale perfectly (scaling efficiency 1).
MLPerf Training scaling results for GPT-3 175B are reported relative to 512 chips."""

SCALING_POINTS: dict[str, tuple[int, float]] = {
    "cuda": (11_616, 0.65),  # published: GPT-3 175B, 11,616 H100, 65% of 512-chip per-chip rate
    "xla": (6_144, 0.77),  # published: GPT-3 175B, 6,144 TPU v5p, 77% of 512-chip per-chip rate
}
"""Published (chips, scaling efficiency relative to ``SCALING_BASE_CHIPS``) per stack.
``polyfleet.perf.training`` fits ``eff(n) = 1 - alpha * log2(n / 512)`` through each
point; stacks without a point use the cuda ``alpha`` (*estimate*)."""

SCALING_SOURCES: dict[str, str] = {
    "cuda": "MLPerf Training v3.1/v4.0 GPT-3 175B, as reported by NVIDIA: 65% at 11,616 H100 vs 512",
    "xla": "MLPerf Training v3.1/v4.0 GPT-3 175B, as reported by Google: 77% at 6,144 TPU v5p vs 512",
    "rocm": "estimate: cuda alpha",
    "neuron": "estimate: cuda alpha",
    "synapse": "estimate: cuda alpha",
    "maia": "estimate: cuda alpha",
}
"""Where each stack's scaling-efficiency slope comes from; "estimate" marks guesses."""

SCALING_EFFICIENCY_FLOOR: float = 0.30
"""Lowest scaling efficiency the log-linear fit may give.  *Estimate*: keeps the fit
from going to 0 or negative far beyond the published points."""

ACTIVATION_BYTES_FACTOR: float = 34.0
"""Activation bytes per layer = ``34 * seq * micro_batch * hidden`` with 16-bit
activations and selective activation recomputation (Korthikanti et al. 2022, "Reducing
Activation Recomputation in Large Transformer Models", section 5)."""

TRAINING_SEQ_LEN: int = 4096
"""Training sequence length for activation memory.  *Estimate*: common pre-training length."""

TRAINING_MICRO_BATCH: int = 1
"""Sequences per micro-batch per data-parallel rank for activation memory.  *Estimate*:
the smallest, so activation memory is a lower bound."""

MAX_PIPELINE_STAGES: int = 8
"""Most pipeline stages (nodes) one inference replica may span when the caller gives
``chips_per_node`` and the model does not fit in one node's tensor-parallel group."""

INTERNODE_GBPS: float = 50.0
"""Inter-node bandwidth for pipeline hand-offs, GB/s one way per node: one 400 Gb/s
NIC (InfiniBand NDR / 400 GbE).  *Estimate*: a conservative single-link figure; H100 and
H200 nodes commonly carry eight such NICs, but a stage hand-off is small and rarely
striped over all of them.  Each of the ``p`` hand-offs per decode token moves the
activations ``n*hidden*2`` bytes (bf16) of the micro-batch; ``inference_perf`` takes it
as the ``internode_gbps`` keyword."""

INTERNODE_LATENCY_S: float = 20e-6
"""Fixed cost of one pipeline hand-off between nodes, seconds (RDMA send/receive,
synchronisation, kernel launch).  *Estimate*: inter-node point-to-point messages take a
few to tens of microseconds; we take 20."""

MFU_REFERENCE_CHIPS: dict[str, int] = {"cuda": 16_384, "xla": 6_144}
"""Chip counts at which the default ``MFU_BY_STACK`` values were measured (Llama 3 on 16k
H100; PaLM on 6,144 TPU v4).  The training model applies to the defaults only the scaling
loss beyond these sizes, so the published loss is not counted twice.  Stacks without a
published MFU have no reference: their MFU is an estimate and gets the whole loss."""

BATCHING: str = "serial"
"""How ``inference_perf`` schedules prompts; the default is "serial" (v1).  "serial":
each prompt is a separate compute-bound prefill added to the request's time, outside
the decode step.  "chunked": continuous batching with chunked prefill, every decode step
also carries its share of prompt tokens, so prefill and decode share one step budget
(TPOT) and TTFT depends on the batch.  Both are *models* of a scheduler, not
measurements; see ``polyfleet.perf.inference``."""

# --- precision, derates, overheads, MoE, serving (issue 14) ----------------------------

PRECISION_COMPUTE_SCALE: dict[str, float] = {
    "bf16": 1.25,
    "fp16": 1.25,
    "fp8": 1.0,
    "int8": 1.0,
    "fp6": 0.55,
    "fp4": 0.55,
}
"""Multiplier on the compute efficiency by the precision the GEMMs run at, relative to
fp8 (the precision ``COMPUTE_EFFICIENCY`` is anchored on: the TensorRT-LLM FP8 points).
bf16 1.25: end to end, fp8 reaches a smaller share of its (2x) peak than bf16 of its own
(measured on an H200 with PyTorch, issue 14: about 40% of fp8 peak vs 55% of bf16, a
ratio of 0.73); 0.60/0.73 = 0.82 would exceed the best bf16 GEMM share measured on the
H100 (794.5 of 989 TFLOPS, 80%, stas00/ml-engineering), so bf16 takes 0.75 = 0.60 x 1.25
(*estimate*).  fp4 0.55: *fitted* on the six TensorRT-LLM B200 FP4 rows (Llama 3.3 70B)
over the grid 0.4-0.7 (B200 median |error| 4.1%, signed -0.6% when fitted; 6.2%, -3.4%
since attention FLOPs are counted); the six GB200 FP4 rows are held out (median |error|
6.6%, now 6.1%).  fp6: fp4's, *estimate* (no FP6 row).  Keys are
compute precisions, not weight dtypes."""

CLOCK_DERATE: dict[str, float] = {
    "nvidia-h100-pcie": 0.79,
    "nvidia-h100-nvl": 0.85,
    "nvidia-l40s": 0.85,
    "intel-gaudi3": 0.90,
}
"""Sustained share of the datasheet (boost-clock) compute peak on power- or clock-limited
parts; multiplies the compute peak only (HBM bandwidth is not clock-bound).  Parts not
listed: 1.  See ``CLOCK_DERATE_SOURCES``."""

CLOCK_DERATE_SOURCES: dict[str, str] = {
    "nvidia-h100-pcie": (
        "measured: 1384 MHz average steady clock of 1755 MHz boost under sustained GEMM load at "
        "350 W (reanimator/bee bible-local/docs/benchmark-clock-calibration.md, 2026-04-06; one card, a "
        "server not designed for it: 0.79 is a low-side figure)"
    ),
    "nvidia-h100-nvl": "*estimate*: 350-400 W board vs the 700 W SXM, same dies; between PCIe (0.79) and 1",
    "nvidia-l40s": "*estimate*: 350 W board, 2520 MHz boost; power-limited like the H100 PCIe, less deeply",
    "intel-gaudi3": (
        "*estimate*: the catalog's 1677 TFLOPS is a boost-clock figure; stas00/ml-engineering measured "
        "76.9% max-achievable matmul, kept in the efficiency; 0.90 for sustained serving power"
    ),
}
"""Where each ``CLOCK_DERATE`` comes from; *estimate* marks polyfleet's judgement."""


def clock_derate(accelerator: str) -> float:
    """Sustained share of the compute peak of one accelerator id (1 when not derated)."""
    return CLOCK_DERATE.get(accelerator, 1.0)


STEP_OVERHEAD_S_PER_STEP: dict[str, float] = {
    "cuda": 0.6e-3,
    "rocm": 0.8e-3,
    "synapse": 0.8e-3,
    "xla": 0.6e-3,
}
"""Fixed seconds per engine step (scheduling, sampling, detokenisation, host-device sync)
on top of ``STEP_OVERHEAD_S_PER_LAYER``, per stack.  cuda 0.6 ms: *fitted* coarsely on the
36 TensorRT-LLM H100/H200 max-throughput rows (``bench/perf_validation.py``: their median
|error| is 6.8%/8.2% at 0, 6.7%/6.3% at 0.3 ms, 6.2%/4.2% at 0.6 ms, 6.2%/6.4% at 1.0 ms,
6.3%/9.2% at 1.5 ms), a CUDA-graph engine's scheduling and sampling; an eager PyTorch
loop is much slower (issue 14 measured
5.2 ms for a batch-1 fp8 8B step on an H200 where bandwidth alone gives 2.1 ms: 3.1 ms of
overhead), which ``polyfleet perf calibrate`` on ``bench/gpu_measure.py`` output fits.
rocm/synapse 0.8 ms, xla 0.6 ms: *estimates*.  neuron: its per-layer figure contains it."""

MOE_EXPERT_MEMORY_SCALE: float = 0.72
"""Share of the dense memory efficiency grouped-GEMM expert kernels reach when reading
expert weights.  Issue 14 measured Mixtral-8x7B decode on an H200 25-54% slower than the
dense-efficiency prediction; the experts are 45 of its 47B parameters, so expert reads
run at 1/1.25 = 0.80 to 1/1.54 = 0.65 of the dense share; 0.72 is the midpoint of those
(*fitted* on that measurement, not on a published row)."""

CHUNK_TOKENS: int = 2048
"""Prompt tokens one chunked-prefill step carries for one request (the engine's per-step
token budget).  *Estimate*: vLLM's ``max_num_batched_tokens`` is set in this range on
datacenter GPUs; TTFT with chunking is ``ceil(input / CHUNK_TOKENS)`` steps plus queueing."""

SLO_PERCENTILE: float = 0.99
"""Percentile at which ``ttft_ms``/``tpot_ms`` targets are met under Poisson arrivals
when a workload does not say (``slo_percentile``)."""
