"""Tiny random Qwen3.5 checkpoints for the engine tests, built and saved WITH transformers.

Interface (stable: the parity tests build on it)

`tiny_checkpoint(kind="moe", *, tied=False, layout="per_expert", shards=1, dtype="float32",
                 mtp=False, fp8_block=(128, 128)) -> TinyCheckpoint`  (session fixture, a factory)
    kind    "moe" (Qwen3_5MoeForConditionalGeneration) or "dense" (Qwen3_5ForConditionalGeneration)
    tied    tie_word_embeddings (no `lm_head.weight` in the files)
    layout  "per_expert": as `save_pretrained` writes (`mlp.experts.{e}.{gate,up,down}_proj.weight`)
            "fused":      official BF16 release layout (`mlp.experts.gate_up_proj` [E, 2I, H],
                          `mlp.experts.down_proj` [E, H, I])
            "fp8":        official FP8 form: F8_E4M3 weights + `weight_scale_inv` blocks of
                          `fp8_block`, experts per expert, `quantization_config` in config.json;
                          in_proj_a/b, routers, shared_expert_gate, norms, conv, embeddings,
                          lm_head and the vision tower stay unquantised
    shards  >1 writes `model-0000k-of-0000n.safetensors` + `model.safetensors.index.json`, tensors
            dealt round-robin so that a layer's experts and an FP8 weight and its scale land in
            different files
    dtype   "float32", or "bfloat16" as the official release stores it (A_log and
            linear_attn.norm.weight stay F32)
    mtp     adds a `mtp.*` next-token-prediction layer (per-expert) that loaders must skip
TinyCheckpoint fields:
    path       the checkpoint folder: config.json, generation_config.json, weights, tokenizer.json,
               tokenizer_config.json, chat_template.jinja, preprocessor_config.json
    reference  a float32 per-expert folder (no mtp) that transformers' `from_pretrained` loads and
               whose tensors are exactly what a correct loader makes of `path` (bf16 rounding and
               FP8 quantise-dequantise applied); equals `path` for the plain float32 checkpoint
    kind, tied, layout, shards, dtype, mtp; `config` (config.json as a dict);
    `tensors()` -> {name: float32 tensor} of `reference` (transformers' per-expert names)

`hf_model(ckpt)` -> the transformers model loaded from `ckpt.reference` (float32, eval, eager
    attention), cached per session.
`tiny_spec` -> the constants below as a namespace (token ids, sizes).
`tiny_tokenizer_dir` -> a folder with only tokenizer.json, tokenizer_config.json and
    chat_template.jinja (the same files every checkpoint carries).
`fp8_codec` -> (quantise, dequantise) of the FP8 layout: w [out, in] <-> (F8_E4M3, scale_inv).

Model: vocab 512 (tokenizer 505, rows 505..511 padding as in the real 248320), hidden 64, 4 layers
(MoE: linear/full/linear/full; dense: linear x3 then full), 4 q heads / 2 kv heads of dim 32,
rotary 8 dims (partial 0.25, mrope_section [2, 1, 1]), DeltaNet 2 key heads / 4 value heads of dim
16, MoE 8 experts top-2 (expert 32, shared 48), dense FFN 96; vision depth 2, hidden 32, 2 heads,
patch 16, merge 2, 8x8 learned position grid. Norm weights, vision LayerNorms, A_log and dt_bias
are perturbed away from their initial values before saving.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>", "<tool_response>", "</tool_response>", "<think>", "</think>",
    "<|audio_start|>", "<|audio_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>",
    "<tts_text_bos_single>", "<|audio_pad|>",
]
# Added tokens that are plain text to the tokenizer (special=false), as in the Qwen releases.
NON_SPECIAL = {"<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
               "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>",
               "</tool_response>", "<think>", "</think>"}
BPE_SIZE = 472
VOCAB_SIZE = 512
TOKEN_IDS = {tok: BPE_SIZE + i for i, tok in enumerate(SPECIAL_TOKENS)}

SPEC = SimpleNamespace(
    vocab_size=VOCAB_SIZE, tokenizer_size=BPE_SIZE + len(SPECIAL_TOKENS), bpe_size=BPE_SIZE,
    token_ids=dict(TOKEN_IDS),
    endoftext_id=TOKEN_IDS["<|endoftext|>"], im_start_id=TOKEN_IDS["<|im_start|>"],
    im_end_id=TOKEN_IDS["<|im_end|>"], vision_start_id=TOKEN_IDS["<|vision_start|>"],
    vision_end_id=TOKEN_IDS["<|vision_end|>"], image_token_id=TOKEN_IDS["<|image_pad|>"],
    video_token_id=TOKEN_IDS["<|video_pad|>"],
    hidden_size=64, num_layers=4, num_experts=8, top_k=2, moe_intermediate=32, shared_intermediate=48,
    dense_intermediate=96, head_dim=32, num_heads=4, num_kv_heads=2,
    linear_key_heads=2, linear_value_heads=4, linear_head_dim=16,
    vision_depth=2, vision_hidden=32, vision_heads=2, patch_size=16, merge_size=2,
    layer_types={"moe": ["linear_attention", "full_attention"] * 2,
                 "dense": ["linear_attention"] * 3 + ["full_attention"]},
)

PRETOKENIZE_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
                     r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

CORPUS = """Extract the fields of this document as JSON. The invoice number, the invoice date and the
seller's GSTIN are printed at the top of the first page; the buyer's name and address follow.
Each line item has a description, an HSN code, a quantity, a unit price, a taxable value and the
CGST, SGST or IGST rate and amount. The grand total is written in figures and in words.
A bank statement lists the account holder, the account number, the IFSC code, the branch and the
statement period, then one row per transaction: date, narration, cheque or reference number,
withdrawal, deposit and closing balance. Opening balance plus deposits minus withdrawals must equal
the closing balance. The permanent account number card shows the name, the father's name, the date
of birth and a ten character number such as ABCDE1234F. The Aadhaar card shows a twelve digit
number, the holder's name in English and in Hindi, the gender and the year or date of birth.
UK VAT invoices carry a VAT registration number like GB 123 4567 89, a tax point, net amounts,
the VAT rate of 20%, 5% or 0%, and the total including VAT in pounds sterling (£).
आधार संख्या: 1234 5678 9012। नाम: राहुल कुमार। जन्म तिथि: 15/08/1987। पुरुष। भारत सरकार।
आयकर विभाग स्थायी लेखा संख्या कार्ड। पिता का नाम। हस्ताक्षर।
{"invoice_number": "INV-2024-0042", "invoice_date": "2024-03-31", "gstin": "27AAPFU0939F1Z5",
 "total": "1,23,456.78", "currency": "INR", "items": [{"description": "Steel rods", "qty": 12}]}
Amounts: ₹ 1,180.00  ₹12,34,567.89  £240.00  €99.50  $1,000  0.00  -42.10  3.14159
"""

# A chat template written in the shape of the Qwen3.5 release's (macro over content items,
# ChatML turns, thinking switch); the tokenizer tests check it renders the documented format.
CHAT_TEMPLATE = """{%- set image_count = namespace(value=0) %}
{%- set video_count = namespace(value=0) %}
{%- macro render_content(content, do_vision_count, is_system_content=false) %}
    {%- if content is string %}
        {{- content }}
    {%- elif content is iterable and content is not mapping %}
        {%- for item in content %}
            {%- if 'image' in item or 'image_url' in item or item.type == 'image' %}
                {%- if is_system_content %}
                    {{- raise_exception('System message cannot contain images.') }}
                {%- endif %}
                {%- if do_vision_count %}
                    {%- set image_count.value = image_count.value + 1 %}
                {%- endif %}
                {%- if add_vision_id %}
                    {{- 'Picture ' ~ image_count.value ~ ': ' }}
                {%- endif %}
                {{- '<|vision_start|><|image_pad|><|vision_end|>' }}
            {%- elif 'video' in item or item.type == 'video' %}
                {%- if do_vision_count %}
                    {%- set video_count.value = video_count.value + 1 %}
                {%- endif %}
                {%- if add_vision_id %}
                    {{- 'Video ' ~ video_count.value ~ ': ' }}
                {%- endif %}
                {{- '<|vision_start|><|video_pad|><|vision_end|>' }}
            {%- elif 'text' in item %}
                {{- item.text }}
            {%- else %}
                {{- raise_exception('Unexpected item type in content.') }}
            {%- endif %}
        {%- endfor %}
    {%- elif content is none or content is undefined %}
        {{- '' }}
    {%- else %}
        {{- raise_exception('Unexpected content type.') }}
    {%- endif %}
{%- endmacro %}
{%- if not messages %}
    {{- raise_exception('No messages provided.') }}
{%- endif %}
{%- if messages[0].role == 'system' %}
    {%- set content = render_content(messages[0].content, false, true)|trim %}
    {{- '<|im_start|>system\\n' + content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- set content = render_content(message.content, true)|trim %}
    {%- if message.role == "system" %}
        {%- if not loop.first %}
            {{- raise_exception('System message must be at the beginning.') }}
        {%- endif %}
    {%- elif message.role == "user" %}
        {{- '<|im_start|>user\\n' + content + '<|im_end|>\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>assistant\\n' + content + '<|im_end|>\\n' }}
    {%- else %}
        {{- raise_exception('Unexpected message role.') }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- else %}
        {{- '<think>\\n' }}
    {%- endif %}
{%- endif %}
"""

PREPROCESSOR_CONFIG = {
    "image_processor_type": "Qwen2VLImageProcessorFast", "processor_class": "Qwen3VLProcessor",
    "do_convert_rgb": True, "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255,
    "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2,
    "size": {"shortest_edge": 65536, "longest_edge": 16777216},
}

# Linear layers the official FP8 release keeps unquantised (besides everything that is not 2-D).
_FP8_KEEP = ("linear_attn.in_proj_a.", "linear_attn.in_proj_b.", "mlp.gate.", "shared_expert_gate.",
             "embed_tokens.", "lm_head.", "model.visual.", "mtp.fc.")
FP8_MAX = 448.0


def _text_config(kind: str, tied: bool) -> dict:
    text = {
        "vocab_size": VOCAB_SIZE, "hidden_size": SPEC.hidden_size,
        "num_hidden_layers": SPEC.num_layers, "num_attention_heads": SPEC.num_heads,
        "num_key_value_heads": SPEC.num_kv_heads, "head_dim": SPEC.head_dim,
        "linear_num_key_heads": SPEC.linear_key_heads,
        "linear_num_value_heads": SPEC.linear_value_heads,
        "linear_key_head_dim": SPEC.linear_head_dim,
        "linear_value_head_dim": SPEC.linear_head_dim, "linear_conv_kernel_dim": 4,
        "rms_norm_eps": 1e-6, "initializer_range": 0.1, "tie_word_embeddings": tied,
        "max_position_embeddings": 4096, "eos_token_id": SPEC.endoftext_id,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10_000_000.0,
                            "partial_rotary_factor": 0.25, "mrope_section": [2, 1, 1],
                            "mrope_interleaved": True},
    }
    if kind == "moe":
        text.update(full_attention_interval=2, num_experts=SPEC.num_experts,
                    num_experts_per_tok=SPEC.top_k, moe_intermediate_size=SPEC.moe_intermediate,
                    shared_expert_intermediate_size=SPEC.shared_intermediate)
    else:
        text.update(layer_types=SPEC.layer_types["dense"], intermediate_size=SPEC.dense_intermediate)
    return text


def _hf_classes(kind: str):
    if kind == "moe":
        from transformers import Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration

        return Qwen3_5MoeConfig, Qwen3_5MoeForConditionalGeneration
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    return Qwen3_5Config, Qwen3_5ForConditionalGeneration


def _build_tokenizer(out: Path) -> None:
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

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=BPE_SIZE, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([CORPUS], trainer)
    if tok.get_vocab_size() != BPE_SIZE:
        raise RuntimeError(f"tiny BPE has {tok.get_vocab_size()} tokens, expected {BPE_SIZE}")
    for text in SPECIAL_TOKENS:
        special = text not in NON_SPECIAL
        tok.add_tokens([AddedToken(text, special=special, normalized=False)])
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Qwen3_5Tokenizer", "bos_token": None, "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>", "unk_token": None, "add_bos_token": False,
        "model_max_length": 262144, "clean_up_tokenization_spaces": False,
    }, indent=2))
    (out / "chat_template.jinja").write_text(CHAT_TEMPLATE)


def _perturb(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.1 * torch.randn_like(p))


def fp8_quantise(w: torch.Tensor, block: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """w [out, in] float32 -> (F8_E4M3 [out, in], scale_inv [ceil(out/bo), ceil(in/bi)] float32)."""
    bo, bi = block
    out_f, in_f = w.shape
    nbo, nbi = math.ceil(out_f / bo), math.ceil(in_f / bi)
    padded = torch.zeros(nbo * bo, nbi * bi, dtype=torch.float32)
    padded[:out_f, :in_f] = w.float()
    tiles = padded.view(nbo, bo, nbi, bi)
    scale = (tiles.abs().amax(dim=(1, 3)) / FP8_MAX).clamp(min=1e-12)
    q = (tiles / scale[:, None, :, None]).clamp(-FP8_MAX, FP8_MAX).to(torch.float8_e4m3fn)
    return q.view(nbo * bo, nbi * bi)[:out_f, :in_f].contiguous(), scale.float()


def fp8_dequantise(q: torch.Tensor, scale: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    bo, bi = block
    full = scale.repeat_interleave(bo, 0).repeat_interleave(bi, 1)
    return q.float() * full[: q.shape[0], : q.shape[1]]


def _fp8_eligible(name: str, t: torch.Tensor) -> bool:
    return t.ndim == 2 and name.endswith(".weight") and not any(k in name for k in _FP8_KEEP)


def _mtp_tensors(kind: str, tied: bool) -> dict[str, torch.Tensor]:
    """A one-layer MTP head shaped like the release's (full attention, per-expert MoE)."""
    h, hd = SPEC.hidden_size, SPEC.head_dim
    shapes = {
        "mtp.fc.weight": (h, 2 * h), "mtp.pre_fc_norm_embedding.weight": (h,),
        "mtp.pre_fc_norm_hidden.weight": (h,), "mtp.norm.weight": (h,),
        "mtp.layers.0.input_layernorm.weight": (h,),
        "mtp.layers.0.post_attention_layernorm.weight": (h,),
        "mtp.layers.0.self_attn.q_proj.weight": (SPEC.num_heads * hd * 2, h),
        "mtp.layers.0.self_attn.k_proj.weight": (SPEC.num_kv_heads * hd, h),
        "mtp.layers.0.self_attn.v_proj.weight": (SPEC.num_kv_heads * hd, h),
        "mtp.layers.0.self_attn.o_proj.weight": (h, SPEC.num_heads * hd),
        "mtp.layers.0.self_attn.q_norm.weight": (hd,), "mtp.layers.0.self_attn.k_norm.weight": (hd,),
    }
    if kind == "moe":
        i = SPEC.moe_intermediate
        shapes["mtp.layers.0.mlp.gate.weight"] = (SPEC.num_experts, h)
        for e in range(SPEC.num_experts):
            for part, shape in (("gate_proj", (i, h)), ("up_proj", (i, h)), ("down_proj", (h, i))):
                shapes[f"mtp.layers.0.mlp.experts.{e}.{part}.weight"] = shape
    else:
        i = SPEC.dense_intermediate
        shapes.update({"mtp.layers.0.mlp.gate_proj.weight": (i, h),
                       "mtp.layers.0.mlp.up_proj.weight": (i, h),
                       "mtp.layers.0.mlp.down_proj.weight": (h, i)})
    gen = torch.Generator().manual_seed(7)
    return {k: 0.1 * torch.randn(s, generator=gen) for k, s in shapes.items()}


def _fuse_experts(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    import re

    pattern = re.compile(r"^(model\.language_model\.layers\.\d+\.mlp\.experts)\.(\d+)\."
                         r"(gate_proj|up_proj|down_proj)\.weight$")
    out, groups = {}, {}
    for name, t in tensors.items():
        m = pattern.match(name)
        if m is None:
            out[name] = t
        else:
            groups.setdefault(m.group(1), {})[(int(m.group(2)), m.group(3))] = t
    for prefix, parts in groups.items():
        n = 1 + max(e for e, _ in parts)
        out[f"{prefix}.gate_up_proj"] = torch.stack(
            [torch.cat([parts[(e, "gate_proj")], parts[(e, "up_proj")]], dim=0) for e in range(n)])
        out[f"{prefix}.down_proj"] = torch.stack([parts[(e, "down_proj")] for e in range(n)])
    return out


def _write_weights(folder: Path, tensors: dict[str, torch.Tensor], shards: int) -> None:
    meta = {"format": "pt"}
    if shards == 1:
        save_file(tensors, str(folder / "model.safetensors"), metadata=meta)
        return
    names = sorted(tensors)
    files = [f"model-{k + 1:05d}-of-{shards:05d}.safetensors" for k in range(shards)]
    weight_map = {name: files[i % shards] for i, name in enumerate(names)}
    for k, file in enumerate(files):
        part = {n: tensors[n] for n in names if weight_map[n] == file}
        save_file(part, str(folder / file), metadata=meta)
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))


@dataclass
class TinyCheckpoint:
    path: Path
    reference: Path
    kind: str
    tied: bool
    layout: str
    shards: int
    dtype: str
    mtp: bool
    config: dict = field(repr=False)

    def tensors(self) -> dict[str, torch.Tensor]:
        return load_file(str(self.reference / "model.safetensors"))


class _Builder:
    def __init__(self, root: Path):
        self.root = root
        self.cache: dict[tuple, TinyCheckpoint] = {}
        self.tokenizer_dir: Path | None = None

    def _tokenizer(self) -> Path:
        if self.tokenizer_dir is None:
            self.tokenizer_dir = self.root / "tokenizer"
            self.tokenizer_dir.mkdir()
            _build_tokenizer(self.tokenizer_dir)
        return self.tokenizer_dir

    def _copy_side_files(self, src: Path, dst: Path) -> None:
        if src != dst and (src / "generation_config.json").exists():
            shutil.copy(src / "generation_config.json", dst / "generation_config.json")
        for f in self._tokenizer().iterdir():
            shutil.copy(f, dst / f.name)
        (dst / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2))

    def base(self, kind: str, tied: bool) -> TinyCheckpoint:
        key = (kind, tied)
        if key in self.cache:
            return self.cache[key]
        config_cls, model_cls = _hf_classes(kind)
        config = config_cls(
            text_config=_text_config(kind, tied),
            vision_config={"depth": SPEC.vision_depth, "hidden_size": SPEC.vision_hidden,
                               "intermediate_size": 64, "num_heads": SPEC.vision_heads,
                               "out_hidden_size": SPEC.hidden_size, "num_position_embeddings": 64,
                               "patch_size": SPEC.patch_size, "spatial_merge_size": SPEC.merge_size,
                               "temporal_patch_size": 2, "initializer_range": 0.1},
            image_token_id=SPEC.image_token_id, video_token_id=SPEC.video_token_id,
            vision_start_token_id=SPEC.vision_start_id, vision_end_token_id=SPEC.vision_end_id,
            tie_word_embeddings=tied,
        )
        with torch.random.fork_rng():
            torch.manual_seed(1234 + 10 * (kind == "dense") + tied)
            model = model_cls(config).float().eval()
            _perturb(model)
        folder = self.root / f"{kind}-{'tied' if tied else 'untied'}-base"
        model.save_pretrained(folder)
        data = json.loads((folder / "config.json").read_text())
        # As in the release files: both spellings of the layer pattern, top-level stop/pad ids.
        if kind == "moe":
            data["text_config"]["full_attention_interval"] = 2
        data["eos_token_id"] = SPEC.im_end_id
        data["pad_token_id"] = SPEC.endoftext_id
        (folder / "config.json").write_text(json.dumps(data, indent=2))
        self._copy_side_files(folder, folder)
        ckpt = TinyCheckpoint(folder, folder, kind, tied, "per_expert", 1, "float32", False, data)
        self.cache[key] = ckpt
        return ckpt

    def make(self, kind: str = "moe", *, tied: bool = False, layout: str = "per_expert",
             shards: int = 1, dtype: str = "float32", mtp: bool = False,
             fp8_block: tuple[int, int] = (128, 128)) -> TinyCheckpoint:
        if kind not in ("moe", "dense") or layout not in ("per_expert", "fused", "fp8"):
            raise ValueError(f"unknown tiny checkpoint kind={kind!r} layout={layout!r}")
        if dtype not in ("float32", "bfloat16") or shards < 1:
            raise ValueError(f"unknown tiny checkpoint dtype={dtype!r} shards={shards}")
        if layout == "fused" and kind != "moe":
            raise ValueError("the fused expert layout needs kind='moe'")
        fp8_block = tuple(fp8_block)
        key = (kind, tied, layout, shards, dtype, mtp, fp8_block if layout == "fp8" else None)
        if key in self.cache:
            return self.cache[key]
        base = self.base(kind, tied)
        if key[2:] == ("per_expert", 1, "float32", False, None):
            self.cache[key] = base
            return base
        name = "-".join([kind, "tied" if tied else "untied", layout, f"{shards}sh", dtype]
                        + (["mtp"] if mtp else []) + ([f"b{fp8_block[0]}x{fp8_block[1]}"]
                                                      if layout == "fp8" else []))
        folder = self.root / name
        folder.mkdir()
        tensors = load_file(str(base.path / "model.safetensors"))
        if mtp:
            tensors.update(_mtp_tensors(kind, tied))
        if dtype == "bfloat16":
            # The release keeps A_log and the DeltaNet output norm in F32.
            tensors = {n: t if n.endswith(("A_log", "linear_attn.norm.weight"))
                       else t.to(torch.bfloat16) for n, t in tensors.items()}
        reference = {n: t.float() for n, t in tensors.items() if not n.startswith("mtp.")}
        stored = dict(tensors)
        config = json.loads(json.dumps(base.config))
        if layout == "fp8":
            stored = {}
            for n, t in tensors.items():
                if _fp8_eligible(n, t):
                    q, scale = fp8_quantise(t.float(), fp8_block)
                    stored[n], stored[n + "_scale_inv"] = q, scale
                    if n in reference:
                        reference[n] = fp8_dequantise(q, scale, fp8_block)
                else:
                    stored[n] = t
            keep = sorted({n.rsplit(".", 1)[0] for n, t in tensors.items()
                           if t.ndim == 2 and n.endswith(".weight") and not _fp8_eligible(n, t)
                           and not n.startswith("model.visual.")})
            config["quantization_config"] = {
                "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                "weight_block_size": list(fp8_block),
                "modules_to_not_convert": keep + ["model.visual"],
            }
        elif layout == "fused":
            stored = _fuse_experts(stored)
        if mtp:
            config["text_config"]["mtp_num_hidden_layers"] = 1
            config["text_config"]["mtp_use_dedicated_embeddings"] = False
        if dtype == "bfloat16":
            config["dtype"] = "bfloat16"
            config["text_config"]["dtype"] = "bfloat16"
        _write_weights(folder, stored, shards)
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        self._copy_side_files(base.path, folder)
        if layout == "per_expert" and dtype == "float32":
            ref_folder = base.path
        else:
            ref_folder = self.root / (name + "-reference")
            ref_folder.mkdir()
            save_file(reference, str(ref_folder / "model.safetensors"), metadata={"format": "pt"})
            (ref_folder / "config.json").write_text(json.dumps(base.config, indent=2))
            self._copy_side_files(base.path, ref_folder)
        ckpt = TinyCheckpoint(folder, ref_folder, kind, tied, layout, shards, dtype, mtp, config)
        self.cache[key] = ckpt
        return ckpt


@pytest.fixture(scope="session")
def tiny_spec():
    return SPEC


@pytest.fixture(scope="session")
def _tiny_builder(tmp_path_factory):
    return _Builder(tmp_path_factory.mktemp("tiny-qwen35"))


@pytest.fixture(scope="session")
def tiny_checkpoint(_tiny_builder):
    return _tiny_builder.make


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(_tiny_builder):
    """A folder with only tokenizer.json, tokenizer_config.json and chat_template.jinja."""
    return _tiny_builder._tokenizer()


@pytest.fixture(scope="session")
def hf_model():
    cache: dict[Path, torch.nn.Module] = {}

    def load(ckpt: TinyCheckpoint) -> torch.nn.Module:
        if ckpt.reference not in cache:
            _, model_cls = _hf_classes(ckpt.kind)
            model = model_cls.from_pretrained(ckpt.reference, dtype=torch.float32,
                                              attn_implementation="eager")
            cache[ckpt.reference] = model.eval()
        return cache[ckpt.reference]

    return load


@pytest.fixture(scope="session")
def fp8_codec():
    """(quantise, dequantise) of the tiny FP8 layout: w [out, in] <-> (F8_E4M3, scale_inv)."""
    return SimpleNamespace(quantise=fp8_quantise, dequantise=fp8_dequantise)
