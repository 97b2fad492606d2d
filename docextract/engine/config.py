"""The model's own `config.json` as dataclasses: `ModelConfig` holding a `TextConfig` and a
`VisionConfig`.

Field names are the Hugging Face config keys, so `from_dict` is a plain filter of the JSON. Values
missing from the file take the defaults of transformers' Qwen3.5 config classes (the reference);
`__post_init__` normalises the spellings that exist in the wild (rope keys at the top level of
text_config or in `rope_parameters`, `layer_types` or `full_attention_interval`) and validates.
Every problem is a `ModelError`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError

SUPPORTED_MODEL_TYPES = ("qwen3_5_moe", "qwen3_5")
LAYER_TYPES = ("linear_attention", "full_attention")
SUPPORTED_QUANT_METHODS = ("fp8",)

# Defaults of transformers' Qwen3_5MoeTextConfig / Qwen3_5TextConfig where the two differ.
_TEXT_DEFAULTS = {
    True: {"hidden_size": 2048, "num_hidden_layers": 40, "num_key_value_heads": 2},
    False: {"hidden_size": 4096, "num_hidden_layers": 32, "num_key_value_heads": 4,
            "intermediate_size": 12288},
}
_MOE_DEFAULTS = {"num_experts": 256, "num_experts_per_tok": 8, "moe_intermediate_size": 512,
                 "shared_expert_intermediate_size": 512}


# Upper bounds on the sizes a config may declare, checked before anything is built from them:
# far above every Qwen3.5 release (vocab 248,320, 60 layers, 262,144 positions, 512 experts), low
# enough that a hostile config.json cannot make docextract build millions of layers.
MAX_SIZES = {
    "vocab_size": 1 << 24, "hidden_size": 1 << 16, "num_hidden_layers": 1024,
    "num_attention_heads": 1024, "num_key_value_heads": 1024, "head_dim": 4096,
    "max_position_embeddings": 1 << 24, "linear_conv_kernel_dim": 64,
    "linear_key_head_dim": 4096, "linear_value_head_dim": 4096, "linear_num_key_heads": 1024,
    "linear_num_value_heads": 1024, "full_attention_interval": 1024,
    "intermediate_size": 1 << 20, "num_experts": 4096, "num_experts_per_tok": 4096,
    "moe_intermediate_size": 1 << 20, "shared_expert_intermediate_size": 1 << 20,
}
MAX_VISION_SIZES = {
    "depth": 1024, "hidden_size": 1 << 16, "intermediate_size": 1 << 20, "num_heads": 1024,
    "in_channels": 16, "patch_size": 1024, "temporal_patch_size": 16, "spatial_merge_size": 64,
    "out_hidden_size": 1 << 16, "num_position_embeddings": 1 << 24,
}


def _filter(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    return {k: v for k, v in data.items() if k in names}


def _positive_int(where: str, name: str, value: Any, limit: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ModelError(f"config: {where}.{name} must be a positive integer, got {value!r}")
    if limit is not None and value > limit:
        raise ModelError(f"config: {where}.{name} is {value:,}, above the limit of {limit:,}",
                         hint="config.json is damaged or is not a Qwen3.5 config")


def _check_sizes(where: str, obj: Any, limits: dict[str, int]) -> None:
    """Every size that is set is a positive integer within its limit (None: a default follows)."""
    for name, limit in limits.items():
        value = getattr(obj, name)
        if value is not None:
            _positive_int(where, name, value, limit)


def _id_list(value: Any) -> list[int]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


@dataclass
class TextConfig:
    """The language model (`text_config`). Type-dependent sizes left as None take the defaults of
    the transformers class for `model_type` (MoE: `qwen3_5_moe_text`, dense: `qwen3_5_text`)."""

    model_type: str = "qwen3_5_moe_text"
    vocab_size: int = 248320
    hidden_size: int | None = None
    num_hidden_layers: int | None = None
    num_attention_heads: int = 16
    num_key_value_heads: int | None = None
    head_dim: int = 256
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    rms_norm_eps: float = 1e-6
    attention_bias: bool = False
    # Informational in the reference: the attention output is always gated.
    attn_output_gate: bool = True
    linear_conv_kernel_dim: int = 4
    linear_key_head_dim: int = 128
    linear_value_head_dim: int = 128
    linear_num_key_heads: int = 16
    linear_num_value_heads: int = 32
    layer_types: list[str] | None = None
    full_attention_interval: int | None = None
    # Dense FFN.
    intermediate_size: int | None = None
    # Sparse MoE.
    num_experts: int | None = None
    num_experts_per_tok: int | None = None
    moe_intermediate_size: int | None = None
    shared_expert_intermediate_size: int | None = None
    # RoPE: after __post_init__ `rope_parameters` holds everything, and `rope_theta` and
    # `partial_rotary_factor` mirror it, whichever spelling the file used.
    rope_parameters: dict[str, Any] | None = None
    rope_scaling: dict[str, Any] | None = None
    rope_theta: float | None = None
    partial_rotary_factor: float | None = None
    tie_word_embeddings: bool | None = None
    eos_token_id: int | list[int] | None = None
    bos_token_id: int | None = None
    pad_token_id: int | None = None
    mtp_num_hidden_layers: int = 0
    mtp_use_dedicated_embeddings: bool = False
    mamba_ssm_dtype: str = "float32"
    dtype: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TextConfig:
        return cls(**_filter(cls, data))

    def __post_init__(self) -> None:
        if self.model_type not in ("qwen3_5_moe_text", "qwen3_5_text"):
            raise ModelError(f"config: text_config.model_type {self.model_type!r} is not supported",
                             hint="expected qwen3_5_moe_text or qwen3_5_text")
        for name, value in _TEXT_DEFAULTS[self.is_moe].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.is_moe:
            for name, value in _MOE_DEFAULTS.items():
                if getattr(self, name) is None:
                    setattr(self, name, value)
        # Before anything is built from the sizes (layer_types has num_hidden_layers entries).
        _check_sizes("text_config", self, MAX_SIZES)
        self._normalise_layer_types()
        self._normalise_rope()
        self._validate()

    def _normalise_layer_types(self) -> None:
        if self.layer_types is None:
            interval = 4 if self.full_attention_interval is None else self.full_attention_interval
            _positive_int("text_config", "full_attention_interval", interval)
            _positive_int("text_config", "num_hidden_layers", self.num_hidden_layers)
            self.layer_types = ["full_attention" if (i + 1) % interval == 0 else "linear_attention"
                                for i in range(self.num_hidden_layers)]
        self.layer_types = list(self.layer_types)

    def _normalise_rope(self) -> None:
        # Same priority as transformers: the rope dict, then top-level keys, then defaults.
        rope = dict(self.rope_scaling or self.rope_parameters or {})
        if "rope_type" not in rope:
            rope["rope_type"] = rope.pop("type", "default")
        rope.setdefault("rope_theta", 10000.0 if self.rope_theta is None else self.rope_theta)
        rope.setdefault("partial_rotary_factor",
                        0.25 if self.partial_rotary_factor is None else self.partial_rotary_factor)
        rope.setdefault("mrope_section", [11, 11, 10])
        rope.setdefault("mrope_interleaved", True)
        self.rope_parameters = rope
        self.rope_scaling = None
        self.rope_theta = float(rope["rope_theta"])
        self.partial_rotary_factor = float(rope["partial_rotary_factor"])

    def _validate(self) -> None:
        where = "text_config"
        for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "linear_conv_kernel_dim",
                     "linear_key_head_dim", "linear_value_head_dim", "linear_num_key_heads",
                     "linear_num_value_heads", "max_position_embeddings"):
            _positive_int(where, name, getattr(self, name))
        if self.is_moe:
            for name in _MOE_DEFAULTS:
                _positive_int(where, name, getattr(self, name))
            if self.num_experts_per_tok > self.num_experts:
                raise ModelError(f"config: {where}.num_experts_per_tok ({self.num_experts_per_tok})"
                                 f" exceeds num_experts ({self.num_experts})")
        else:
            _positive_int(where, "intermediate_size", self.intermediate_size)
        if len(self.layer_types) != self.num_hidden_layers:
            raise ModelError(f"config: {where}.layer_types has {len(self.layer_types)} entries for "
                             f"{self.num_hidden_layers} layers")
        unknown = sorted({t for t in self.layer_types if t not in LAYER_TYPES})
        if unknown:
            raise ModelError(f"config: {where}.layer_types has unknown types {unknown}",
                             hint=f"supported: {', '.join(LAYER_TYPES)}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ModelError(f"config: {where}.num_attention_heads ({self.num_attention_heads}) is "
                             f"not a multiple of num_key_value_heads ({self.num_key_value_heads})")
        if self.linear_num_value_heads % self.linear_num_key_heads:
            raise ModelError(f"config: {where}.linear_num_value_heads ({self.linear_num_value_heads})"
                             f" is not a multiple of linear_num_key_heads "
                             f"({self.linear_num_key_heads})")
        if self.rope_parameters["rope_type"] != "default":
            raise ModelError(f"config: rope_type {self.rope_parameters['rope_type']!r} is not "
                             "supported", hint="supported: default (with M-RoPE sections)")
        if not 0 < self.partial_rotary_factor <= 1 or self.rotary_dim % 2:
            raise ModelError(f"config: partial_rotary_factor {self.partial_rotary_factor} with "
                             f"head_dim {self.head_dim} does not give an even rotary dimension")
        section = self.mrope_section
        if len(section) != 3 or sum(section) != self.rotary_dim // 2:
            raise ModelError(f"config: mrope_section {section} must have 3 entries summing to "
                             f"rotary_dim / 2 = {self.rotary_dim // 2}")

    @property
    def is_moe(self) -> bool:
        return self.model_type == "qwen3_5_moe_text"

    @property
    def rotary_dim(self) -> int:
        """Rotated dimensions of each full-attention head (the rest pass through)."""
        return int(self.head_dim * self.partial_rotary_factor)

    @property
    def mrope_section(self) -> list[int]:
        """Frequencies given to the T, H, W position streams (sums to rotary_dim / 2)."""
        return [int(s) for s in self.rope_parameters["mrope_section"]]

    @property
    def mrope_interleaved(self) -> bool:
        return bool(self.rope_parameters["mrope_interleaved"])

    @property
    def full_attention_layers(self) -> list[int]:
        return [i for i, t in enumerate(self.layer_types) if t == "full_attention"]

    @property
    def linear_attention_layers(self) -> list[int]:
        return [i for i, t in enumerate(self.layer_types) if t == "linear_attention"]

    @property
    def linear_key_dim(self) -> int:
        return self.linear_num_key_heads * self.linear_key_head_dim

    @property
    def linear_value_dim(self) -> int:
        return self.linear_num_value_heads * self.linear_value_head_dim

    @property
    def conv_dim(self) -> int:
        """Channels of the DeltaNet causal conv: [q | k | v]."""
        return 2 * self.linear_key_dim + self.linear_value_dim

    @property
    def num_value_heads_per_key_head(self) -> int:
        return self.linear_num_value_heads // self.linear_num_key_heads

    @property
    def num_kv_groups(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads


@dataclass
class VisionConfig:
    """The vision tower (`vision_config`); defaults are transformers' Qwen3_5VisionConfig."""

    depth: int = 27
    hidden_size: int = 1152
    hidden_act: str = "gelu_pytorch_tanh"
    intermediate_size: int = 4304
    num_heads: int = 16
    in_channels: int = 3
    patch_size: int = 16
    temporal_patch_size: int = 2
    spatial_merge_size: int = 2
    out_hidden_size: int = 3584
    num_position_embeddings: int = 2304
    deepstack_visual_indexes: list[int] = field(default_factory=list)
    rope_parameters: dict[str, Any] | None = None
    model_type: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VisionConfig:
        return cls(**_filter(cls, data))

    def __post_init__(self) -> None:
        rope = dict(self.rope_parameters or {})
        rope.setdefault("rope_theta", 10000.0)
        rope["rope_type"] = "axial"
        self.rope_parameters = rope
        where = "vision_config"
        for name, limit in MAX_VISION_SIZES.items():
            _positive_int(where, name, getattr(self, name), limit)
        if self.hidden_size % self.num_heads:
            raise ModelError(f"config: {where}.hidden_size ({self.hidden_size}) is not a multiple "
                             f"of num_heads ({self.num_heads})")
        if math.isqrt(self.num_position_embeddings) ** 2 != self.num_position_embeddings:
            raise ModelError(f"config: {where}.num_position_embeddings "
                             f"({self.num_position_embeddings}) is not a square grid")
        if self.deepstack_visual_indexes:
            raise ModelError(f"config: {where}.deepstack_visual_indexes is not empty: DeepStack "
                             "vision features are not part of Qwen3.5 and not supported")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def patch_dim(self) -> int:
        """Values per flattened patch: in_channels * temporal_patch_size * patch_size**2."""
        return self.in_channels * self.temporal_patch_size * self.patch_size ** 2

    @property
    def merge_unit(self) -> int:
        """Patches merged into one language-model token."""
        return self.spatial_merge_size ** 2

    @property
    def merged_hidden_size(self) -> int:
        return self.hidden_size * self.merge_unit

    @property
    def num_grid_per_side(self) -> int:
        """Side of the learned position-embedding grid."""
        return math.isqrt(self.num_position_embeddings)

    @property
    def rope_theta(self) -> float:
        return float(self.rope_parameters["rope_theta"])


@dataclass
class ModelConfig:
    """The whole checkpoint config. `text_config` and `vision_config` are the nested dataclasses."""

    model_type: str
    text_config: TextConfig
    vision_config: VisionConfig
    architectures: list[str] = field(default_factory=list)
    image_token_id: int = 248056
    video_token_id: int = 248057
    vision_start_token_id: int = 248053
    vision_end_token_id: int = 248054
    tie_word_embeddings: bool | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    quantization_config: dict[str, Any] | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        if not isinstance(data, dict):
            raise ModelError("config: config.json does not hold a JSON object")
        model_type = data.get("model_type")
        if model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelError(f"config: model_type {model_type!r} is not supported",
                             hint=f"supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}")
        text = dict(data.get("text_config") or {})
        # The top-level model_type picks the text class, as in transformers.
        text["model_type"] = f"{model_type}_text"
        values = _filter(cls, data)
        values["text_config"] = TextConfig.from_dict(text)
        values["vision_config"] = VisionConfig.from_dict(dict(data.get("vision_config") or {}))
        return cls(**values)

    def __post_init__(self) -> None:
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise ModelError(f"config: model_type {self.model_type!r} is not supported",
                             hint=f"supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}")
        if self.text_config.is_moe != (self.model_type == "qwen3_5_moe"):
            raise ModelError(f"config: text_config.model_type {self.text_config.model_type!r} does"
                             f" not belong to model_type {self.model_type!r}")
        # transformers reads the top-level flag; text_config's is used only when that is absent.
        if self.tie_word_embeddings is None:
            self.tie_word_embeddings = bool(self.text_config.tie_word_embeddings)
        if self.vision_config.out_hidden_size != self.text_config.hidden_size:
            raise ModelError(f"config: vision_config.out_hidden_size "
                             f"({self.vision_config.out_hidden_size}) differs from "
                             f"text_config.hidden_size ({self.text_config.hidden_size})")
        vocab = self.text_config.vocab_size
        for name in ("image_token_id", "video_token_id", "vision_start_token_id",
                     "vision_end_token_id"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab:
                raise ModelError(f"config: {name} {value!r} is outside the vocabulary (size "
                                 f"{vocab})")
        if self.quantization_config is not None:
            if not isinstance(self.quantization_config, dict):
                raise ModelError("config: quantization_config is not a JSON object")
            block = self.weight_block_size
            if block is not None and (len(block) != 2 or min(block) <= 0):
                raise ModelError(f"config: quantization_config.weight_block_size {block} must be "
                                 "two positive integers")

    @property
    def text(self) -> TextConfig:
        return self.text_config

    @property
    def vision(self) -> VisionConfig:
        return self.vision_config

    @property
    def is_moe(self) -> bool:
        return self.text_config.is_moe

    @property
    def eos_token_ids(self) -> list[int]:
        """Stop ids named by the config: top level first, then text_config, without repeats."""
        ids = _id_list(self.eos_token_id) + _id_list(self.text_config.eos_token_id)
        return list(dict.fromkeys(ids))

    @property
    def quant_method(self) -> str | None:
        if not self.quantization_config:
            return None
        return str(self.quantization_config.get("quant_method", "")).lower() or None

    @property
    def weight_block_size(self) -> tuple[int, int] | None:
        """FP8 block shape (rows, cols) of one `weight_scale_inv` entry, or None."""
        if not self.quantization_config:
            return None
        block = self.quantization_config.get("weight_block_size")
        if block is None:
            return None
        return tuple(int(b) for b in block)  # type: ignore[return-value]

    @property
    def modules_to_not_convert(self) -> list[str]:
        if not self.quantization_config:
            return []
        return list(self.quantization_config.get("modules_to_not_convert") or [])


def load_config(model_dir: str | Path) -> ModelConfig:
    """`ModelConfig` of the checkpoint folder `model_dir` (its `config.json`)."""
    path = Path(model_dir) / "config.json"
    if not Path(model_dir).is_dir():
        raise ModelError(f"model directory not found: {model_dir}",
                         hint="pass a folder holding config.json and *.safetensors, or use "
                              "`docextract model pull REPO_ID`")
    if not path.is_file():
        raise ModelError(f"no config.json in {model_dir}",
                         hint="is this a Hugging Face checkpoint folder?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}") from exc
    except RecursionError:
        raise ModelError(f"cannot read {path}: the JSON nests too deeply",
                         hint="config.json is damaged or is not a Qwen3.5 config") from None
    try:
        return ModelConfig.from_dict(data)
    except ModelError as exc:
        raise ModelError(f"{path}: {exc.message}", hint=exc.hint) from exc
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{path}: malformed value: {exc}") from exc
