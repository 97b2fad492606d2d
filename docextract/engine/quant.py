"""Routed-expert storage: int8 / int4 weight-only quantisation, FP8 kept as stored, and
`docextract model quantize`.

Two phases, as in gpt-fast. At runtime `convert_experts` swaps each layer's 16-bit `Experts` for
`QuantizedExperts` while the model is still on the meta device, so only packed storage is ever
allocated; the loader then fills it either by quantising each layer's fused expert tensors as they
arrive from the shards (`ExpertQuantizer`, the weights `transform`: one layer's experts in 16 bits
at a time, never all of them) or by reading packed tensors as stored (a checkpoint written by
`quantize_checkpoint`, or an official FP8 release whose experts stay FP8). Offline,
`quantize_checkpoint` writes the packed tensors with a `quantization_config` so that the next load
skips the quantisation.

Formats (symmetric, absmax; the MoE kernels dequantise them in registers, kernels/moe/quant.py):
- int8: `qweight` int8 [E, N, K], `scales` float32 [E, N] (one per output channel);
- int4: `qweight` uint8 [E, N, K/2] (two's-complement nibbles, even input in the low one),
        `scales` bfloat16 [E, N, ceil(K/128)] (one per 128 inputs);
- fp8:  `qweight` float8_e4m3fn [E, N, K], `scales` float32 [E, N/128, K/128] (the release's
        128x128 `weight_scale_inv` blocks).
Only the routed experts are quantised (`qwen3_5.quant_predicate`); everything else keeps the
model's 16-bit dtype.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import kernels as K
from ..errors import ModelError, UsageError
from ..kernels.moe import quantize
from ..kernels.moe.quant import GROUP
from .config import ModelConfig, TextConfig, load_config
from .qwen3_5 import Experts, Model, SparseMoe, quant_predicate
from .weights import (
    INDEX_FILE,
    SINGLE_FILE,
    LoadReport,
    check_config,
    iter_weights,
    load_weights,
    model_tensors,
    plan_load,
    read_headers,
    read_tensors,
)

QUANT_METHOD = "docextract"
FORMAT_VERSION = 1
# What a user may ask for; "bf16" keeps the experts as the checkpoint stores them.
REQUESTS = ("bf16", "int8", "int4")
QUANTISED = ("int8", "int4")
BITS = {"int8": 8, "int4": 4, "fp8": 8}
# FP8 experts run as stored from this CUDA capability on (Ada, Hopper); below, 16-bit
FP8_CAPABILITY = (8, 9)
# int8 has one scale per output row (negligible memory) so it keeps fp32; int4 has one per 128
# inputs, where bf16 halves the scale bytes at no measurable cost.
SCALE_DTYPES = {"int8": torch.float32, "int4": torch.bfloat16, "fp8": torch.float32}
DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
PACKING = {
    "int8": "int8 [E, N, K], w = q * scales[e, n]",
    "int4": "uint8 [E, N, K/2], two 4-bit two's-complement values per byte (input 2j in the low "
            "nibble, 2j+1 in the high), w = q * scales[e, n, k // group_size]",
}
SHARD_BYTES = 4 * 1024 ** 3
FILL_CHUNK_BYTES = 256 * 1024 ** 2
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".pkl", ".ckpt")


def label(fmt: str) -> str:
    """The `engine.experts` name of a storage format: "float" experts are reported as bf16."""
    return "bf16" if fmt == "float" else fmt


def packed_layout(fmt: str, shape: tuple[int, int, int]) -> tuple[tuple, torch.dtype, tuple]:
    """(qweight shape, qweight dtype, scales shape) of an [E, N, K] expert tensor in `fmt`."""
    e, n, k = shape
    if fmt == "int8":
        return (e, n, k), torch.int8, (e, n)
    if fmt == "int4":
        return (e, n, k // 2), torch.uint8, (e, n, math.ceil(k / GROUP))
    if fmt == "fp8":
        return (e, n, k), torch.float8_e4m3fn, (e, math.ceil(n / GROUP), math.ceil(k / GROUP))
    raise ValueError(f"unknown packed expert format {fmt!r}")


class PackedExperts(nn.Module):
    """One stacked expert projection [E, N, K] (N outputs, K inputs) in a packed format."""

    def __init__(self, fmt: str, shape: tuple[int, int, int]):
        super().__init__()
        self.format = fmt
        self.float_shape = tuple(shape)
        q_shape, q_dtype, s_shape = packed_layout(fmt, self.float_shape)
        self.register_buffer("qweight", torch.empty(q_shape, dtype=q_dtype))
        self.register_buffer("scales", torch.empty(s_shape, dtype=SCALE_DTYPES[fmt]))

    def weights(self) -> K.ExpertWeights:
        return K.ExpertWeights(self.format, self.qweight, self.scales)

    def fill_(self, w: torch.Tensor) -> None:
        """Quantise w [E, N, K] (any float dtype and device) into this module's storage."""
        q = quantize_tensor(w, self.format, self.qweight.device)
        with torch.no_grad():
            self.qweight.copy_(q.data)
            self.scales.copy_(q.scale)


class QuantizedExperts(nn.Module):
    """Routed experts of one layer in int8, int4 or fp8: `gate_up_proj` [E, 2I, H] (gate rows
    first) and `down_proj` [E, H, I], each a `PackedExperts` (checkpoint names
    `mlp.experts.gate_up_proj.qweight`, `...gate_up_proj.scales`, ...)."""

    def __init__(self, fmt: str, config: TextConfig) -> None:
        super().__init__()
        e, h, i = config.num_experts, config.hidden_size, config.moe_intermediate_size
        self.format = fmt
        self.gate_up_proj = PackedExperts(fmt, (e, 2 * i, h))
        self.down_proj = PackedExperts(fmt, (e, h, i))

    def weights(self) -> tuple[K.ExpertWeights, K.ExpertWeights]:
        return self.gate_up_proj.weights(), self.down_proj.weights()


def quantize_tensor(w: torch.Tensor, fmt: str, device: torch.device | str | None = None
                    ) -> K.ExpertWeights:
    """w [E, N, K] float -> packed ExpertWeights in `fmt` on `device` (default: w's), with scales
    in SCALE_DTYPES[fmt]. Works a few experts at a time, so that the fp32 working copy stays
    under FILL_CHUNK_BYTES: a whole layer's (~8 GiB of temporaries for 35B-A3B) would not fit
    beside the model on a 24 GB card."""
    e, n, k = w.shape
    device = w.device if device is None else torch.device(device)
    q_shape, q_dtype, s_shape = packed_layout(fmt, (e, n, k))
    data = torch.empty(q_shape, dtype=q_dtype, device=device)
    scale = torch.empty(s_shape, dtype=SCALE_DTYPES[fmt], device=device)
    step = max(1, FILL_CHUNK_BYTES // (n * k * 4))
    for lo in range(0, e, step):
        part = quantize(w[lo : lo + step].to(device), fmt, scale_dtype=SCALE_DTYPES[fmt])
        data[lo : lo + step] = part.data
        scale[lo : lo + step] = part.scale
    return K.ExpertWeights(fmt, data, scale)


def _moe_layers(model: Model) -> Iterable[tuple[str, SparseMoe]]:
    for name, module in model.named_modules():
        if isinstance(module, SparseMoe):
            yield name, module


def convert_experts(model: Model, fmt: str) -> list[str]:
    """Swap every layer's routed experts for empty `QuantizedExperts` in `fmt` (call on the meta
    device, before any storage exists). Returns the fused checkpoint names they replace."""
    if fmt not in ("int8", "int4", "fp8"):
        raise UsageError(f"unknown expert format {fmt!r}", hint="use int8 or int4")
    replaced = []
    for name, moe in _moe_layers(model):
        names = [f"{name}.experts.gate_up_proj", f"{name}.experts.down_proj"]
        if not all(quant_predicate(n) for n in names):
            raise ModelError(f"engine: {name} is not a routed-expert module of the text model")
        moe.experts = QuantizedExperts(fmt, model.config.text_config)
        replaced += names
    return replaced


def quantize_model_(model: Model, fmt: str) -> Model:
    """Quantise an in-memory model's 16-bit routed experts in place, one layer at a time (only
    that layer's 16-bit experts and their fp32 copy are held at once beside the packed ones)."""
    for _, moe in _moe_layers(model):
        if not isinstance(moe.experts, Experts):
            raise ModelError("engine: the experts of this model are already quantised")
        with torch.device(moe.experts.gate_up_proj.device):
            q = QuantizedExperts(fmt, model.config.text_config)
        q.gate_up_proj.fill_(moe.experts.gate_up_proj)
        q.down_proj.fill_(moe.experts.down_proj)
        moe.experts = q
    return model


class ExpertQuantizer:
    """The `load_weights` transform that quantises each fused expert tensor [E, N, K] as it
    arrives and stores it in the converted model; every other tensor passes through."""

    def __init__(self, model: Model):
        self.targets: dict[str, PackedExperts] = {
            name: module for name, module in model.named_modules()
            if isinstance(module, PackedExperts)
        }
        self.model = model

    def checkpoint_shapes(self) -> dict[str, tuple[int, ...]]:
        """What the checkpoint must hold: the model's tensors with each packed pair replaced by
        the 16-bit fused tensor it is made from."""
        packed = {f"{n}.{leaf}" for n in self.targets for leaf in ("qweight", "scales")}
        shapes = {n: tuple(t.shape) for n, t in model_tensors(self.model).items() if n not in packed}
        shapes.update({n: m.float_shape for n, m in self.targets.items()})
        return shapes

    def __call__(self, name: str, tensor: torch.Tensor) -> torch.Tensor | None:
        module = self.targets.get(name)
        if module is None:
            return tensor
        module.fill_(tensor)
        return None


def stored_format(config: ModelConfig) -> str:
    """The expert format of a checkpoint written by `quantize_checkpoint`, its config checked."""
    q = config.quantization_config or {}
    where = "config: quantization_config"
    fmt = q.get("experts")
    if fmt not in QUANTISED:
        raise ModelError(f"{where}.experts is {fmt!r}, expected int8 or int4")
    expected = {"format_version": FORMAT_VERSION, "bits": BITS[fmt],
                "group_size": GROUP if fmt == "int4" else None,
                "scale_dtype": DTYPE_NAMES[SCALE_DTYPES[fmt]], "symmetric": True}
    for key, want in expected.items():
        if q.get(key) != want:
            raise ModelError(f"{where}.{key} is {q.get(key)!r}, expected {want!r} for {fmt} "
                             "experts", hint="quantise the original checkpoint again with this "
                                             "version of docextract")
    modules = q.get("modules")
    want_modules = expert_modules(config)
    if not isinstance(modules, list) or sorted(modules) != want_modules:
        raise ModelError(f"{where}.modules does not list the {len(want_modules)} routed-expert "
                         "modules of this config",
                         hint="is config.json from the same quantised checkpoint as the weights?")
    return fmt


def expert_modules(config: ModelConfig) -> list[str]:
    """The routed-expert module names of `config` (what `quantize_checkpoint` quantises)."""
    if not config.is_moe:
        return []
    return sorted(f"model.language_model.layers.{i}.mlp.experts"
                  for i in range(config.text_config.num_hidden_layers))


def _native_fp8(model_dir: Path | None, config: ModelConfig) -> bool:
    """An FP8 release whose every routed expert is F8_E4M3 in 128x128 blocks that tile the fused
    gate_up rows (I a multiple of 128): the MoE kernels run those experts as stored. Without a
    folder (config only), the config's block size and widths decide."""
    if config.weight_block_size not in (None, (GROUP, GROUP)):
        return False
    if config.text_config.moe_intermediate_size % GROUP:
        return False
    if model_dir is None:
        return True
    entries = read_headers(model_dir)
    experts = [n for n in entries if quant_predicate(n) and not n.endswith("_scale_inv")]
    return bool(experts) and all(entries[n].dtype == "F8_E4M3" and f"{n}_scale_inv" in entries
                                 for n in experts)


def resolve_experts(model_dir: str | Path | None, config: ModelConfig, requested: str,
                    capability: tuple[int, int] | None = None) -> tuple[str, bool]:
    """(storage format of the routed experts, whether to quantise them while loading).

    "bf16" keeps what the checkpoint stores: 16-bit experts as "float", a quantised checkpoint's
    int8/int4, an FP8 release's experts as "fp8" when the kernels' blocks fit (else dequantised
    to "float"). "int8"/"int4" quantise 16-bit or FP8 experts while loading; a checkpoint already
    quantised loads only as what it holds. `model_dir` None: decided from the config alone.
    `capability`: the CUDA device's (major, minor); FP8 experts stay FP8 only from sm_89 on (the
    first GPUs with FP8 conversions: `fp8e4nv` does not compile below), and are dequantised to
    16 bits while loading on older GPUs (`--experts int8` keeps 8 bits there)."""
    if requested not in REQUESTS:
        raise UsageError(f"unknown expert format {requested!r}", hint=f"use one of {', '.join(REQUESTS)}")
    if config.quant_method == QUANT_METHOD:
        stored = stored_format(config)
        if requested not in ("bf16", stored):
            raise ModelError(f"this checkpoint holds {stored} experts; they cannot be loaded as "
                             f"{requested}", hint=f"use --experts {stored}, or quantise the "
                                                  "original checkpoint")
        return stored, False
    if requested in QUANTISED:
        if not config.is_moe:
            raise ModelError(f"--experts {requested}: this dense model has no routed experts",
                             hint="use --experts bf16")
        return requested, True
    folder = None if model_dir is None else Path(model_dir)
    if config.quant_method == "fp8" and config.is_moe and _native_fp8(folder, config):
        if capability is None or tuple(capability) >= FP8_CAPABILITY:
            return "fp8", False
    return "float", False


def widened_fp8_note(config: ModelConfig, loaded: str,
                     capability: tuple[int, int] | None) -> str | None:
    """A warning when an FP8 release's experts were widened to 16 bits because the GPU predates
    FP8 (sm_89): the experts then take about twice the memory the release suggests."""
    if (config.quant_method != "fp8" or not config.is_moe or loaded != "bf16"
            or capability is None or tuple(capability) >= FP8_CAPABILITY):
        return None
    major, minor = capability
    return (f"this GPU (sm_{major}{minor}) has no FP8: the checkpoint's FP8 experts were widened "
            "to 16 bits while loading, about twice their size in memory; --experts int8 keeps "
            "them at 8 bits")


def load_model(model_dir: str | Path, config: ModelConfig, dtype: torch.dtype,
               device: str | torch.device, experts: str = "bf16") -> tuple[Model, LoadReport, str]:
    """Build and fill the model of `model_dir` with its routed experts as `experts` asks
    (see `resolve_experts`). -> (model, loader report, the experts' format as engine.experts)."""
    dev = torch.device(device)
    capability = torch.cuda.get_device_capability(dev) if dev.type == "cuda" else None
    fmt, quantise = resolve_experts(model_dir, config, experts, capability)
    convert = None if fmt == "float" else (lambda m: convert_experts(m, fmt))
    check_config(model_dir, config)
    model = Model.empty(config, dtype, device, convert)
    if quantise:
        transform = ExpertQuantizer(model)
        report = load_weights(model, model_dir, config, transform=transform,
                              shapes=transform.checkpoint_shapes())
    else:
        report = load_weights(model, model_dir, config)
    return model, report, label(fmt)


def model_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and buffer of `model` (each tied tensor once)."""
    return sum(t.numel() * t.element_size() for t in model_tensors(model).values())


def memory_by_mode(model_dir: str | Path | None, config: ModelConfig,
                   dtype: torch.dtype = torch.bfloat16) -> dict[str, dict[str, Any]]:
    """Exact weight bytes after `Engine.load` with each `--experts` choice, from the modules
    themselves built on the meta device (no weight is read, nothing is allocated)."""
    out: dict[str, dict[str, Any]] = {}
    for requested in REQUESTS:
        try:
            fmt, _ = resolve_experts(model_dir, config, requested)
        except ModelError:
            continue
        with torch.device("meta"):
            model = Model(config, dtype)
            if fmt != "float":
                convert_experts(model, fmt)
        n = model_bytes(model)
        out[f"experts_{requested}"] = {"format": label(fmt), "bytes": n,
                                       "gib": round(n / 1024 ** 3, 3)}
    if out.get("experts_bf16", {}).get("format") == "fp8":
        # GPUs before sm_89 widen an FP8 release's experts to 16 bits (see resolve_experts).
        with torch.device("meta"):
            n = model_bytes(Model(config, dtype))
        out["experts_bf16_before_sm89"] = {"format": "bf16", "bytes": n,
                                           "gib": round(n / 1024 ** 3, 3)}
    return out


def quantization_config(config: ModelConfig, fmt: str) -> dict[str, Any]:
    """The `quantization_config` of a checkpoint whose routed experts are stored in `fmt`; an
    FP8 source's block size (its other FP8 weights stay) and config are kept beside."""
    out = {
        "quant_method": QUANT_METHOD, "format_version": FORMAT_VERSION, "experts": fmt,
        "bits": BITS[fmt], "group_size": GROUP if fmt == "int4" else None, "symmetric": True,
        "scale_dtype": DTYPE_NAMES[SCALE_DTYPES[fmt]], "packing": PACKING[fmt],
        "tensors": {"qweight": "<module>.gate_up_proj.qweight, <module>.down_proj.qweight",
                    "scales": "<module>.gate_up_proj.scales, <module>.down_proj.scales"},
        "modules": expert_modules(config),
    }
    if config.quant_method == "fp8":
        out["weight_block_size"] = list(config.weight_block_size or (GROUP, GROUP))
        out["source_quantization_config"] = config.quantization_config
    return out


def _side_files(src: Path) -> list[Path]:
    """Every top-level file of `src` except weights, the index and config.json."""
    return sorted(p for p in src.iterdir() if p.is_file() and p.name not in (INDEX_FILE, "config.json")
                  and not p.name.endswith(_WEIGHT_SUFFIXES))


def quantize_checkpoint(src: str | Path, dst: str | Path, experts: str,
                        progress: Callable[[int, int], None] | None = None, *,
                        max_shard_bytes: int = SHARD_BYTES) -> Path:
    """Write `dst`: the checkpoint `src` with its routed experts quantised to `experts` (int8 or
    int4), packed tensors and scales as `QuantizedExperts` names them, a `quantization_config`
    in config.json, and src's other files (tokenizer, chat template, preprocessing, licence);
    every other tensor is copied as stored (an FP8 release's other FP8 weights stay FP8 with
    their scales, MTP tensors stay). `Engine.load(dst)` reads it without quantising again.

    Reads src shard by shard (one layer's experts at a time); `progress(done, total)` gets the
    source bytes processed. `dst` must not exist or be an empty folder; it appears only once
    complete. Returns dst."""
    src, dst = Path(src), Path(dst)
    if experts not in QUANTISED:
        raise UsageError(f"cannot quantise experts to {experts!r}", hint="use --experts int4 or int8")
    config = load_config(src)
    if config.quant_method == QUANT_METHOD:
        raise ModelError(f"{src} is already quantised ({config.quantization_config.get('experts')} "
                         "experts)", hint="quantise the original 16-bit or FP8 checkpoint")
    if not config.is_moe:
        raise ModelError(f"{src} is a dense model: it has no routed experts to quantise")
    if dst.exists() and (not dst.is_dir() or any(dst.iterdir())):
        raise UsageError(f"{dst} already exists and is not an empty folder",
                         hint="choose a new --out folder")
    with torch.device("meta"):
        model = Model(config, torch.bfloat16)
        convert_experts(model, experts)
    quantizer = ExpertQuantizer(model)
    plan = plan_load(src, config, quantizer.checkpoint_shapes())
    expert_plan = dataclasses.replace(
        plan, sources=[s for s in plan.sources if s.target in quantizer.targets])
    expert_bytes: dict[str, int] = {}
    for s in expert_plan.sources:
        expert_bytes[s.target] = (expert_bytes.get(s.target, 0) + s.weight.nbytes
                                  + (s.scale.nbytes if s.scale is not None else 0))
    read = {s.weight.name for s in expert_plan.sources}
    read |= {s.scale.name for s in expert_plan.sources if s.scale is not None}
    entries = read_headers(src)
    copied: dict[Path, list[str]] = {}
    for name, entry in entries.items():
        if name not in read:
            copied.setdefault(entry.file, []).append(name)
    total = sum(e.nbytes for e in entries.values())

    def tensors():
        for name, tensor in iter_weights(expert_plan):
            q = quantize_tensor(tensor, experts)
            yield expert_bytes[name], [(f"{name}.qweight", q.data), (f"{name}.scales", q.scale)]
        for path, names in copied.items():
            for name, tensor in read_tensors(path, names):
                yield entries[name].nbytes, [(name, tensor)]

    dst.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.partial-", dir=dst.parent))
    try:
        _write_shards(work, tensors(), max_shard_bytes, progress, total)
        data = json.loads((src / "config.json").read_text(encoding="utf-8"))
        data["quantization_config"] = quantization_config(config, experts)
        (work / "config.json").write_text(json.dumps(data, indent=2) + "\n")
        for f in _side_files(src):
            shutil.copy2(f, work / f.name)
        written = load_config(work)
        with torch.device("meta"):
            check = Model(written, torch.bfloat16)
            convert_experts(check, experts)
        plan_load(work, written, {n: tuple(t.shape) for n, t in model_tensors(check).items()})
        if dst.exists():
            dst.rmdir()
        os.replace(work, dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dst


def _write_shards(work: Path, items: Iterable[tuple[int, list[tuple[str, torch.Tensor]]]],
                  max_bytes: int, progress: Callable[[int, int], None] | None, total: int) -> list[str]:
    """Write `items` ((source bytes, [(name, tensor)])) into safetensors shards of at most
    `max_bytes` (a bigger tensor gets its own), renamed model-0000k-of-0000n at the end with an
    index; a lone shard is model.safetensors."""
    from safetensors.torch import save_file

    pending: dict[str, torch.Tensor] = {}
    size, written, temp_names, owners, done = 0, 0, [], {}, 0

    def flush() -> None:
        nonlocal pending, size, written
        if not pending:
            return
        name = f"part-{len(temp_names):05d}.safetensors"
        save_file({k: v.contiguous() for k, v in pending.items()}, str(work / name),
                  metadata={"format": "pt"})
        for key in pending:
            owners[key] = len(temp_names)
        temp_names.append(name)
        written += size
        pending, size = {}, 0

    for source_bytes, tensors in items:
        for name, t in tensors:
            nbytes = t.numel() * t.element_size()
            if pending and size + nbytes > max_bytes:
                flush()
            pending[name] = t
            size += nbytes
        done += source_bytes
        if progress is not None:
            progress(done, total)
    flush()
    if len(temp_names) == 1:
        (work / temp_names[0]).rename(work / SINGLE_FILE)
        return [SINGLE_FILE]
    final = [f"model-{k + 1:05d}-of-{len(temp_names):05d}.safetensors" for k in range(len(temp_names))]
    for old, new in zip(temp_names, final):
        (work / old).rename(work / new)
    weight_map = {name: final[k] for name, k in sorted(owners.items())}
    index = {"metadata": {"total_size": written}, "weight_map": weight_map}
    (work / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return final
