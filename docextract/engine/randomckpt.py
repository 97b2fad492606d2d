"""Random Qwen3.5 checkpoints in the official layout, built with torch, safetensors and tokenizers
only (never transformers).

`write(dest, ...)` writes a folder that `Engine.load` and transformers' `from_pretrained` both read:
config.json (text_config / vision_config / token ids as in the release), generation_config.json,
preprocessor_config.json, model.safetensors (or shards + index) with fused expert tensors and
A_log / linear_attn.norm in F32, and a small byte-level BPE tokenizer whose special tokens sit at
the ids the config names. `random_model(config, device, dtype)` builds the same weights straight
in memory on a device (the real 35B-A3B shapes fit one large GPU), and `random_engine` wraps one
in an `Engine` for benchmarks. Tensor names and shapes come from `info.expected_shapes`, so they
cannot drift from the loader; each tensor is drawn from its own generator seeded by (seed, name),
so a written checkpoint and an in-memory model of the same seed are equal on CPU.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..errors import UsageError
from .config import ModelConfig
from .info import expected_shapes
from .tokenizer import BUILTIN_CHAT_TEMPLATE

if TYPE_CHECKING:
    from tokenizers import Tokenizer as Backend

    from .engine import Engine
    from .qwen3_5 import Model

# The Qwen3.5 added tokens in id order; the first sits at `first_special_id` (248044 in the
# release).
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
    "<|audio_start|>", "<|audio_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>",
    "<tts_text_bos_single>", "<|audio_pad|>",
)
# Added tokens the release marks special=false (they stay in decoded text).
PLAIN_ADDED_TOKENS = frozenset({
    "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
    "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>",
    "<think>", "</think>",
})
# Qwen3.5's pre-tokeniser: letters with their combining marks grouped, digits one by one.
PRETOKENIZE_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
                     r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# BPE training text: the words, digits and scripts our documents and prompts are made of.
CORPUS = (
    "Extract the fields of this document and answer with one JSON object only.",
    "Use null for anything not visible on the document. Never guess or complete a value.",
    "Permanent Account Number card. Income Tax Department. Govt. of India. Name, Father's Name,",
    "Date of Birth 14/02/1991. Signature. PAN ABCPK1234L, BNZPM2501F, AAACR5055K.",
    "Aadhaar, Government of India, Unique Identification Authority. 2345 6789 0123. Male Female.",
    "मेरा आधार, मेरी पहचान। भारत सरकार। नाम: सुनीता शर्मा। जन्म तिथि: 03/11/1985। महिला। पुरुष।",
    "आयकर विभाग। स्थायी लेखा संख्या कार्ड। पिता का नाम। हस्ताक्षर। पता: मुंबई, महाराष्ट्र 400001।",
    "Tax Invoice. GSTIN 27AAPFU0939F1Z5. Place of supply: Karnataka (29). HSN/SAC 8471, 9983.",
    "Taxable value, CGST 9%, SGST 9%, IGST 18%, round off, grand total ₹ 1,18,000.00 only.",
    "Rupees One Lakh Eighteen Thousand Only. ₹ 2,36,450.50 ₹12,34,567.89 ₹ 999.00 -42.10 0.00",
    "VAT invoice. VAT registration number GB 123 4567 89. Tax point 31/03/2024. Net £1,240.00,",
    "VAT at 20% £248.00, total £1,488.00. Sort code 20-00-00. IBAN GB29 NWBK 6016 1331 9268 19.",
    "Statement of account. IFSC HDFC0001234, MICR 400240015. Opening balance, closing balance.",
    "Date, narration, cheque/ref no., withdrawal, deposit, balance. UPI/NEFT/IMPS/ATM/POS 0042.",
    '{"pan":"ABCDE1234F","name":"RAHUL KUMAR","father_name":null,"date_of_birth":"1987-08-15"}',
    '{"invoice_number":"INV/24-25/0042","invoice_date":"2024-03-31","lines":[{"qty":"12"}]}',
    '{"account_number":"50100123456789","transactions":[{"date":"2024-04-01","amount":"-1.5"}]}',
    "The quick brown fox jumps over the lazy dog; 0123456789 +-*/=<>()[]{}#@&%$!?\"'\\ \t\r\n",
)
TINY_FIRST_SPECIAL_ID = 472
DEFAULT_SHARD_BYTES = 4 * 1024 ** 3

_ROPE = {"rope_type": "default", "rope_theta": 10_000_000.0, "partial_rotary_factor": 0.25,
         "mrope_interleaved": True}
_TEXT_COMMON = {
    "hidden_act": "silu", "rms_norm_eps": 1e-6, "attention_bias": False, "attn_output_gate": True,
    "attention_dropout": 0.0, "linear_conv_kernel_dim": 4, "mamba_ssm_dtype": "float32",
    "max_position_embeddings": 262144, "initializer_range": 0.02, "use_cache": True,
    "mtp_num_hidden_layers": 0, "mtp_use_dedicated_embeddings": False,
}
_VISION_COMMON = {
    "hidden_act": "gelu_pytorch_tanh", "in_channels": 3, "patch_size": 16,
    "temporal_patch_size": 2, "spatial_merge_size": 2, "deepstack_visual_indexes": [],
    "initializer_range": 0.02,
}

# Each preset: config.json values (without token ids) for "moe" and/or "dense", plus the id of
# the first added token. Real sizes from the release configs (qwen35.md section 1.1).
PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {
        "first_special_id": TINY_FIRST_SPECIAL_ID,
        "text_config": {
            "vocab_size": 512, "hidden_size": 64, "num_hidden_layers": 4,
            "full_attention_interval": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 32, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
            "linear_key_head_dim": 16, "linear_value_head_dim": 16,
            "rope_parameters": {**_ROPE, "mrope_section": [2, 1, 1]},
        },
        "moe": {"num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 32,
                "shared_expert_intermediate_size": 48},
        "dense": {"intermediate_size": 96},
        "vision_config": {"depth": 2, "hidden_size": 32, "num_heads": 2, "intermediate_size": 64,
                          "num_position_embeddings": 64},
        "tie_word_embeddings": False,
    },
    "35b-a3b": {
        "first_special_id": 248044,
        "text_config": {
            "vocab_size": 248320, "hidden_size": 2048, "num_hidden_layers": 40,
            "full_attention_interval": 4, "num_attention_heads": 16, "num_key_value_heads": 2,
            "head_dim": 256, "linear_num_key_heads": 16, "linear_num_value_heads": 32,
            "linear_key_head_dim": 128, "linear_value_head_dim": 128,
            "rope_parameters": {**_ROPE, "mrope_section": [11, 11, 10]},
        },
        "moe": {"num_experts": 256, "num_experts_per_tok": 8, "moe_intermediate_size": 512,
                "shared_expert_intermediate_size": 512, "router_aux_loss_coef": 0.001},
        "vision_config": {"depth": 27, "hidden_size": 1152, "num_heads": 16,
                          "intermediate_size": 4304, "num_position_embeddings": 2304},
        "tie_word_embeddings": False,
    },
    "0.8b": {
        "first_special_id": 248044,
        "text_config": {
            "vocab_size": 248320, "hidden_size": 1024, "num_hidden_layers": 24,
            "full_attention_interval": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
            "head_dim": 256, "linear_num_key_heads": 16, "linear_num_value_heads": 16,
            "linear_key_head_dim": 128, "linear_value_head_dim": 128,
            "rope_parameters": {**_ROPE, "mrope_section": [11, 11, 10]},
        },
        "dense": {"intermediate_size": 3584},
        "vision_config": {"depth": 12, "hidden_size": 768, "num_heads": 12,
                          "intermediate_size": 3072, "num_position_embeddings": 2304},
        "tie_word_embeddings": True,
    },
}
KINDS = ("moe", "dense")
_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}
# Stored F32 whatever the checkpoint dtype, as in the Qwen3.5 release.
_F32_SUFFIXES = ("linear_attn.A_log", "linear_attn.norm.weight")
# Zero-centred RMSNorms of the text tower: the checkpoint stores w of `x * (1 + w)`.
_OFFSET_NORMS = ("input_layernorm.weight", "post_attention_layernorm.weight",
                 "self_attn.q_norm.weight", "self_attn.k_norm.weight", "language_model.norm.weight")


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def config_dict(kind: str = "moe", preset: str | Mapping[str, Any] = "tiny",
                dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """The config.json of a random checkpoint, in the release's layout.

    `preset` is a name in PRESETS or a dict of overrides merged into one (nested dicts merge):
    `{"base": "35b-a3b", "text_config": {"num_hidden_layers": 4}}`; without "base" the overrides
    apply to "tiny". `first_special_id` (top level) moves the added tokens."""
    if kind not in KINDS:
        raise UsageError(f"unknown checkpoint kind {kind!r}", hint="use moe or dense")
    if dtype not in _DTYPE_NAMES:
        raise UsageError(f"unsupported checkpoint dtype {dtype}",
                         hint="use torch.float32, torch.bfloat16 or torch.float16")
    if isinstance(preset, str):
        name, overrides = preset, {}
    elif isinstance(preset, Mapping):
        overrides = dict(preset)
        name = overrides.pop("base", "tiny")
    else:
        raise UsageError("preset must be a name or a dict of overrides, got "
                         f"{type(preset).__name__}")
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}", hint=f"one of: {', '.join(PRESETS)}")
    base = PRESETS[name]
    if kind not in base:
        raise UsageError(f"preset {name!r} has no {kind} model",
                         hint=f"use kind={'moe' if kind == 'dense' else 'dense'}")
    spec = _merge({"first_special_id": base["first_special_id"],
                   "text_config": {**_TEXT_COMMON, **base["text_config"], **base[kind]},
                   "vision_config": {**_VISION_COMMON, **base["vision_config"]},
                   "tie_word_embeddings": base["tie_word_embeddings"]}, overrides)
    first = int(spec.pop("first_special_id"))
    text, vision = spec.pop("text_config"), spec.pop("vision_config")
    ids = {tok: first + i for i, tok in enumerate(SPECIAL_TOKENS)}
    if first < 256 or ids[SPECIAL_TOKENS[-1]] >= text["vocab_size"]:
        raise UsageError(f"added tokens at {first}..{ids[SPECIAL_TOKENS[-1]]} do not fit a "
                         f"vocabulary of {text['vocab_size']} after the 256 byte tokens")
    interval = text.get("full_attention_interval", 4)
    text.setdefault("layer_types", ["full_attention" if (i + 1) % interval == 0
                                    else "linear_attention"
                                    for i in range(text["num_hidden_layers"])])
    tied = spec.pop("tie_word_embeddings")
    dtype_name = _DTYPE_NAMES[dtype]
    text.update(model_type="qwen3_5_moe_text" if kind == "moe" else "qwen3_5_text",
                tie_word_embeddings=tied, eos_token_id=ids["<|endoftext|>"], pad_token_id=None,
                bos_token_id=None, dtype=dtype_name)
    vision.setdefault("out_hidden_size", text["hidden_size"])
    out: dict[str, Any] = {
        "architectures": ["Qwen3_5MoeForConditionalGeneration" if kind == "moe"
                          else "Qwen3_5ForConditionalGeneration"],
        "model_type": "qwen3_5_moe" if kind == "moe" else "qwen3_5",
        "text_config": text,
        "vision_config": {"model_type": "qwen3_5_moe_vision" if kind == "moe"
                          else "qwen3_5_vision", **vision},
        "image_token_id": ids["<|image_pad|>"], "video_token_id": ids["<|video_pad|>"],
        "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"],
        "tie_word_embeddings": tied, "dtype": dtype_name,
    }
    if kind == "dense":
        out.update(eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])
    out.update(spec)
    return out


def model_config(kind: str = "moe", preset: str | Mapping[str, Any] = "tiny") -> ModelConfig:
    """The `ModelConfig` of a preset, without touching any file."""
    return ModelConfig.from_dict(config_dict(kind, preset))


def first_special_id(config: ModelConfig) -> int:
    """Id of <|endoftext|>, the first added token, as implied by the config's image token id."""
    return config.image_token_id - SPECIAL_TOKENS.index("<|image_pad|>")


def _tensor_seed(seed: int, name: str) -> int:
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2 ** 63 - 1)


def init_(t: torch.Tensor, name: str, generator: torch.Generator) -> torch.Tensor:
    """Fill float32 tensor `t` (any device) in place with the random value of checkpoint tensor
    `name`: linear weights normal with std fan_in**-0.5 (~0.02 at hidden 2048), embeddings std
    0.02, zero-centred norm offsets and plain norm weights perturbed by std 0.1 (so that `1 + w`
    matters), A_log = log U(1, 16), dt_bias = softplus^-1 of a log-uniform step in [1e-3, 1e-1],
    small biases."""
    if name.endswith("A_log"):
        return t.uniform_(1.0, 16.0, generator=generator).log_()
    if name.endswith("dt_bias"):
        # softplus(dt_bias) = dt, log-uniform in [1e-3, 1e-1] (Mamba-2's init): the DeltaNet
        # state keeps a memory instead of being wiped at every token.
        dt = t.uniform_(math.log(1e-3), math.log(1e-1), generator=generator).exp_()
        return dt.add_(torch.log(-torch.expm1(-dt)))
    if name.endswith(_OFFSET_NORMS):
        return t.normal_(0.0, 0.1, generator=generator)
    if t.ndim == 1 and (name.endswith("norm.weight")
                        or (".norm" in name and name.endswith(".weight"))):
        return t.normal_(1.0, 0.1, generator=generator)
    if name.endswith(".bias"):
        return t.normal_(0.0, 0.02, generator=generator)
    if name.endswith(("embed_tokens.weight", "pos_embed.weight")):
        return t.normal_(0.0, 0.02, generator=generator)
    fan_in = t[0].numel() if t.ndim == 5 else t.shape[-1]
    return t.normal_(0.0, fan_in ** -0.5, generator=generator)


def random_tensor(name: str, shape: tuple[int, ...], seed: int = 0,
                  device: str | torch.device = "cpu") -> torch.Tensor:
    """The float32 value of checkpoint tensor `name` [shape] for `seed` (same on every call)."""
    gen = torch.Generator(device=device).manual_seed(_tensor_seed(seed, name))
    return init_(torch.empty(shape, dtype=torch.float32, device=device), name, gen)


def _stored_dtype(name: str, dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if name.endswith(_F32_SUFFIXES) else dtype


def _shard_plan(shapes: Mapping[str, tuple[int, ...]], dtype: torch.dtype,
                max_bytes: int) -> list[list[str]]:
    shards: list[list[str]] = [[]]
    size = 0
    for name, shape in shapes.items():
        nbytes = torch.Size(shape).numel() * _stored_dtype(name, dtype).itemsize
        if shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def _write_weights(dest: Path, config: ModelConfig, seed: int, dtype: torch.dtype,
                   max_shard_bytes: int) -> list[str]:
    from safetensors.torch import save_file

    shapes = expected_shapes(config)
    plan = _shard_plan(shapes, dtype, max_shard_bytes)
    meta = {"format": "pt"}
    if len(plan) == 1:
        files = ["model.safetensors"]
    else:
        files = [f"model-{k:05d}-of-{len(plan):05d}.safetensors" for k in range(1, len(plan) + 1)]
    weight_map, total = {}, 0
    for file, names in zip(files, plan):
        tensors = {}
        for name in names:
            t = random_tensor(name, shapes[name], seed).to(_stored_dtype(name, dtype))
            tensors[name] = t
            weight_map[name] = file
            total += t.numel() * t.element_size()
        save_file(tensors, str(dest / file), metadata=meta)
    if len(plan) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (dest / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return files


def _filler_tokens(taken: set[str]) -> Iterator[str]:
    # Word-like byte-level tokens ("Ġ" is the space byte) that no merge produces: they only pad
    # the vocabulary so that the added tokens land at the release's ids.
    letters = "abcdefghijklmnopqrstuvwxyz"
    for n in itertools.count(2):
        for combo in itertools.product(letters, repeat=n):
            token = "Ġ" + "".join(combo)
            if token not in taken:
                yield token


def build_tokenizer(first_special_id: int = TINY_FIRST_SPECIAL_ID) -> Backend:
    """A byte-level BPE (`tokenizers.Tokenizer`) in the Qwen3.5 form: NFC, the Qwen3.5
    pre-tokenise regex, all 256 byte symbols, merges trained on `CORPUS`, padded with unused
    tokens up to `first_special_id`, then the Qwen3.5 added tokens at first_special_id + i."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    if first_special_id < 256:
        raise UsageError(f"first_special_id {first_special_id} leaves no room for the 256 byte "
                         "tokens")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=first_special_id, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    if tok.get_vocab_size() < first_special_id:
        data = json.loads(tok.to_str())
        vocab = data["model"]["vocab"]
        fillers = _filler_tokens(set(vocab))
        for token_id in range(len(vocab), first_special_id):
            vocab[next(fillers)] = token_id
        tok = Tokenizer.from_str(json.dumps(data, ensure_ascii=False))
    for text in SPECIAL_TOKENS:
        token = AddedToken(text, special=text not in PLAIN_ADDED_TOKENS, normalized=False)
        if text in PLAIN_ADDED_TOKENS:
            tok.add_tokens([token])
        else:
            tok.add_special_tokens([token])
    got = [tok.token_to_id(t) for t in SPECIAL_TOKENS]
    want = list(range(first_special_id, first_special_id + len(SPECIAL_TOKENS)))
    if got != want:
        raise RuntimeError(f"added tokens landed at {got[:3]}..., expected {want[:3]}...")
    return tok


def _tokenizer_config(first: int) -> dict[str, Any]:
    decoder = {str(first + i): {"content": t, "lstrip": False, "normalized": False,
                                "rstrip": False, "single_word": False,
                                "special": t not in PLAIN_ADDED_TOKENS}
               for i, t in enumerate(SPECIAL_TOKENS)}
    return {
        "add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": decoder,
        "bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
        "unk_token": None, "clean_up_tokenization_spaces": False, "errors": "replace",
        "model_max_length": 262144, "split_special_tokens": False,
        "tokenizer_class": "Qwen3_5Tokenizer",
    }


def write_tokenizer(dest: str | Path, first_special_id: int = TINY_FIRST_SPECIAL_ID) -> None:
    """tokenizer.json, tokenizer_config.json and chat_template.jinja into `dest`."""
    dest = Path(dest)
    build_tokenizer(first_special_id).save(str(dest / "tokenizer.json"))
    (dest / "tokenizer_config.json").write_text(
        json.dumps(_tokenizer_config(first_special_id), indent=2) + "\n")
    (dest / "chat_template.jinja").write_text(BUILTIN_CHAT_TEMPLATE)


def _side_files(dest: Path, data: dict[str, Any], config: ModelConfig) -> None:
    v = config.vision_config
    first = first_special_id(config)
    preprocessor = {
        "image_processor_type": "Qwen2VLImageProcessorFast", "processor_class": "Qwen3VLProcessor",
        "do_convert_rgb": True, "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255,
        "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "patch_size": v.patch_size, "temporal_patch_size": v.temporal_patch_size,
        "merge_size": v.spatial_merge_size,
        "size": {"shortest_edge": 65536, "longest_edge": 16777216},
    }
    generation = {"bos_token_id": None, "pad_token_id": first,
                  "eos_token_id": [first + SPECIAL_TOKENS.index("<|im_end|>"), first],
                  "do_sample": False}
    (dest / "config.json").write_text(json.dumps(data, indent=2) + "\n")
    (dest / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
    (dest / "preprocessor_config.json").write_text(json.dumps(preprocessor, indent=2) + "\n")


def write(dest: str | Path, *, kind: str = "moe", preset: str | Mapping[str, Any] = "tiny",
          seed: int = 0, dtype: torch.dtype = torch.float32, tokenizer: bool = True,
          max_shard_bytes: int = DEFAULT_SHARD_BYTES) -> Path:
    """Write a complete random checkpoint folder `dest` (created if missing) and return it.

    `kind` "moe" or "dense"; `preset` a PRESETS name or overrides (see `config_dict`); `dtype`
    of the stored tensors (A_log and linear_attn.norm stay F32); weights over `max_shard_bytes`
    go to model-0000k-of-0000n.safetensors shards with model.safetensors.index.json;
    `tokenizer=False` leaves out tokenizer.json, tokenizer_config.json and chat_template.jinja."""
    dest = Path(dest)
    data = config_dict(kind, preset, dtype)
    config = ModelConfig.from_dict(data)
    dest.mkdir(parents=True, exist_ok=True)
    _side_files(dest, data, config)
    _write_weights(dest, config, seed, dtype, max_shard_bytes)
    if tokenizer:
        write_tokenizer(dest, first_special_id(config))
    return dest


def random_model(config: ModelConfig, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> Model:
    """The engine's `Model` for `config` with random weights made directly on `device` (no file,
    no CPU copy). On CPU it equals `Engine.load` of `write(..., seed=seed)` in the same dtype.

    Peak extra memory is one float32 copy of the largest tensor (2 GiB for 35B-A3B)."""
    from .qwen3_5 import Model
    from .weights import model_tensors

    model = Model.empty(config, dtype, device)
    with torch.no_grad():
        for name, param in model_tensors(model).items():
            value = random_tensor(name, tuple(param.shape), seed, param.device)
            param.copy_(value.to(_stored_dtype(name, dtype)))
    return model


def random_engine(kind: str = "moe", preset: str | Mapping[str, Any] = "tiny", *,
                  device: str | torch.device = "cpu", dtype: torch.dtype = torch.bfloat16,
                  seed: int = 0, max_pixels: int | None = None) -> Engine:
    """An `Engine` over `random_model` with the random tokenizer and the default image
    processor, built in memory (benchmarks on real shapes without writing 70 GB)."""
    from .engine import Engine
    from .processor import DEFAULT_MAX_PIXELS, ImageProcessor
    from .tokenizer import Tokenizer

    config = model_config(kind, preset)
    model = random_model(config, device, dtype, seed)
    backend = build_tokenizer(first_special_id(config))
    tok = Tokenizer(backend, chat_template=BUILTIN_CHAT_TEMPLATE, template_source="random",
                    config=config, special_tokens_map={"eos_token": "<|im_end|>",
                                                       "pad_token": "<|endoftext|>"})
    v = config.vision_config
    processor = ImageProcessor(patch_size=v.patch_size, temporal_patch_size=v.temporal_patch_size,
                               merge_size=v.spatial_merge_size,
                               max_pixels=max_pixels or DEFAULT_MAX_PIXELS)
    name = preset if isinstance(preset, str) else "custom"
    return Engine(model, tok, processor, name=f"random-{name}-{kind}")
