"""Checkpoints for the expert-storage and kernel-engine tests, written by randomckpt (no
transformers): interface

`random_checkpoint(kind="moe", **overrides) -> Path` (session factory): a tiny random checkpoint
    (fused experts, float32, seed 3); `overrides` go to the text_config of the tiny preset.
`fp8_release(kind="moe") -> Path` (session factory): the same model with moe_intermediate_size
    128, stored as the official FP8 release stores it: experts per expert, every linear weight
    F8_E4M3 with 128x128 `weight_scale_inv` blocks except in_proj_a/b, routers, the shared
    expert gate, embeddings, lm_head and the vision tower, and a `quantization_config`.
`per_expert(tensors) -> tensors`: fused expert tensors split into per-expert ones.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from docextract.engine import randomckpt

_KEEP = ("linear_attn.in_proj_a.", "linear_attn.in_proj_b.", "mlp.gate.", "shared_expert_gate.",
         "embed_tokens.", "lm_head.", "model.visual.")
_FUSED = re.compile(r"^(.+\.mlp\.experts)\.(gate_up_proj|down_proj)$")


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("quant-ckpt")
    cache: dict[tuple, Path] = {}

    def make(kind: str = "moe", **overrides) -> Path:
        key = (kind, tuple(sorted(overrides.items())))
        if key not in cache:
            name = "-".join([kind, *(f"{k}{v}" for k, v in sorted(overrides.items()))])
            cache[key] = randomckpt.write(root / name, kind=kind, seed=3,
                                          preset={"text_config": overrides})
        return cache[key]

    return make


def _per_expert(tensors: dict) -> dict:
    """Fused expert tensors split into the per-expert names transformers saves."""
    out = {}
    for name, t in tensors.items():
        m = _FUSED.match(name)
        if m is None:
            out[name] = t
            continue
        for e in range(t.shape[0]):
            if m.group(2) == "down_proj":
                out[f"{m.group(1)}.{e}.down_proj.weight"] = t[e].clone()
            else:
                gate, up = t[e].chunk(2, dim=0)
                out[f"{m.group(1)}.{e}.gate_proj.weight"] = gate.clone()
                out[f"{m.group(1)}.{e}.up_proj.weight"] = up.clone()
    return out


@pytest.fixture(scope="session")
def per_expert():
    """tensors -> the same with each fused expert tensor split per expert and projection."""
    return _per_expert


@pytest.fixture(scope="session")
def fp8_release(random_checkpoint, fp8_codec, tmp_path_factory):
    cache: dict[str, Path] = {}

    def make(kind: str = "moe") -> Path:
        if kind in cache:
            return cache[kind]
        src = random_checkpoint(kind, moe_intermediate_size=128)
        dst = tmp_path_factory.mktemp(f"fp8-{kind}")
        stored = {}
        for name, t in _per_expert(load_file(str(src / "model.safetensors"))).items():
            if t.ndim == 2 and name.endswith(".weight") and not any(k in name for k in _KEEP):
                stored[name], stored[name + "_scale_inv"] = fp8_codec.quantise(t, (128, 128))
            else:
                stored[name] = t
        save_file(stored, str(dst / "model.safetensors"), metadata={"format": "pt"})
        for f in src.iterdir():
            if f.name != "model.safetensors":
                (dst / f.name).write_bytes(f.read_bytes())
        config = json.loads((src / "config.json").read_text())
        config["quantization_config"] = {
            "quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
            "weight_block_size": [128, 128], "modules_to_not_convert": list(_KEEP)}
        (dst / "config.json").write_text(json.dumps(config, indent=2))
        cache[kind] = dst
        return dst

    return make
