"""Checkpoint loading: safetensors shards -> the model's parameters, strictly.

Three steps. `read_headers` parses every shard's header (names, dtypes, shapes) without touching
the data and checks the files are whole. `plan_load` maps each stored tensor onto a model tensor:
same name, or one expert of a fused expert tensor (`mlp.experts.{e}.{gate,up,down}_proj.weight`
-> `mlp.experts.gate_up_proj` [E, 2I, H] / `down_proj` [E, H, I]), FP8 weights paired with their
`weight_scale_inv`, `mtp.*` skipped; anything missing, unexpected, mis-shaped or (for integer and
FP8 model tensors) stored in another dtype is one ModelError before any data is read. Where the
model keeps routed experts in FP8 (`experts.gate_up_proj.qweight` / `.scales`, see quant.py), an
FP8 checkpoint's per-expert weights and their block scales are assembled as stored, never
dequantised. `iter_weights` then reads the shards one by one (memory-mapped) and yields
each finished model tensor, so peak memory stays near the model size plus one layer's experts.
Only safetensors files are ever opened; pickle checkpoints are refused.
"""

from __future__ import annotations

import json
import math
import re
import struct
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ModelError
from .config import SUPPORTED_QUANT_METHODS, ModelConfig

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
DEFAULT_FP8_BLOCK = (128, 128)
# Bytes per element of each safetensors dtype.
DTYPE_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
               "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
FP8_DTYPES = ("F8_E4M3", "F8_E5M2")
# safetensors dtype names of the torch dtypes that must be stored exactly as the model holds them.
EXACT_DTYPES = {torch.int8: "I8", torch.uint8: "U8", torch.float8_e4m3fn: "F8_E4M3"}
_EXPERT = re.compile(r"^(?P<prefix>.+\.mlp\.experts)\.(?P<e>\d+)\."
                     r"(?P<part>gate_proj|up_proj|down_proj)\.weight$")
_LIST = 10


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the safetensors header describes it."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    file: Path

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * DTYPE_SIZES[self.dtype]


def read_header(path: Path) -> dict[str, TensorEntry]:
    """The tensors of one safetensors file, validated against the file size (truncation)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise ValueError("shorter than its 8-byte header length")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8 or n > 100_000_000:
                raise ValueError(f"header length {n} exceeds the file")
            header = json.loads(f.read(n).decode("utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"checkpoint file missing: {path}") from exc
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelError(f"corrupt safetensors file {path}: {exc}",
                         hint="the download may be incomplete; fetch the file again") from exc
    if not isinstance(header, dict):
        raise ModelError(f"corrupt safetensors file {path}: header is not a JSON object")
    data_size = size - 8 - n
    out: dict[str, TensorEntry] = {}
    end_max = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = info["dtype"], tuple(int(s) for s in info["shape"])
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"corrupt safetensors file {path}: bad entry for {name}") from exc
        if dtype not in DTYPE_SIZES:
            raise ModelError(f"unsupported tensor dtype {dtype} for {name} in {path}")
        entry = TensorEntry(name, dtype, shape, path)
        if end - begin != entry.nbytes or begin < 0:
            raise ModelError(f"corrupt safetensors file {path}: {name} has {end - begin} bytes "
                             f"for {entry.nbytes}")
        end_max = max(end_max, end)
        out[name] = entry
    if end_max > data_size:
        raise ModelError(f"truncated safetensors file {path}: {data_size} data bytes, header needs "
                         f"{end_max}", hint="the download is incomplete; fetch the file again")
    return out


def checkpoint_files(model_dir: str | Path) -> list[Path]:
    """The weight files of a checkpoint folder: the index's shards, or `model.safetensors`."""
    model_dir = Path(model_dir)
    index = model_dir / INDEX_FILE
    if index.is_file():
        weight_map = _weight_map(index)
        files = list(dict.fromkeys(weight_map.values()))
        # A shard is a file of this folder, named as the Hub names it: never a path that could
        # leave the folder (`../../etc/passwd`, `/etc/passwd`, `sub/../../x`).
        outside = [f for f in files if not _is_shard_name(f)]
        if outside:
            raise ModelError(f"{index} names shard(s) that are not safetensors files of the "
                             f"model folder: {_names(outside)}",
                             hint="a shard is a plain file name ending in .safetensors; this "
                                  "index is damaged or was not written by a Hub checkpoint")
        missing = [f for f in files if not (model_dir / f).is_file()]
        if missing:
            raise ModelError(f"{index} names shard(s) that are not in the folder: "
                             f"{_names(missing)}", hint="the download is incomplete; pull again")
        return [model_dir / f for f in files]
    if (model_dir / SINGLE_FILE).is_file():
        return [model_dir / SINGLE_FILE]
    pickles = sorted(p.name for p in model_dir.glob("*") if p.suffix in (".bin", ".pt", ".pth"))
    hint = ("only safetensors checkpoints are loaded (pickle files are never opened)" if pickles
            else "pass a Hugging Face checkpoint folder, or `docextract model pull REPO_ID`")
    raise ModelError(f"no {SINGLE_FILE} or {INDEX_FILE} in {model_dir}", hint=hint)


def _is_shard_name(name: str) -> bool:
    return (name.endswith(".safetensors") and name == Path(name).name and "\\" not in name
            and name not in (".", "..") and "\x00" not in name)


def _weight_map(index: Path) -> dict[str, str]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        weight_map = data["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelError(f"corrupt checkpoint index {index}: {exc}") from exc
    except RecursionError:
        raise ModelError(f"corrupt checkpoint index {index}: the JSON nests too deeply") from None
    return {str(k): str(v) for k, v in weight_map.items()}


def read_headers(model_dir: str | Path) -> dict[str, TensorEntry]:
    """Every stored tensor of the checkpoint, across shards, checked against the index."""
    model_dir = Path(model_dir)
    entries: dict[str, TensorEntry] = {}
    for path in checkpoint_files(model_dir):
        for name, entry in read_header(path).items():
            if name in entries:
                raise ModelError(f"tensor {name} is stored twice: in {entries[name].file.name} "
                                 f"and {path.name}")
            entries[name] = entry
    index = model_dir / INDEX_FILE
    if index.is_file():
        wrong = [n for n, f in _weight_map(index).items()
                 if n not in entries or entries[n].file.name != Path(f).name]
        if wrong:
            raise ModelError(f"{index} lists tensors its shards do not hold: {_names(wrong)}",
                             hint="the index and the shards come from different downloads")
    return entries


_TEXT_LAYER = re.compile(r"^model\.language_model\.layers\.(\d+)\.")
_VISION_BLOCK = re.compile(r"^model\.visual\.blocks\.(\d+)\.")
_EMBED = "model.language_model.embed_tokens.weight"


def check_config(model_dir: str | Path, config: ModelConfig) -> None:
    """config.json's sizes against the checkpoint's tensors, from the headers only, before the
    model is built: the embedding is [vocab_size, hidden_size] and the checkpoint holds exactly
    num_hidden_layers text layers and `depth` vision blocks. A config that would have docextract
    allocate a model the weights cannot fill is refused here, not after the allocation."""
    entries = read_headers(model_dir)
    t, v = config.text_config, config.vision_config
    problems = []
    embed = entries.get(_EMBED)
    if embed is not None and embed.shape != (t.vocab_size, t.hidden_size):
        problems.append(f"vocab_size {t.vocab_size:,} x hidden_size {t.hidden_size:,}, but "
                        f"{_EMBED} is {list(embed.shape)}")
    for label, pattern, declared in (("text layers", _TEXT_LAYER, t.num_hidden_layers),
                                     ("vision blocks", _VISION_BLOCK, v.depth)):
        found = {int(m.group(1)) for n in entries if (m := pattern.match(n))}
        if found and max(found) + 1 != declared:
            problems.append(f"{declared:,} {label} declared, the weights hold {max(found) + 1:,}")
    if problems:
        raise ModelError(f"config.json of {model_dir} does not match its weights: "
                         + "; ".join(problems),
                         hint="is config.json from the same release as the weights?")


@dataclass
class _Source:
    """A stored weight (with its FP8 scale, if any) and where it goes in the model."""

    weight: TensorEntry
    scale: TensorEntry | None
    target: str
    # None: the whole target; else (expert, first row, last row) of a fused expert tensor.
    slot: tuple[int, int, int] | None = None


@dataclass
class LoadPlan:
    """What `iter_weights` reads: each model tensor and the stored tensors that make it."""

    model_dir: Path
    shapes: dict[str, tuple[int, ...]]
    sources: list[_Source]
    files: list[Path]
    skipped: list[str] = field(default_factory=list)
    dtypes: dict[str, int] = field(default_factory=dict)
    fp8_block: tuple[int, int] = DEFAULT_FP8_BLOCK
    quantization: str | None = None
    expert_layout: str | None = None

    @property
    def pieces(self) -> dict[str, int]:
        return Counter(s.target for s in self.sources)


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:_LIST])
    return f"{shown} (and {len(names) - _LIST} more)" if len(names) > _LIST else shown


def plan_load(model_dir: str | Path, config: ModelConfig,
              shapes: Mapping[str, tuple[int, ...]],
              exact_dtypes: Mapping[str, str] | None = None) -> LoadPlan:
    """Map the stored tensors onto `shapes` (model tensor name -> shape), from headers only.

    `exact_dtypes` (model tensor name -> safetensors dtype) names tensors that must be stored in
    exactly that dtype (packed integer and FP8 weights). Raises one ModelError listing every
    missing, unexpected, mis-shaped and wrongly typed tensor."""
    from .quant import QUANT_METHOD

    model_dir = Path(model_dir)
    exact_dtypes = exact_dtypes or {}
    method = config.quant_method
    if method is not None and method not in (*SUPPORTED_QUANT_METHODS, QUANT_METHOD):
        raise ModelError(f"quantisation method {method!r} of this checkpoint is not supported",
                         hint="use the BF16 or the official FP8 release, or a checkpoint written "
                              "by `docextract model quantize`")
    entries = read_headers(model_dir)
    block = config.weight_block_size or DEFAULT_FP8_BLOCK
    shapes = {k: tuple(v) for k, v in shapes.items()}
    scales = {n[: -len("_scale_inv")]: e for n, e in entries.items() if n.endswith("_scale_inv")}
    skipped, unexpected, misshaped, other = [], [], [], []
    sources: list[_Source] = []
    layouts = set()
    for name, entry in entries.items():
        if name.startswith("mtp."):
            skipped.append(name)
            continue
        if name.endswith("_scale_inv"):
            continue
        scale = scales.pop(name, None)
        if entry.dtype in FP8_DTYPES and scale is None:
            other.append(f"{name} is {entry.dtype} without {name}_scale_inv")
            continue
        if scale is not None:
            if entry.dtype not in FP8_DTYPES or len(entry.shape) != 2:
                unexpected.append(scale.name)
                scale = None
            else:
                want = tuple(math.ceil(d / b) for d, b in zip(entry.shape, block))
                if scale.shape != want:
                    misshaped.append(f"{scale.name} {list(scale.shape)} (expected {list(want)} "
                                     f"for blocks of {list(block)})")
                    continue
        if name in shapes:
            if entry.shape != shapes[name]:
                misshaped.append(f"{name} {list(entry.shape)} (expected {list(shapes[name])})")
                continue
            if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
                layouts.add("fused")
            sources.append(_Source(entry, scale, name))
            continue
        m = _EXPERT.match(name)
        fused, raw_fp8 = None, False
        if m is not None:
            part = m.group("part")
            fused = f"{m.group('prefix')}.{'down_proj' if part == 'down_proj' else 'gate_up_proj'}"
            # FP8 experts kept as stored: the pieces fill the packed weight and its scales
            raw_fp8 = fused not in shapes and f"{fused}.qweight" in shapes and scale is not None
            if raw_fp8:
                fused = f"{fused}.qweight"
        if fused is None or fused not in shapes or len(shapes[fused]) != 3:
            unexpected.append(name)
            continue
        n_exp, rows, cols = shapes[fused]
        e = int(m.group("e"))
        if e >= n_exp:
            unexpected.append(f"{name} (the model has {n_exp} experts)")
            continue
        half = rows // 2 if part != "down_proj" else rows
        want = (half, cols)
        if entry.shape != want:
            misshaped.append(f"{name} {list(entry.shape)} (expected {list(want)})")
            continue
        first = half if part == "up_proj" else 0
        layouts.add("per_expert")
        if raw_fp8:
            bo, bi = block
            scales_name = fused[: -len("qweight")] + "scales"
            want = (n_exp, math.ceil(rows / bo), math.ceil(cols / bi))
            if first % bo or shapes.get(scales_name) != want:
                misshaped.append(f"{name}: FP8 blocks of {list(block)} do not tile "
                                 f"{scales_name} {list(shapes.get(scales_name, ()))}")
                continue
            sources.append(_Source(entry, None, fused, (e, first, first + half)))
            sources.append(_Source(scale, None, scales_name,
                                   (e, first // bo, first // bo + scale.shape[0])))
            continue
        sources.append(_Source(entry, scale, fused, (e, first, first + half)))
    unexpected += sorted(s.name for s in scales.values() if not s.name.startswith("mtp."))
    missing = _missing(shapes, sources)
    duplicated = _duplicated(sources)
    mistyped = sorted(f"{s.weight.name} {s.weight.dtype} (expected {exact_dtypes[s.target]})"
                      for s in sources
                      if s.target in exact_dtypes and s.weight.dtype != exact_dtypes[s.target])
    problems = []
    for label, names in (("missing", missing), ("unexpected", sorted(unexpected)),
                         ("wrong shape", misshaped), ("wrong dtype", mistyped),
                         ("stored twice", duplicated), ("unreadable", other)):
        if names:
            problems.append(f"{len(names)} {label}: {_names(names)}")
    if problems:
        raise ModelError(f"checkpoint {model_dir} does not fit the model ({config.model_type}): "
                         + "; ".join(problems),
                         hint="is config.json from the same release as the weights?")
    dtypes = Counter(e.dtype for e in entries.values())
    n_fp8 = sum(1 for s in sources if s.scale is not None)
    return LoadPlan(
        model_dir=model_dir, shapes=shapes, sources=sources,
        files=list(dict.fromkeys(e.file for e in entries.values())), skipped=sorted(skipped),
        dtypes=dict(sorted(dtypes.items())), fp8_block=block,
        quantization="fp8" if n_fp8 else None,
        expert_layout="mixed" if len(layouts) > 1 else next(iter(layouts), None))


def _missing(shapes: Mapping[str, tuple[int, ...]], sources: list[_Source]) -> list[str]:
    covered: dict[str, set] = {}
    for s in sources:
        covered.setdefault(s.target, set()).add(None if s.slot is None else s.slot[:2])
    missing = []
    for name, shape in shapes.items():
        got = covered.get(name)
        if name.endswith(".scales") and got is not None and None not in got:
            # FP8 block scales come with their weights, whose pieces are checked below
            continue
        if got is None:
            missing.append(name)
        elif None not in got:
            n_exp, rows = shape[0], shape[1]
            fused = name.removesuffix(".qweight")
            prefix = fused.rsplit(".", 1)[0]
            if fused.endswith("gate_up_proj"):
                want = [(e, r, p) for e in range(n_exp)
                        for r, p in ((0, "gate_proj"), (rows // 2, "up_proj"))]
            else:
                want = [(e, 0, "down_proj") for e in range(n_exp)]
            missing += [f"{prefix}.{e}.{p}.weight" for e, r, p in want if (e, r) not in got]
    return missing


def _duplicated(sources: list[_Source]) -> list[str]:
    by_target: dict[str, list[_Source]] = {}
    for s in sources:
        by_target.setdefault(s.target, []).append(s)
    dup = []
    for group in by_target.values():
        if any(s.slot is None for s in group):
            if len(group) > 1:
                dup += [s.weight.name for s in group]
            continue
        slots = Counter(s.slot[:2] for s in group)
        dup += [s.weight.name for s in group if slots[s.slot[:2]] > 1]
    return sorted(dup)


def dequantise_fp8(weight: torch.Tensor, scale_inv: torch.Tensor,
                   block: tuple[int, int]) -> torch.Tensor:
    """weight [out, in] fp8, scale_inv [ceil(out/bo), ceil(in/bi)] -> [out, in] float32.

    `weight_scale_inv` multiplies (despite its name): W = W_fp8 * s over each bo x bi tile."""
    bo, bi = block
    out_f, in_f = weight.shape
    rows = torch.arange(out_f).div(bo, rounding_mode="floor")
    cols = torch.arange(in_f).div(bi, rounding_mode="floor")
    s = scale_inv.to(torch.float32)[rows][:, cols]
    return weight.to(torch.float32) * s


def iter_weights(plan: LoadPlan, *, dtypes: Mapping[str, torch.dtype] | None = None
                 ) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (model tensor name, tensor) for each tensor of `plan`, reading shard by shard.

    Dense tensors come as stored (FP8 dequantised to float32, or to `dtypes[name]` when given);
    a fused expert tensor is assembled in `dtypes[name]` (else its pieces' dtype) as its pieces
    arrive, and is yielded once complete, so at most a few expert tensors are held at a time."""
    dtypes = dtypes or {}
    by_file: dict[Path, list[tuple[_Source, str]]] = {}
    for s in plan.sources:
        by_file.setdefault(s.weight.file, []).append((s, "weight"))
        if s.scale is not None:
            by_file.setdefault(s.scale.file, []).append((s, "scale"))
    needed = plan.pieces
    waiting: dict[int, dict[str, torch.Tensor]] = {}
    buffers: dict[str, torch.Tensor] = {}
    done: Counter = Counter()
    for path in plan.files:
        jobs = by_file.get(path, [])
        if not jobs:
            continue
        for source, kind, tensor in _read(path, jobs):
            parts = waiting.setdefault(id(source), {})
            parts[kind] = tensor
            if "weight" not in parts or (source.scale is not None and "scale" not in parts):
                continue
            del waiting[id(source)]
            value = parts["weight"]
            if source.scale is not None:
                value = dequantise_fp8(value, parts["scale"], plan.fp8_block)
            target = source.target
            if source.slot is None:
                if target in dtypes and value.dtype != dtypes[target]:
                    value = value.to(dtypes[target])
                yield target, value
                continue
            if target not in buffers:
                buffers[target] = torch.empty(plan.shapes[target],
                                              dtype=dtypes.get(target, value.dtype))
            e, first, last = source.slot
            buffers[target][e, first:last].copy_(value)
            done[target] += 1
            if done[target] == needed[target]:
                yield target, buffers.pop(target)


def _read(path: Path, jobs: list[tuple[_Source, str]]
          ) -> Iterator[tuple[_Source, str, torch.Tensor]]:
    names = [(source.weight if kind == "weight" else source.scale).name for source, kind in jobs]
    for (source, kind), (_, tensor) in zip(jobs, read_tensors(path, names)):
        yield source, kind, tensor


def read_tensors(path: Path, names: list[str]) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor as stored) for `names` of one safetensors file, memory-mapped, in order."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            for name in names:
                yield name, f.get_tensor(name)
    except (SafetensorError, OSError, RuntimeError) as exc:
        raise ModelError(f"cannot read checkpoint file {path}: {exc}",
                         hint="the file may be truncated or corrupt; fetch it again") from exc


@dataclass
class LoadReport:
    """What `load_weights` found and did."""

    files: list[str]
    tensors_loaded: int
    stored_tensors_read: int
    skipped_mtp: int
    dtypes: dict[str, int]
    quantization: str | None
    dequantised: int
    expert_layout: str | None
    skipped_names: list[str] = field(default_factory=list, repr=False)


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's parameters and persistent buffers by checkpoint name, tied aliases dropped."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, t in model.state_dict(keep_vars=True).items():
        if id(t) in seen:
            continue
        seen.add(id(t))
        out[name] = t
    return out


Transform = Callable[[str, torch.Tensor], "torch.Tensor | None"]


def load_weights(model: nn.Module, model_dir: str | Path, config: ModelConfig, *,
                 transform: Transform | None = None, device: str | torch.device | None = None,
                 shapes: Mapping[str, tuple[int, ...]] | None = None) -> LoadReport:
    """Fill every parameter of `model` from the checkpoint in `model_dir`, strictly.

    Each tensor is cast to the dtype and device of the parameter it fills (the model decides:
    e.g. A_log stays float32); integer and FP8 tensors must be stored in exactly their dtype. `transform(name, tensor)` sees every finished tensor first (fused
    expert tensors [E, 2I, H] / [E, H, I] whole, one layer at a time): return the tensor to load
    (same shape), or None when the callback stored it itself (expert quantisation while
    loading); `shapes` then names what the checkpoint must hold when it differs from the model.
    Parameters on the meta device are materialised on `device` (default CPU)."""
    targets = model_tensors(model)
    shapes = dict(shapes) if shapes is not None else {n: tuple(t.shape) for n, t in targets.items()}
    exact = {n: EXACT_DTYPES[t.dtype] for n, t in targets.items()
             if n in shapes and t.dtype in EXACT_DTYPES}
    plan = plan_load(model_dir, config, shapes, exact)
    dtypes = {n: t.dtype for n, t in targets.items()}
    filled = 0
    for name, tensor in iter_weights(plan, dtypes=dtypes):
        if transform is not None:
            tensor = transform(name, tensor)
            if tensor is None:
                filled += 1
                continue
        param = targets.get(name)
        if param is None:
            raise ModelError(f"checkpoint tensor {name} has no place in the model")
        if tuple(tensor.shape) != tuple(param.shape):
            raise ModelError(f"tensor {name} has shape {list(tensor.shape)}, the model expects "
                             f"{list(param.shape)}")
        _assign(model, name, param, tensor, device)
        filled += 1
    return LoadReport(
        files=[p.name for p in plan.files], tensors_loaded=filled,
        stored_tensors_read=sum(1 + (s.scale is not None) for s in plan.sources),
        skipped_mtp=len(plan.skipped), dtypes=plan.dtypes, quantization=plan.quantization,
        dequantised=sum(s.scale is not None for s in plan.sources),
        expert_layout=plan.expert_layout, skipped_names=plan.skipped)


def _assign(model: nn.Module, name: str, param: torch.Tensor, tensor: torch.Tensor,
            device: str | torch.device | None) -> None:
    with torch.no_grad():
        if not param.is_meta:
            param.copy_(tensor)
            return
        owner_name, _, leaf = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        value = tensor.to(device=device or "cpu", dtype=param.dtype)
        if leaf in owner._parameters:
            owner._parameters[leaf] = nn.Parameter(value, requires_grad=param.requires_grad)
        else:
            owner._buffers[leaf] = value
