"""`docextract model info DIR`: what a checkpoint holds, from config.json and the safetensors
headers only (no weight is read).

`expected_shapes(config)` is the Qwen3.5 tensor layout implied by a config (the names and shapes
a correct checkpoint must store); `describe(model_dir)` counts parameters (total and active per
token), the layer pattern, experts, dtypes, quantisation, the vision tower and the memory the
weights take after `Engine.load` with each `--experts` choice: exact bytes of the modules the
engine builds (on the meta device, nothing read or allocated), the older per-parameter estimate,
and with `measure=True` the bytes and time of real loads.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from ..errors import ModelError, UsageError
from .config import ModelConfig, load_config

TEXT = "model.language_model."
VISION = "model.visual."
GiB = 1024 ** 3
# Assumed by the memory estimates: group-wise weight-only expert quantisation with one bf16
# scale per group of this many input columns.
QUANT_GROUP_SIZE = 128


def expected_shapes(config: ModelConfig, *, fused_experts: bool = True) -> dict[str, tuple]:
    """Checkpoint tensor name -> shape for `config` (no `mtp.*`). Routed experts fused per layer
    (`experts.gate_up_proj` [E, 2I, H], `experts.down_proj` [E, H, I]) or, with
    `fused_experts=False`, one [I, H] / [H, I] tensor per expert and projection."""
    t, v = config.text_config, config.vision_config
    h = t.hidden_size
    out: dict[str, tuple] = {TEXT + "embed_tokens.weight": (t.vocab_size, h)}
    for i, kind in enumerate(t.layer_types):
        p = f"{TEXT}layers.{i}."
        out[p + "input_layernorm.weight"] = (h,)
        out[p + "post_attention_layernorm.weight"] = (h,)
        if kind == "linear_attention":
            a = p + "linear_attn."
            nv = t.linear_num_value_heads
            out.update({
                a + "in_proj_qkv.weight": (t.conv_dim, h),
                a + "in_proj_z.weight": (t.linear_value_dim, h),
                a + "in_proj_b.weight": (nv, h),
                a + "in_proj_a.weight": (nv, h),
                a + "conv1d.weight": (t.conv_dim, 1, t.linear_conv_kernel_dim),
                a + "A_log": (nv,),
                a + "dt_bias": (nv,),
                a + "norm.weight": (t.linear_value_head_dim,),
                a + "out_proj.weight": (h, t.linear_value_dim),
            })
        else:
            a = p + "self_attn."
            q_out, kv_out = t.num_attention_heads * t.head_dim, t.num_key_value_heads * t.head_dim
            projections = {"q_proj": (2 * q_out, h), "k_proj": (kv_out, h),
                           "v_proj": (kv_out, h), "o_proj": (h, q_out)}
            for name, shape in projections.items():
                out[f"{a}{name}.weight"] = shape
                if t.attention_bias:
                    out[f"{a}{name}.bias"] = (shape[0],)
            out[a + "q_norm.weight"] = (t.head_dim,)
            out[a + "k_norm.weight"] = (t.head_dim,)
        m = p + "mlp."
        if t.is_moe:
            e, inter = t.num_experts, t.moe_intermediate_size
            shared = t.shared_expert_intermediate_size
            out[m + "gate.weight"] = (e, h)
            if fused_experts:
                out[m + "experts.gate_up_proj"] = (e, 2 * inter, h)
                out[m + "experts.down_proj"] = (e, h, inter)
            else:
                for k in range(e):
                    out[f"{m}experts.{k}.gate_proj.weight"] = (inter, h)
                    out[f"{m}experts.{k}.up_proj.weight"] = (inter, h)
                    out[f"{m}experts.{k}.down_proj.weight"] = (h, inter)
            out.update(_mlp(m + "shared_expert.", h, shared))
            out[m + "shared_expert_gate.weight"] = (1, h)
        else:
            out.update(_mlp(m, h, t.intermediate_size))
    out[TEXT + "norm.weight"] = (h,)
    d = v.hidden_size
    merged = v.merged_hidden_size
    out[VISION + "patch_embed.proj.weight"] = (d, v.in_channels, v.temporal_patch_size,
                                               v.patch_size, v.patch_size)
    out[VISION + "patch_embed.proj.bias"] = (d,)
    out[VISION + "pos_embed.weight"] = (v.num_position_embeddings, d)
    for j in range(v.depth):
        b = f"{VISION}blocks.{j}."
        for name, shape in (("norm1", (d,)), ("norm2", (d,))):
            out[f"{b}{name}.weight"] = shape
            out[f"{b}{name}.bias"] = shape
        for name, (o, i) in (("attn.qkv", (3 * d, d)), ("attn.proj", (d, d)),
                             ("mlp.linear_fc1", (v.intermediate_size, d)),
                             ("mlp.linear_fc2", (d, v.intermediate_size))):
            out[f"{b}{name}.weight"] = (o, i)
            out[f"{b}{name}.bias"] = (o,)
    out[VISION + "merger.norm.weight"] = (d,)
    out[VISION + "merger.norm.bias"] = (d,)
    for name, (o, i) in (("linear_fc1", (merged, merged)), ("linear_fc2", (v.out_hidden_size, merged))):
        out[f"{VISION}merger.{name}.weight"] = (o, i)
        out[f"{VISION}merger.{name}.bias"] = (o,)
    if not config.tie_word_embeddings:
        out["lm_head.weight"] = (t.vocab_size, h)
    return out


def _mlp(prefix: str, hidden: int, inter: int) -> dict[str, tuple]:
    return {prefix + "gate_proj.weight": (inter, hidden), prefix + "up_proj.weight": (inter, hidden),
            prefix + "down_proj.weight": (hidden, inter)}


def _category(name: str) -> str:
    if name.startswith("mtp."):
        return "mtp"
    if name.startswith(VISION):
        return "vision"
    if ".mlp.experts." in name:
        return "routed_experts"
    if "embed_tokens" in name:
        return "embedding"
    if name.startswith("lm_head"):
        return "lm_head"
    return "text_other"


def count_parameters(shapes: dict[str, tuple], config: ModelConfig) -> dict[str, int]:
    """Parameters by category, `total` (without mtp) and `active_per_token` (a text token: all of
    the language model except the routed experts it is not sent to; no vision, no mtp)."""
    counts: Counter = Counter()
    for name, shape in shapes.items():
        if name.endswith("_scale_inv"):
            continue
        counts[_category(name)] += math.prod(shape)
    for key in ("embedding", "lm_head", "text_other", "routed_experts", "vision", "mtp"):
        counts.setdefault(key, 0)
    text = counts["embedding"] + counts["lm_head"] + counts["text_other"]
    routed = counts["routed_experts"]
    active_routed = routed
    if config.is_moe:
        t = config.text_config
        active_routed = routed * t.num_experts_per_tok // t.num_experts
    out = dict(counts)
    out["total"] = text + routed + counts["vision"]
    out["text"] = text + routed
    out["active_per_token"] = text + active_routed
    return out


def _memory(counts: dict[str, int]) -> dict[str, Any]:
    """Weight memory (no activations, no cache) with the routed experts in each format and
    everything else in bf16."""
    rest = counts["total"] - counts["routed_experts"]
    routed = counts["routed_experts"]
    scale = 2 / QUANT_GROUP_SIZE
    per_param = {"bf16": 2.0, "int8": 1.0 + scale, "int4": 0.5 + scale}
    out = {}
    for fmt, size in per_param.items():
        total = rest * 2 + routed * size
        out[f"experts_{fmt}"] = {"bytes": int(total), "gib": round(total / GiB, 3)}
    out["assumes"] = (f"weights only; non-expert tensors in bf16; int8/int4 experts group-wise "
                      f"with one bf16 scale per {QUANT_GROUP_SIZE} columns; mtp not loaded")
    return out


def _layer_pattern(layer_types: list[str]) -> str:
    letters = "".join("F" if t == "full_attention" else "L" for t in layer_types)
    for size in range(1, len(letters) + 1):
        unit = letters[:size]
        if len(letters) % size == 0 and unit * (len(letters) // size) == letters:
            return f"{unit} x {len(letters) // size}" if size < len(letters) else letters
    return letters


def _logical_shapes(entries: dict, config: ModelConfig) -> dict[str, tuple]:
    """Stored shapes with packed expert tensors (`model quantize` output) counted as the 16-bit
    tensors they stand for, their scales left out."""
    fused = expected_shapes(config)
    out: dict[str, tuple] = {}
    for name, entry in entries.items():
        base, _, leaf = name.rpartition(".")
        if leaf in ("qweight", "scales") and base in fused:
            if leaf == "qweight":
                out[base] = fused[base]
            continue
        out[name] = entry.shape
    return out


def measure_memory(model_dir: str | Path, config: ModelConfig, device: str = "cpu"
                   ) -> dict[str, dict[str, Any]]:
    """Load the model once per `--experts` choice on `device` (bf16) and report the bytes of the
    loaded parameters and buffers, the load time and, on CUDA, the allocator's peak during the
    load (what quantising while loading costs on top)."""
    import time

    import torch

    from .engine import _device
    from .quant import REQUESTS, load_model, model_bytes

    dev = _device(device)
    out: dict[str, dict[str, Any]] = {}
    for requested in REQUESTS:
        if dev.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
        start = time.perf_counter()
        try:
            model, _, fmt = load_model(model_dir, config, torch.bfloat16, dev, requested)
        except ModelError:
            continue
        row: dict[str, Any] = {"format": fmt, "bytes": model_bytes(model),
                               "load_s": round(time.perf_counter() - start, 3)}
        row["gib"] = round(row["bytes"] / GiB, 3)
        if dev.type == "cuda":
            row["peak_load_gib"] = round((torch.cuda.max_memory_allocated(dev) - base) / GiB, 3)
        out[f"experts_{requested}"] = row
        del model
    return out


def describe(model_dir: str | Path, *, measure: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Everything `docextract model info DIR` shows, as a JSON-ready dict; with `measure`, also
    `memory_measured` from real loads on `device` (see `measure_memory`)."""
    from .quant import memory_by_mode
    from .weights import checkpoint_files, read_headers

    model_dir = Path(model_dir)
    config = load_config(model_dir)
    t, v = config.text_config, config.vision_config
    try:
        checkpoint_files(model_dir)
        entries = read_headers(model_dir)
        source = "safetensors headers"
    except ModelError as exc:
        if "no model.safetensors" not in exc.message:
            raise
        entries = None
        source = "config.json (no weight files found)"
    if entries is not None:
        shapes = _logical_shapes(entries, config)
        dtypes = dict(sorted(Counter(e.dtype for e in entries.values()).items()))
        stored_bytes = sum(e.nbytes for e in entries.values())
        fp8 = sum(1 for e in entries.values() if e.dtype in ("F8_E4M3", "F8_E5M2"))
        scales = sum(1 for n in entries if n.endswith("_scale_inv"))
        files = len({e.file for e in entries.values()})
    else:
        shapes, dtypes, stored_bytes = expected_shapes(config), {}, None
        fp8 = scales = files = 0
    counts = count_parameters(shapes, config)
    full = t.full_attention_layers
    info: dict[str, Any] = {
        "path": str(model_dir),
        "architecture": (config.architectures or [None])[0],
        "model_type": config.model_type,
        "counted_from": source,
        "parameters": {
            "total": counts["total"], "active_per_token": counts["active_per_token"],
            "text": counts["text"], "embedding": counts["embedding"],
            "lm_head": counts["lm_head"], "routed_experts": counts["routed_experts"],
            "vision": counts["vision"], "mtp_not_loaded": counts["mtp"],
        },
        "layers": {
            "count": t.num_hidden_layers, "pattern": _layer_pattern(t.layer_types),
            "linear_attention": len(t.linear_attention_layers), "full_attention": len(full),
            "full_attention_layers": full,
        },
        "text": {
            "hidden_size": t.hidden_size, "vocab_size": t.vocab_size,
            "attention_heads": t.num_attention_heads, "kv_heads": t.num_key_value_heads,
            "head_dim": t.head_dim, "linear_key_heads": t.linear_num_key_heads,
            "linear_value_heads": t.linear_num_value_heads,
            "tied_embeddings": config.tie_word_embeddings,
            "max_position_embeddings": t.max_position_embeddings,
        },
        "experts": ({"count": t.num_experts, "top_k": t.num_experts_per_tok,
                     "intermediate_size": t.moe_intermediate_size,
                     "shared_intermediate_size": t.shared_expert_intermediate_size}
                    if t.is_moe else None),
        "dense_intermediate_size": None if t.is_moe else t.intermediate_size,
        "vision": {"depth": v.depth, "hidden_size": v.hidden_size, "heads": v.num_heads,
                   "patch_size": v.patch_size, "spatial_merge_size": v.spatial_merge_size,
                   "parameters": counts["vision"]},
        "dtypes": dtypes,
        "quantization": {
            "method": config.quant_method, "weight_block_size":
                list(config.weight_block_size) if config.weight_block_size else None,
            "fp8_tensors": fp8, "scale_tensors": scales,
            "modules_to_not_convert": len(config.modules_to_not_convert),
            "experts": (config.quantization_config or {}).get("experts"),
        },
        "files": files,
        "stored_bytes": stored_bytes,
        "memory": memory_by_mode(model_dir if entries is not None else None, config),
        "memory_estimate": _memory(counts),
    }
    if measure:
        if entries is None:
            raise UsageError(f"--measure loads the weights, and {model_dir} has none",
                             hint="run it on a folder with the safetensors files")
        info["memory_measured"] = measure_memory(model_dir, config, device)
    return info
