"""config.json -> ModelConfig, checked against transformers' own config classes."""

from __future__ import annotations

import copy
import dataclasses
import json

import pytest

from docextract.engine.config import ModelConfig, TextConfig, load_config
from docextract.errors import ModelError


def _hf_config(kind: str, data: dict):
    if kind == "qwen3_5_moe":
        from transformers import Qwen3_5MoeConfig as cls
    else:
        from transformers import Qwen3_5Config as cls
    return cls(**copy.deepcopy({k: v for k, v in data.items() if k != "model_type"}))


def _minimal(model_type: str = "qwen3_5_moe", **text) -> dict:
    """A small config dict in the layout of the release files."""
    t = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
             "head_dim": 32, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
             "linear_key_head_dim": 16, "linear_value_head_dim": 16, "vocab_size": 512,
             "rope_parameters": {"rope_type": "default", "rope_theta": 1e7,
                              "partial_rotary_factor": 0.25, "mrope_section": [2, 1, 1],
                              "mrope_interleaved": True}}
    if model_type == "qwen3_5_moe":
        t.update(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                 shared_expert_intermediate_size=32)
    else:
        t.update(intermediate_size=96)
    t.update(text)
    return {"model_type": model_type, "text_config": t,
            "vision_config": {"depth": 2, "hidden_size": 32, "num_heads": 2,
                              "intermediate_size": 64, "out_hidden_size": 64,
                              "num_position_embeddings": 64},
            "image_token_id": 484, "video_token_id": 485, "vision_start_token_id": 481,
            "vision_end_token_id": 482}


@pytest.mark.parametrize("kind,tied", [("moe", False), ("dense", True)])
def test_saved_config_matches_transformers(tiny_checkpoint, tiny_spec, kind, tied):
    ckpt = tiny_checkpoint(kind, tied=tied)
    cfg = load_config(ckpt.path)
    cls = "qwen3_5_moe" if kind == "moe" else "qwen3_5"
    hf = _hf_config(cls, ckpt.config)
    assert cfg.model_type == cls and cfg.is_moe == (kind == "moe")
    compared = 0
    for f in dataclasses.fields(TextConfig):
        if f.name in ("model_type", "rope_scaling", "dtype") or not hasattr(hf.text_config, f.name):
            continue
        assert getattr(cfg.text_config, f.name) == getattr(hf.text_config, f.name), f.name
        compared += 1
    assert compared >= 20
    for name in ("depth", "hidden_size", "num_heads", "patch_size", "temporal_patch_size",
                 "spatial_merge_size", "out_hidden_size", "num_position_embeddings",
                 "intermediate_size", "in_channels"):
        assert getattr(cfg.vision_config, name) == getattr(hf.vision_config, name), name
    assert cfg.vision_config.rope_theta == hf.vision_config.rope_parameters["rope_theta"]
    assert cfg.text.layer_types == tiny_spec.layer_types[kind]
    assert cfg.tie_word_embeddings is tied
    assert cfg.image_token_id == tiny_spec.image_token_id
    assert cfg.vision_start_token_id == tiny_spec.vision_start_id
    assert cfg.eos_token_ids == [tiny_spec.im_end_id, tiny_spec.endoftext_id]


def test_derived_sizes(tiny_checkpoint, tiny_spec):
    t = load_config(tiny_checkpoint("moe").path).text_config
    assert t.rotary_dim == 8 and t.mrope_section == [2, 1, 1] and t.mrope_interleaved
    assert t.rope_theta == 1e7 and t.partial_rotary_factor == 0.25
    assert t.linear_key_dim == 32 and t.linear_value_dim == 64 and t.conv_dim == 128
    assert t.num_value_heads_per_key_head == 2 and t.num_kv_groups == 2
    assert t.full_attention_layers == [1, 3] and t.linear_attention_layers == [0, 2]
    v = load_config(tiny_checkpoint("moe").path).vision_config
    assert v.head_dim == 16 and v.patch_dim == 3 * 2 * 16 * 16 and v.merge_unit == 4
    assert v.merged_hidden_size == 128 and v.num_grid_per_side == 8


def test_both_rope_spellings_agree_with_transformers():
    nested = _minimal()
    flat = _minimal()
    rope = flat["text_config"].pop("rope_parameters")
    flat["text_config"].update(rope_theta=rope["rope_theta"],
                               partial_rotary_factor=rope["partial_rotary_factor"],
                               rope_scaling={"rope_type": "default",
                                             "mrope_section": rope["mrope_section"],
                                             "mrope_interleaved": True})
    a = ModelConfig.from_dict(nested).text_config
    b = ModelConfig.from_dict(flat).text_config
    assert a.rope_parameters == b.rope_parameters
    assert (b.rope_theta, b.partial_rotary_factor, b.mrope_section) == (1e7, 0.25, [2, 1, 1])
    hf = _hf_config("qwen3_5_moe", flat).text_config.rope_parameters
    for key in ("rope_type", "rope_theta", "partial_rotary_factor", "mrope_section"):
        assert b.rope_parameters[key] == hf[key], key


def test_rope_defaults_follow_transformers():
    data = _minimal()
    data["text_config"]["head_dim"] = 16
    data["text_config"]["rope_parameters"] = {"mrope_section": [1, 1, 0]}
    t = ModelConfig.from_dict(data).text_config
    hf = _hf_config("qwen3_5_moe", data).text_config.rope_parameters
    assert t.rope_theta == hf["rope_theta"] == 10000.0
    assert t.partial_rotary_factor == hf["partial_rotary_factor"] == 0.25
    assert t.rope_parameters["rope_type"] == hf["rope_type"] == "default"


@pytest.mark.parametrize("interval,layers", [(4, 8), (3, 7), (1, 2)])
def test_full_attention_interval_rule(interval, layers):
    data = _minimal(num_hidden_layers=layers, full_attention_interval=interval)
    t = ModelConfig.from_dict(data).text_config
    assert t.layer_types == _hf_config("qwen3_5_moe", data).text_config.layer_types
    assert t.full_attention_layers == [i for i in range(layers) if (i + 1) % interval == 0]


def test_explicit_layer_types_win_over_interval():
    types = ["full_attention", "linear_attention", "linear_attention", "linear_attention"]
    t = ModelConfig.from_dict(_minimal(layer_types=types, full_attention_interval=2)).text_config
    assert t.layer_types == types


def test_tie_flag_top_level_wins_then_text_config():
    data = _minimal(tie_word_embeddings=True)
    assert ModelConfig.from_dict(data).tie_word_embeddings is True
    data["tie_word_embeddings"] = False
    assert ModelConfig.from_dict(data).tie_word_embeddings is False
    # transformers reads the top-level flag only: the same checkpoint is untied there too.
    assert _hf_config("qwen3_5_moe", data).tie_word_embeddings is False
    del data["text_config"]["tie_word_embeddings"], data["tie_word_embeddings"]
    assert ModelConfig.from_dict(data).tie_word_embeddings is False


def test_eos_ids_from_top_level_and_text_config():
    data = _minimal("qwen3_5", eos_token_id=248044)
    data["eos_token_id"] = 248046
    assert ModelConfig.from_dict(data).eos_token_ids == [248046, 248044]
    data["eos_token_id"] = [248046, 248044]
    assert ModelConfig.from_dict(data).eos_token_ids == [248046, 248044]
    assert ModelConfig.from_dict(_minimal()).eos_token_ids == []


def test_unknown_keys_are_dropped():
    data = _minimal(mlp_only_layers=[], some_future_key={"a": 1})
    data["another_new_thing"] = 3
    data["vision_config"]["deepstack_visual_indexes"] = []
    cfg = ModelConfig.from_dict(data)
    assert not hasattr(cfg.text_config, "some_future_key")


def test_quantization_config_kept_and_parsed():
    data = _minimal()
    data["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3",
                                   "activation_scheme": "dynamic", "weight_block_size": [128, 128],
                                   "modules_to_not_convert": ["lm_head", "model.visual"]}
    cfg = ModelConfig.from_dict(data)
    assert cfg.quant_method == "fp8" and cfg.weight_block_size == (128, 128)
    assert cfg.modules_to_not_convert == ["lm_head", "model.visual"]
    assert cfg.quantization_config["fmt"] == "e4m3"
    plain = ModelConfig.from_dict(_minimal())
    assert plain.quant_method is None and plain.weight_block_size is None


def test_type_dependent_defaults_are_transformers_defaults():
    from transformers import Qwen3_5MoeTextConfig, Qwen3_5TextConfig

    moe = TextConfig(model_type="qwen3_5_moe_text")
    hf = Qwen3_5MoeTextConfig()
    for name in ("hidden_size", "num_hidden_layers", "num_key_value_heads", "num_experts",
                 "num_experts_per_tok", "moe_intermediate_size", "layer_types", "head_dim",
                 "shared_expert_intermediate_size", "linear_num_value_heads", "vocab_size"):
        assert getattr(moe, name) == getattr(hf, name), name
    dense = TextConfig(model_type="qwen3_5_text")
    hf = Qwen3_5TextConfig()
    for name in ("hidden_size", "num_hidden_layers", "num_key_value_heads", "intermediate_size",
                 "layer_types"):
        assert getattr(dense, name) == getattr(hf, name), name
    assert dense.num_experts is None and not dense.is_moe


def test_unknown_model_type_names_the_supported_ones(tmp_path):
    data = _minimal()
    data["model_type"] = "llama"
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelError) as err:
        load_config(tmp_path)
    assert "llama" in err.value.message and "qwen3_5_moe" in err.value.hint
    assert "qwen3_5" in err.value.hint


@pytest.mark.parametrize("change,needle", [
    (lambda d: d["text_config"].update(layer_types=["linear_attention"] * 3), "3 entries"),
    (lambda d: d["text_config"].update(layer_types=["linear_attention"] * 3 + ["sliding"]),
     "unknown types"),
    (lambda d: d["text_config"]["rope_parameters"].update(mrope_section=[2, 2, 1]), "mrope_section"),
    (lambda d: d["text_config"]["rope_parameters"].update(rope_type="yarn"), "rope_type"),
    (lambda d: d["text_config"].update(num_key_value_heads=3), "num_key_value_heads"),
    (lambda d: d["text_config"].update(linear_num_value_heads=5), "linear_num_key_heads"),
    (lambda d: d["text_config"].update(num_experts_per_tok=9), "exceeds num_experts"),
    (lambda d: d["text_config"].update(hidden_size=0), "hidden_size"),
    (lambda d: d["text_config"].update(hidden_size="64"), "hidden_size"),
    (lambda d: d["vision_config"].update(out_hidden_size=32), "out_hidden_size"),
    (lambda d: d["vision_config"].update(num_position_embeddings=60), "square"),
    (lambda d: d["vision_config"].update(deepstack_visual_indexes=[1]), "DeepStack"),
    (lambda d: d.update(image_token_id=512), "image_token_id"),
    (lambda d: d.update(quantization_config={"quant_method": "fp8", "weight_block_size": [0, 128]}),
     "weight_block_size"),
])
def test_invalid_configs_are_model_errors(tmp_path, change, needle):
    data = _minimal()
    change(data)
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ModelError) as err:
        load_config(tmp_path)
    assert needle in err.value.message
    assert str(tmp_path / "config.json") in err.value.message


def test_missing_or_unreadable_config(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_config(tmp_path / "nope")
    with pytest.raises(ModelError, match="no config.json"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="JSON object"):
        load_config(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**_minimal(), "text_config": {
        **_minimal()["text_config"], "layer_types": 4}}))
    with pytest.raises(ModelError, match="malformed"):
        load_config(tmp_path)
