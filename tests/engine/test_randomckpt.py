"""Random checkpoints written without transformers: the release layout, loading by our strict
loader and by transformers with equal logits, the tokenizer, determinism, in-memory models."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from docextract.engine import randomckpt
from docextract.engine.config import load_config
from docextract.engine.engine import Engine
from docextract.engine.info import count_parameters, expected_shapes
from docextract.engine.tokenizer import Tokenizer
from docextract.engine.weights import model_tensors, read_headers
from docextract.errors import UsageError

PROMPT = "Extract the PAN ABCDE1234F of राहुल कुमार; total ₹ 1,18,000.00 (£240.00)."


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(kind, dtype name) -> a written tiny checkpoint folder, seed 0."""
    root = tmp_path_factory.mktemp("randomckpt")
    cache: dict[tuple[str, str], Path] = {}

    def get(kind: str = "moe", dtype: str = "float32") -> Path:
        key = (kind, dtype)
        if key not in cache:
            cache[key] = randomckpt.write(root / f"{kind}-{dtype}", kind=kind,
                                          dtype=getattr(torch, dtype))
        return cache[key]

    return get


@pytest.fixture(scope="module")
def engine(written):
    cache: dict[str, Engine] = {}

    def get(kind: str = "moe") -> Engine:
        if kind not in cache:
            cache[kind] = Engine.load(written(kind), device="cpu", dtype=torch.float32)
        return cache[kind]

    return get


def test_layout_is_the_release_layout(written):
    path = written("moe", "bfloat16")
    assert {p.name for p in path.iterdir()} == {
        "config.json", "generation_config.json", "preprocessor_config.json", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"}
    data = json.loads((path / "config.json").read_text())
    assert data["architectures"] == ["Qwen3_5MoeForConditionalGeneration"]
    assert data["model_type"] == "qwen3_5_moe"
    assert data["text_config"]["model_type"] == "qwen3_5_moe_text"
    assert data["text_config"]["layer_types"] == ["linear_attention", "full_attention"] * 2
    assert data["vision_config"]["out_hidden_size"] == data["text_config"]["hidden_size"]
    config = load_config(path)
    entries = read_headers(path)
    shapes = expected_shapes(config)
    assert {n: e.shape for n, e in entries.items()} == shapes
    layer = "model.language_model.layers.0."
    assert entries[layer + "mlp.experts.gate_up_proj"].shape == (8, 64, 64)
    assert entries[layer + "mlp.experts.down_proj"].shape == (8, 64, 32)
    f32 = {n for n, e in entries.items() if e.dtype == "F32"}
    assert f32 == {n for n in shapes
                   if n.endswith(("linear_attn.A_log", "linear_attn.norm.weight"))}
    assert {e.dtype for n, e in entries.items() if n not in f32} == {"BF16"}


def test_token_ids_agree_between_config_tokenizer_and_release(written):
    path = written("dense")
    config = load_config(path)
    tok = Tokenizer.from_dir(path, config)
    first = randomckpt.TINY_FIRST_SPECIAL_ID
    for i, text in enumerate(randomckpt.SPECIAL_TOKENS):
        assert tok.token_to_id(text) == first + i
    assert config.image_token_id == tok.image_pad_id == first + 12
    assert config.eos_token_ids == [tok.im_end_id, tok.endoftext_id]
    assert tok.vocab_size == first + 33 <= config.text_config.vocab_size
    assert "<think>" in tok.decode([tok.token_to_id("<think>")], skip_special_tokens=True)
    real = randomckpt.config_dict("moe", "35b-a3b")
    assert (real["image_token_id"], real["video_token_id"], real["vision_start_token_id"],
            real["vision_end_token_id"], real["text_config"]["eos_token_id"]) == (
        248056, 248057, 248053, 248054, 248044)
    dense = randomckpt.config_dict("dense", "0.8b")
    assert (dense["eos_token_id"], dense["pad_token_id"]) == (248046, 248044)


def test_norms_and_decay_are_not_at_their_initial_values(written):
    from safetensors.torch import load_file

    tensors = load_file(str(written() / "model.safetensors"))
    offsets = tensors["model.language_model.layers.1.self_attn.q_norm.weight"]
    plain = tensors["model.language_model.layers.0.linear_attn.norm.weight"]
    vision = tensors["model.visual.blocks.0.norm1.weight"]
    assert 0.05 < offsets.abs().mean() < 0.2
    assert 0.05 < (plain - 1).abs().mean() < 0.2 and 0.05 < (vision - 1).abs().mean() < 0.2
    a_log = tensors["model.language_model.layers.0.linear_attn.A_log"]
    assert torch.all((a_log >= 0) & (a_log <= torch.log(torch.tensor(16.0))))
    assert 0.01 < tensors["model.language_model.embed_tokens.weight"].std() < 0.03


@pytest.mark.parametrize("kind", ["moe", "dense"])
def test_engine_and_transformers_give_the_same_logits(kind, written, engine):
    from transformers import (
        Qwen3_5ForConditionalGeneration,
        Qwen3_5MoeForConditionalGeneration,
    )

    cls = Qwen3_5MoeForConditionalGeneration if kind == "moe" else Qwen3_5ForConditionalGeneration
    hf, info = cls.from_pretrained(written(kind), dtype=torch.float32, attn_implementation="eager",
                                   output_loading_info=True)
    assert not any(info.get(k) for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    ours = engine(kind)
    ids = torch.tensor([ours.tokenizer.encode(PROMPT)])
    with torch.no_grad():
        ref = hf.eval()(input_ids=ids).logits
    got = ours.logits(ids)
    assert torch.isfinite(ref).all() and ref.std() > 0.3
    assert _rel(got, ref) <= 1e-4


def test_sharded_checkpoint_loads_like_a_single_file(tmp_path, engine):
    path = randomckpt.write(tmp_path / "sharded", max_shard_bytes=64 * 1024, tokenizer=False)
    index = json.loads((path / "model.safetensors.index.json").read_text())
    shards = sorted({f for f in index["weight_map"].values()})
    assert len(shards) > 2 and not (path / "model.safetensors").exists()
    assert sorted(p.name for p in path.glob("*.safetensors")) == shards
    assert not (path / "tokenizer.json").exists()
    from docextract.engine.qwen3_5 import Model
    from docextract.engine.weights import load_weights

    config = load_config(path)
    model = Model.empty(config, torch.float32, "cpu")
    load_weights(model, path, config)
    want = model_tensors(engine("moe").model)
    got = model_tensors(model)
    assert got.keys() == want.keys()
    assert all(torch.equal(got[n], want[n]) for n in want)


def test_deterministic_for_a_seed(tmp_path, written):
    again = randomckpt.write(tmp_path / "again", kind="moe")
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (again / name).read_bytes() == (written("moe") / name).read_bytes()
    other = randomckpt.write(tmp_path / "other", kind="moe", seed=1, tokenizer=False)
    assert (other / "model.safetensors").read_bytes() != (again / "model.safetensors").read_bytes()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_random_model_in_memory_equals_the_written_checkpoint(dtype, written):
    path = written("moe", "float32" if dtype == torch.float32 else "bfloat16")
    loaded = Engine.load(path, device="cpu", dtype=dtype).model
    built = randomckpt.random_model(load_config(path), "cpu", dtype, seed=0)
    want, got = model_tensors(loaded), model_tensors(built)
    assert got.keys() == set(expected_shapes(load_config(path)))
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        assert torch.equal(got[name], want[name]), name


def test_bf16_checkpoint_runs_finite_and_as_close_as_transformers(written, engine):
    from transformers import Qwen3_5MoeForConditionalGeneration

    path = written("moe", "bfloat16")
    ids = torch.tensor([engine().tokenizer.encode(PROMPT)])
    ref = Engine.load(path, device="cpu", dtype=torch.float32).logits(ids)
    got = Engine.load(path, device="cpu", dtype=torch.bfloat16).logits(ids)
    hf = Qwen3_5MoeForConditionalGeneration.from_pretrained(path, dtype=torch.bfloat16,
                                                            attn_implementation="eager")
    with torch.no_grad():
        hf_err = _rel(hf.eval()(input_ids=ids).logits.float(), ref)
    # Random routers have near ties that bf16 flips: the error is the model's, not the engine's.
    assert torch.isfinite(got).all() and got.abs().max() < 100
    assert _rel(got, ref) <= 1.5 * hf_err


def test_random_engine_on_a_scaled_down_35b_a3b():
    # The real preset's structure (interval-4 layer pattern, fused experts, untied head) with
    # small widths and the release's added-token ids moved into a small vocabulary.
    preset = {"base": "35b-a3b", "first_special_id": 300,
              "text_config": {"vocab_size": 336, "hidden_size": 64, "num_hidden_layers": 4,
                              "num_attention_heads": 4, "head_dim": 32,
                              "linear_num_key_heads": 2, "linear_num_value_heads": 4,
                              "linear_key_head_dim": 16, "linear_value_head_dim": 16,
                              "num_experts": 16, "moe_intermediate_size": 16,
                              "shared_expert_intermediate_size": 16,
                              "rope_parameters": {"mrope_section": [2, 1, 1]}},
              "vision_config": {"depth": 1, "hidden_size": 32, "num_heads": 2,
                                "intermediate_size": 32, "num_position_embeddings": 64}}
    config = randomckpt.model_config("moe", preset)
    t = config.text_config
    assert (t.num_experts_per_tok, t.layer_types[-1], t.linear_attention_layers) == (
        8, "full_attention", [0, 1, 2])
    eng = randomckpt.random_engine("moe", preset, dtype=torch.bfloat16)
    assert set(model_tensors(eng.model)) == set(expected_shapes(config))
    assert eng.tokenizer.image_pad_id == config.image_token_id == 312
    from docextract.engine.api import Request

    total = {"type": "string", "pattern": "^₹[0-9]{2}$"}
    schema = {"type": "object", "properties": {"total": total}, "required": ["total"],
              "additionalProperties": False}
    free, constrained = eng.generate([Request(prompt="Hello ₹", max_new_tokens=4),
                                      Request(prompt="Total?", json_schema=schema,
                                              max_new_tokens=32)])
    assert len(free.tokens) >= 1 and free.finish_reason in ("stop", "length")
    assert constrained.finish_reason == "stop"
    assert re.fullmatch(r'\{"total":"₹[0-9]{2}"\}', constrained.text)
    assert torch.isfinite(eng.logits(torch.tensor([eng.tokenizer.encode(PROMPT)]))).all()


def test_35b_a3b_preset_has_the_release_sizes_without_allocating():
    config = randomckpt.model_config("moe", "35b-a3b")
    t, v = config.text_config, config.vision_config
    assert (t.hidden_size, t.num_hidden_layers, t.num_experts, t.num_experts_per_tok,
            t.moe_intermediate_size, t.vocab_size) == (2048, 40, 256, 8, 512, 248320)
    assert (v.depth, v.hidden_size, v.out_hidden_size) == (27, 1152, 2048)
    assert len(t.full_attention_layers) == 10
    counts = count_parameters(expected_shapes(config), config)
    assert 34.5e9 < counts["total"] < 35.5e9
    assert abs(counts["active_per_token"] - 3.46e9) < 0.03e9


def test_real_vocabulary_tokenizer_puts_added_tokens_at_release_ids():
    tok = randomckpt.build_tokenizer(248044)
    assert tok.get_vocab_size() == 248077
    assert tok.token_to_id("<|endoftext|>") == 248044
    assert tok.token_to_id("<|image_pad|>") == 248056
    assert tok.token_to_id("<|audio_pad|>") == 248076
    ids = tok.encode("<|im_start|>user\n₹ 12,345<|im_end|>").ids
    assert ids[0] == 248045 and ids[-1] == 248046 and max(ids[1:-1]) < 248044


def test_tokenizer_encodes_every_byte_and_hindi(written):
    tok = Tokenizer.from_dir(written())
    alphabet = {tok.token_bytes(i) for i in range(randomckpt.TINY_FIRST_SPECIAL_ID)}
    assert {bytes([b]) for b in range(256)} <= alphabet
    text = "आधार संख्या: 2345 6789 0123 ₹ 1,180.00"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    # Trained merges: Devanagari words take fewer tokens than their UTF-8 bytes.
    assert len(ids) < 0.75 * len(text.encode("utf-8"))


@pytest.fixture(scope="module")
def backend(written):
    from tokenizers import Tokenizer as Backend

    return Backend.from_file(str(written() / "tokenizer.json"))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_tokenizer_round_trips_any_text(backend, text):
    ids = backend.encode(text, add_special_tokens=False).ids
    assert all(0 <= i < randomckpt.TINY_FIRST_SPECIAL_ID + 33 for i in ids)
    assert backend.decode(ids, skip_special_tokens=False) == unicodedata.normalize("NFC", text)


def test_transformers_reads_the_tokenizer_the_same_way(written):
    from transformers import AutoTokenizer

    path = written()
    hf = AutoTokenizer.from_pretrained(path)
    ours = Tokenizer.from_dir(path, load_config(path))
    text = "<|im_start|>user\n" + PROMPT + "<|im_end|>\n<|im_start|>assistant\n"
    assert hf.encode(text, add_special_tokens=False) == ours.encode(text)
    assert hf.convert_tokens_to_ids("<|image_pad|>") == ours.image_pad_id
    assert hf.eos_token == "<|im_end|>" and hf.pad_token == "<|endoftext|>"


@pytest.mark.parametrize("kind, preset, message", [
    ("mamba", "tiny", "unknown checkpoint kind"),
    ("moe", "70b", "unknown preset"),
    ("dense", "35b-a3b", "has no dense model"),
    ("moe", {"first_special_id": 500}, "do not fit a vocabulary of 512"),
    ("moe", {"first_special_id": 100}, "do not fit"),
])
def test_bad_presets_are_usage_errors(kind, preset, message):
    with pytest.raises(UsageError, match=message):
        randomckpt.config_dict(kind, preset)


def test_the_writer_never_imports_transformers(tmp_path):
    code = ("import sys, torch\n"
            "from docextract.engine import randomckpt\n"
            f"randomckpt.write({str(tmp_path / 'ckpt')!r}, kind='dense', dtype=torch.bfloat16)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'transformers'))\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                         cwd=tmp_path, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
    assert (tmp_path / "ckpt" / "model.safetensors").is_file()
