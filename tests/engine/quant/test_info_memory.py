"""`model info` memory per `--experts` choice: exact bytes of the modules the engine builds, equal to
what a real load holds, for 16-bit, FP8 and `model quantize` checkpoints and config-only folders."""

from __future__ import annotations

import json

import pytest
import torch

from docextract.engine import quant, randomckpt
from docextract.engine.engine import Engine
from docextract.engine.info import describe
from docextract.errors import UsageError


def loaded_bytes(path, experts: str) -> int:
    engine = Engine.load(path, device="cpu", dtype=torch.bfloat16, experts=experts, kernels="naive")
    return quant.model_bytes(engine.model)


def test_exact_memory_is_what_each_load_holds(random_checkpoint):
    path = random_checkpoint("moe")
    memory = describe(path)["memory"]
    assert list(memory) == ["experts_bf16", "experts_int8", "experts_int4"]
    for mode, row in memory.items():
        requested = mode.removeprefix("experts_")
        assert row["format"] == requested
        assert row["bytes"] == loaded_bytes(path, requested), mode
    assert memory["experts_int4"]["bytes"] < memory["experts_int8"]["bytes"] < memory["experts_bf16"]["bytes"]


def test_measured_loads_agree_with_the_exact_bytes(random_checkpoint):
    info = describe(random_checkpoint("moe"), measure=True, device="cpu")
    measured = info["memory_measured"]
    assert measured.keys() == info["memory"].keys()
    for mode, row in measured.items():
        assert row["bytes"] == info["memory"][mode]["bytes"] and row["load_s"] >= 0
    json.dumps(info)


def test_dense_model_has_only_the_16_bit_mode(random_checkpoint):
    path = random_checkpoint("dense")
    memory = describe(path)["memory"]
    assert list(memory) == ["experts_bf16"]
    assert memory["experts_bf16"]["bytes"] == loaded_bytes(path, "bf16")


def test_fp8_release_keeps_fp8_experts(fp8_release):
    path = fp8_release()
    memory = describe(path)["memory"]
    assert memory["experts_bf16"]["format"] == "fp8"
    assert memory["experts_bf16"]["bytes"] == loaded_bytes(path, "bf16")
    assert memory["experts_int4"]["bytes"] < memory["experts_bf16"]["bytes"]


def test_quantised_checkpoint_counts_its_16_bit_parameters(random_checkpoint, tmp_path):
    src = random_checkpoint("moe")
    out = quant.quantize_checkpoint(src, tmp_path / "q4", "int4")
    info, plain = describe(out), describe(src)
    assert info["parameters"] == plain["parameters"]
    assert info["quantization"]["method"] == "docextract" and info["quantization"]["experts"] == "int4"
    assert list(info["memory"]) == ["experts_bf16", "experts_int4"]
    assert info["memory"]["experts_bf16"] == plain["memory"]["experts_int4"]
    assert info["stored_bytes"] < plain["stored_bytes"]


def test_config_only_folder(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(randomckpt.config_dict("moe", "35b-a3b")))
    memory = describe(tmp_path)["memory"]
    # Qwen3.5-35B-A3B: int4 experts with everything else in bf16 fit a 24 GB card (weights only)
    assert 65 < memory["experts_bf16"]["gib"] < 66 and 20 < memory["experts_int4"]["gib"] < 21.5
    with pytest.raises(UsageError, match="--measure"):
        describe(tmp_path, measure=True)
    fp8 = randomckpt.config_dict("moe", "35b-a3b")
    fp8["quantization_config"] = {"quant_method": "fp8", "weight_block_size": [128, 128]}
    (tmp_path / "config.json").write_text(json.dumps(fp8))
    memory = describe(tmp_path)["memory"]
    assert memory["experts_bf16"]["format"] == "fp8"
    assert 35 < memory["experts_bf16"]["gib"] < 36 and memory["experts_int4"]["gib"] < 21.5
    # On an RTX 3090 / A100 (before sm_89) the same release takes the 16-bit release's memory.
    assert memory["experts_bf16_before_sm89"]["format"] == "bf16"
    assert 65 < memory["experts_bf16_before_sm89"]["gib"] < 66


def test_a_gpu_before_fp8_is_warned_that_the_experts_were_widened(fp8_release, random_checkpoint):
    from docextract.engine.config import load_config

    fp8, plain = load_config(fp8_release()), load_config(random_checkpoint("moe"))
    note = quant.widened_fp8_note(fp8, "bf16", (8, 6))
    assert note.startswith("this GPU (sm_86) has no FP8") and "--experts int8" in note
    assert quant.widened_fp8_note(fp8, "fp8", (9, 0)) is None
    assert quant.widened_fp8_note(fp8, "int8", (8, 0)) is None
    assert quant.widened_fp8_note(plain, "bf16", (8, 6)) is None
    assert quant.widened_fp8_note(fp8, "fp8", None) is None
