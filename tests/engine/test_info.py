"""`docextract model info`: counts from headers and config, checked against transformers."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from docextract.engine.config import load_config
from docextract.engine.info import QUANT_GROUP_SIZE, describe, expected_shapes
from docextract.engine.weights import read_headers


@pytest.mark.parametrize("kind,tied", [("moe", False), ("moe", True), ("dense", False),
                                       ("dense", True)])
def test_expected_shapes_are_what_transformers_saves(tiny_checkpoint, kind, tied):
    ckpt = tiny_checkpoint(kind, tied=tied)
    stored = {n: e.shape for n, e in read_headers(ckpt.path).items()}
    assert expected_shapes(load_config(ckpt.path), fused_experts=False) == stored


def test_fused_shapes_are_the_official_layout(tiny_checkpoint):
    ckpt = tiny_checkpoint("moe", layout="fused")
    stored = {n: e.shape for n, e in read_headers(ckpt.path).items()}
    assert expected_shapes(load_config(ckpt.path)) == stored


@pytest.mark.parametrize("kind", ["moe", "dense"])
def test_parameter_counts_match_the_transformers_model(tiny_checkpoint, hf_model, tiny_spec, kind):
    ckpt = tiny_checkpoint(kind)
    info = describe(ckpt.path)
    model = hf_model(ckpt)
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    vision = sum(p.numel() for n, p in params.items() if n.startswith("model.visual."))
    routed = sum(p.numel() for n, p in params.items() if ".mlp.experts." in n)
    p = info["parameters"]
    assert p["total"] == total and p["vision"] == vision and p["routed_experts"] == routed
    assert p["text"] == total - vision
    if kind == "moe":
        assert p["active_per_token"] == total - vision - routed + routed * 2 // 8
        assert info["experts"] == {"count": 8, "top_k": 2, "intermediate_size": 32,
                                   "shared_intermediate_size": 48}
        assert info["layers"]["pattern"] == "LF x 2"
    else:
        assert p["active_per_token"] == total - vision
        assert info["experts"] is None and info["dense_intermediate_size"] == 96
        assert info["layers"]["pattern"] == "LLLF"
    assert info["layers"]["full_attention_layers"] == [i for i, t in enumerate(
        tiny_spec.layer_types[kind]) if t == "full_attention"]
    assert info["architecture"] == type(model).__name__
    assert info["dtypes"] == {"F32": len(read_headers(ckpt.path))}
    assert info["counted_from"] == "safetensors headers"
    assert info["stored_bytes"] == 4 * total
    json.dumps(info)


def test_fp8_checkpoint_counts_the_same_parameters(tiny_checkpoint):
    plain = describe(tiny_checkpoint("moe").path)
    fp8 = describe(tiny_checkpoint("moe", layout="fp8", shards=3, mtp=True).path)
    for key in ("total", "active_per_token", "routed_experts", "vision", "embedding"):
        assert fp8["parameters"][key] == plain["parameters"][key], key
    assert fp8["parameters"]["mtp_not_loaded"] > 0 == plain["parameters"]["mtp_not_loaded"]
    q = fp8["quantization"]
    assert q["method"] == "fp8" and q["weight_block_size"] == [128, 128]
    assert q["fp8_tensors"] == q["scale_tensors"] == fp8["dtypes"]["F8_E4M3"] > 0
    assert fp8["files"] == 3 and fp8["stored_bytes"] < plain["stored_bytes"]
    assert plain["quantization"]["method"] is None


def test_memory_estimates_follow_from_the_counts(tiny_checkpoint):
    info = describe(tiny_checkpoint("moe").path)
    p, mem = info["parameters"], info["memory_estimate"]
    rest = p["total"] - p["routed_experts"]
    assert mem["experts_bf16"]["bytes"] == 2 * p["total"]
    assert mem["experts_int8"]["bytes"] == int(2 * rest + p["routed_experts"]
                                               * (1 + 2 / QUANT_GROUP_SIZE))
    assert mem["experts_int4"]["bytes"] == int(2 * rest + p["routed_experts"]
                                               * (0.5 + 2 / QUANT_GROUP_SIZE))
    assert mem["experts_int4"]["bytes"] < mem["experts_int8"]["bytes"] < mem["experts_bf16"]["bytes"]


def test_config_only_folder_is_counted_from_the_config(tiny_checkpoint, tmp_path):
    ckpt = tiny_checkpoint("moe")
    shutil.copy(ckpt.path / "config.json", tmp_path / "config.json")
    info = describe(tmp_path)
    assert info["counted_from"].startswith("config.json")
    assert info["parameters"] == describe(ckpt.path)["parameters"]
    assert info["dtypes"] == {} and info["stored_bytes"] is None


def test_release_sized_config_is_counted_without_weights(tmp_path):
    """The Qwen3.5-35B-A3B config (values of qwen35.md): 35B total, 3.46B active as published."""
    config = {
        "architectures": ["Qwen3_5MoeForConditionalGeneration"], "model_type": "qwen3_5_moe",
        "tie_word_embeddings": False,
        "text_config": {"hidden_size": 2048, "num_hidden_layers": 40, "num_attention_heads": 16,
                        "num_key_value_heads": 2, "head_dim": 256, "vocab_size": 248320,
                        "num_experts": 256, "num_experts_per_tok": 8, "moe_intermediate_size": 512,
                        "shared_expert_intermediate_size": 512, "full_attention_interval": 4,
                        "rope_parameters": {"rope_type": "default", "rope_theta": 1e7,
                                            "partial_rotary_factor": 0.25,
                                            "mrope_section": [11, 11, 10],
                                            "mrope_interleaved": True}},
        "vision_config": {"depth": 27, "hidden_size": 1152, "intermediate_size": 4304,
                          "num_heads": 16, "out_hidden_size": 2048},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    info = describe(tmp_path)
    p = info["parameters"]
    assert 34.5e9 < p["total"] < 36e9
    assert 3.40e9 < p["active_per_token"] < 3.50e9
    assert info["layers"]["pattern"] == "LLLF x 10"
    assert info["memory_estimate"]["experts_int4"]["gib"] < 25


def test_missing_config_is_a_model_error(tmp_path):
    from docextract.errors import ModelError

    with pytest.raises(ModelError):
        describe(tmp_path)


def test_describe_reads_no_weights(tiny_checkpoint, tmp_path, monkeypatch):
    import safetensors

    folder = tmp_path / "c"
    shutil.copytree(tiny_checkpoint("moe", shards=2).path, folder)

    def refuse(*args, **kwargs):
        raise AssertionError("describe opened a tensor")

    monkeypatch.setattr(safetensors, "safe_open", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    assert describe(folder)["files"] == 2
