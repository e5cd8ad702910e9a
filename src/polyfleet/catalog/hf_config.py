"""A model card from a Hugging Face ``config.json``.

Reads the architecture numbers polyfleet needs (layers, hidden, heads, KV heads, head dim,
MLA latent, experts, context, dtype, hybrid linear/full layout) and counts parameters from
them: embeddings (+ an untied output head), per layer attention (q, k, v, o projections or
the MLA down/up projections) and the MLP (dense ``3 x hidden x intermediate``, or per
expert with ``moe_intermediate_size``, routed + shared).  Norms and biases are left out
(well under 0.1 %).  ``params_b`` may be given instead when the model card states it.

Architectures whose KV cache the card cannot describe are rejected by name
(``UNSUPPORTED``), never approximated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from polyfleet.catalog.models import ModelCard
from polyfleet.errors import SpecError
from polyfleet.yamlio import loads_json, read_input

#: model_type -> why polyfleet cannot size its KV cache
UNSUPPORTED = {
    "deepseek_v4": "DeepSeek-V4's compressed (CSA/HCA) attention has no per-token KV formula here",
}
_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "float8_e4m3fn": "fp8"}


#: config.json keys read as counts or sizes: each must be a whole number >= 0 when present
COUNT_KEYS = (
    "num_hidden_layers", "n_layer", "num_layers", "hidden_size", "d_model", "n_embd",
    "num_attention_heads", "n_head", "num_key_value_heads", "head_dim", "kv_lora_rank",
    "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "q_lora_rank", "n_routed_experts",
    "num_local_experts", "num_experts", "num_experts_per_tok", "num_experts_per_token",
    "moe_top_k", "vocab_size", "intermediate_size", "moe_intermediate_size", "n_shared_experts",
    "shared_expert_intermediate_size", "first_k_dense_replace", "max_position_embeddings",
    "n_positions",
)  # fmt: skip
#: config.json keys read as mappings
MAPPING_KEYS = ("text_config", "quantization_config")


def _check_shapes(cfg: dict[str, Any]) -> None:
    """Refuse, naming the key, a count that is not a whole number or a section that is not a
    mapping: the arithmetic below would raise a TypeError (a list // int) or compare a str."""
    for key in MAPPING_KEYS:
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise ValueError(f"{key}: expected a mapping, got {cfg[key]!r:.40}")
    for key in COUNT_KEYS:
        value = cfg.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ValueError(f"{key}: expected a whole number >= 0, got {value!r:.40}")


def _get(cfg: dict[str, Any], *names: str) -> Any:
    for name in names:
        if cfg.get(name) is not None:
            return cfg[name]
    return None


def _dtype(cfg: dict[str, Any]) -> str:
    quant = cfg.get("quantization_config") or {}
    method = str(quant.get("quant_method", "")).lower()
    if method in ("mxfp4", "nvfp4"):
        return "fp4"
    if method == "fp8" or "fp8" in str(quant.get("fmt", "")).lower():
        return "fp8"
    return _DTYPES.get(str(_get(cfg, "torch_dtype", "dtype") or "bfloat16"), "bf16")


def _full_layers(cfg: dict[str, Any], layers: int) -> int | None:
    """Full-attention layers of a hybrid linear/full model; None when not hybrid."""
    types = cfg.get("layer_types")
    if isinstance(types, list) and any("linear" in str(t) for t in types):
        return sum(1 for t in types if str(t) == "full_attention")
    interval = cfg.get("full_attention_interval")
    if isinstance(interval, int) and interval > 1:
        return layers // interval
    return None


def card_from_config(
    cfg: dict[str, Any],
    *,
    name: str,
    params_b: float | None = None,
    active_params_b: float | None = None,
    source: str = "",
    as_of: str = "",
) -> ModelCard:
    """A ``ModelCard`` for ``cfg`` (a parsed config.json; see the module docstring)."""
    _check_shapes(cfg)
    cfg = {**cfg, **(cfg.get("text_config") or {})}  # multimodal configs nest the language model
    _check_shapes(cfg)
    model_type = str(cfg.get("model_type", ""))
    if model_type in UNSUPPORTED:
        raise ValueError(f"model_type {model_type!r} is not supported: {UNSUPPORTED[model_type]}")
    layers = _get(cfg, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _get(cfg, "hidden_size", "d_model", "n_embd")
    heads = _get(cfg, "num_attention_heads", "n_head")
    if not (layers and hidden and heads):
        raise ValueError("config.json lacks num_hidden_layers, hidden_size or num_attention_heads")
    kv_heads = _get(cfg, "num_key_value_heads") or heads
    head_dim = _get(cfg, "head_dim") or hidden // heads
    kv_lora = cfg.get("kv_lora_rank")
    rope = cfg.get("qk_rope_head_dim")
    mla = bool(kv_lora and rope)
    experts = _get(cfg, "n_routed_experts", "num_local_experts", "num_experts")
    per_token = _get(cfg, "num_experts_per_tok", "num_experts_per_token", "moe_top_k") if experts else None
    full = _full_layers(cfg, layers)
    attention = "mla" if mla else ("hybrid" if full else ("gqa" if kv_heads < heads else "mha"))
    total, active = _count_params(cfg, layers, hidden, heads, kv_heads, head_dim, experts, per_token, mla)
    counted = params_b is None
    return ModelCard(
        name=name,
        params_b=round(params_b if params_b is not None else total / 1e9, 2),
        active_params_b=(
            round(active_params_b if active_params_b is not None else active / 1e9, 2) if experts else None
        ),
        layers=layers,
        hidden=hidden,
        heads=heads,
        kv_heads=None if mla else kv_heads,
        head_dim=None if mla else head_dim,
        attention=attention,
        kv_latent_dim=(kv_lora + rope) if mla else None,
        full_attention_layers=full,
        experts=experts,
        experts_per_token=per_token,
        dtype=_dtype(cfg),
        context_tokens=_get(cfg, "max_position_embeddings", "n_positions"),
        source=source,
        as_of=as_of,
        notes=(
            f"From config.json (model_type {model_type or '?'})"
            + ("; params counted from the config (norms/biases left out)" if counted else "")
            + (f"; hybrid: {full} of {layers} layers full attention, the rest linear" if full else "")
            + "."
        ),
    )


def _count_params(
    cfg: dict[str, Any],
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    experts: int | None,
    per_token: int | None,
    mla: bool,
) -> tuple[float, float]:
    """(total, active) parameters counted from the config."""
    vocab = cfg.get("vocab_size") or 0
    embed = vocab * hidden * (1 if cfg.get("tie_word_embeddings") else 2)
    if mla:
        q_lora = cfg.get("q_lora_rank")
        qk = cfg.get("qk_nope_head_dim", 128) + cfg["qk_rope_head_dim"]
        v = cfg.get("v_head_dim", 128)
        q = hidden * q_lora + q_lora * heads * qk if q_lora else hidden * heads * qk
        kv = hidden * (cfg["kv_lora_rank"] + cfg["qk_rope_head_dim"]) + cfg["kv_lora_rank"] * heads * (
            qk - cfg["qk_rope_head_dim"] + v
        )
        attn = q + kv + heads * v * hidden
    else:
        attn = hidden * head_dim * (2 * heads + 2 * kv_heads)
    inter = cfg.get("intermediate_size") or 4 * hidden
    dense_mlp = 3 * hidden * inter
    if not experts:
        total = embed + layers * (attn + dense_mlp)
        return total, total
    moe_inter = cfg.get("moe_intermediate_size") or inter
    shared = (cfg.get("n_shared_experts") or (1 if cfg.get("shared_expert_intermediate_size") else 0)) or 0
    shared_inter = cfg.get("shared_expert_intermediate_size") or moe_inter
    dense_layers = cfg.get("first_k_dense_replace") or 0
    moe_layers = layers - dense_layers
    expert = 3 * hidden * moe_inter
    router = hidden * experts
    shared_mlp = shared * 3 * hidden * shared_inter
    total = (
        embed
        + layers * attn
        + dense_layers * dense_mlp
        + moe_layers * (experts * expert + shared_mlp + router)
    )
    active = (
        embed
        + layers * attn
        + dense_layers * dense_mlp
        + moe_layers * ((per_token or 1) * expert + shared_mlp + router)
    )
    return total, active


def read_config(path: Path) -> dict[str, Any]:
    """A config.json as a dict; bad input is a SpecError naming the file."""
    try:
        data = loads_json(read_input(path, "config").decode("utf-8"), str(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read config: {exc}", file=str(path)) from exc
    except json.JSONDecodeError as exc:
        raise SpecError(f"not JSON: {exc.msg}", file=str(path), line=exc.lineno) from exc
    if not isinstance(data, dict):
        raise SpecError("expected a config.json object", file=str(path))
    return data
