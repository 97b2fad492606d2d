"""The strict safetensors loader on checkpoints saved by transformers and rewritten into the
official fused, FP8, bf16 and sharded layouts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from docextract.engine.config import load_config
from docextract.engine.info import expected_shapes
from docextract.engine.weights import (
    dequantise_fp8,
    iter_weights,
    load_weights,
    plan_load,
    read_headers,
)
from docextract.errors import ModelError


class ShapeModel(nn.Module):
    """A stand-in with the model's tensor names and shapes (fused experts); A_log and the
    DeltaNet norm kept in float32 as the engine keeps them."""

    def __init__(self, shapes: dict[str, tuple], dtype: torch.dtype, device: str = "cpu"):
        super().__init__()
        for name, shape in shapes.items():
            owner = self
            *path, leaf = name.split(".")
            for part in path:
                if not hasattr(owner, part):
                    owner.add_module(part, nn.Module())
                owner = getattr(owner, part)
            keep32 = name.endswith(("A_log", "linear_attn.norm.weight"))
            t = torch.full(shape, float("nan"), dtype=torch.float32 if keep32 else dtype,
                           device=device) if device != "meta" else torch.empty(
                shape, dtype=torch.float32 if keep32 else dtype, device="meta")
            owner.register_parameter(leaf, nn.Parameter(t, requires_grad=False))


def _model(ckpt, dtype=torch.float32, device="cpu"):
    cfg = load_config(ckpt.path)
    return ShapeModel(expected_shapes(cfg), dtype, device), cfg


def _fused_reference(ckpt) -> dict[str, torch.Tensor]:
    """The reference tensors (per-expert names) stacked into the fused layout."""
    ref = ckpt.tensors()
    out = {}
    for name, t in ref.items():
        if ".mlp.experts." not in name:
            out[name] = t
    cfg = load_config(ckpt.path)
    for name, shape in expected_shapes(cfg).items():
        if name.endswith("experts.gate_up_proj"):
            p = name[: -len("gate_up_proj")]
            out[name] = torch.stack([torch.cat([ref[f"{p}{e}.gate_proj.weight"],
                                                ref[f"{p}{e}.up_proj.weight"]])
                                     for e in range(shape[0])])
        elif name.endswith("experts.down_proj"):
            p = name[: -len("down_proj")]
            out[name] = torch.stack([ref[f"{p}{e}.down_proj.weight"] for e in range(shape[0])])
    return out


def _assert_loaded(model: nn.Module, want: dict[str, torch.Tensor]):
    got = model.state_dict()
    assert set(got) == set(want)
    for name, t in got.items():
        assert torch.equal(t, want[name].to(t.dtype)), name


@pytest.mark.parametrize("kw", [
    {"kind": "moe"},
    {"kind": "moe", "layout": "fused"},
    {"kind": "moe", "layout": "per_expert", "shards": 3},
    {"kind": "moe", "layout": "fused", "dtype": "bfloat16", "shards": 2},
    {"kind": "dense", "tied": True},
    {"kind": "dense", "dtype": "bfloat16", "mtp": True},
], ids=lambda kw: "-".join(str(v) for v in kw.values()))
def test_loads_exactly_the_reference(tiny_checkpoint, kw):
    ckpt = tiny_checkpoint(**kw)
    dtype = torch.bfloat16 if kw.get("dtype") == "bfloat16" else torch.float32
    model, cfg = _model(ckpt, dtype)
    report = load_weights(model, ckpt.path, cfg)
    _assert_loaded(model, _fused_reference(ckpt))
    assert report.tensors_loaded == len(expected_shapes(cfg))
    assert report.files == sorted(p.name for p in ckpt.path.glob("*.safetensors"))
    if kw.get("dtype") == "bfloat16":
        # The release stores A_log and the DeltaNet norm in F32: read as stored, kept float32.
        assert report.dtypes["F32"] == 2 * len(cfg.text.linear_attention_layers)
        a_log = "model.language_model.layers.0.linear_attn.A_log"
        assert model.state_dict()[a_log].dtype == torch.float32
    if cfg.is_moe:
        assert report.expert_layout == ("fused" if kw.get("layout") == "fused" else "per_expert")


def test_fused_and_per_expert_layouts_give_identical_tensors(tiny_checkpoint):
    a, cfg = _model(tiny_checkpoint("moe", layout="fused"))
    b, _ = _model(tiny_checkpoint("moe", layout="per_expert", shards=2))
    load_weights(a, tiny_checkpoint("moe", layout="fused").path, cfg)
    load_weights(b, tiny_checkpoint("moe", layout="per_expert", shards=2).path, cfg)
    for (na, ta), (nb, tb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(ta, tb), na


def test_experts_of_one_layer_span_shards(tiny_checkpoint):
    ckpt = tiny_checkpoint("moe", shards=3)
    entries = read_headers(ckpt.path)
    files = {e.file.name for n, e in entries.items()
             if n.startswith("model.language_model.layers.1.mlp.experts.")}
    assert len(files) == 3


@pytest.mark.parametrize("kind,block", [("moe", (128, 128)), ("dense", (24, 40))])
def test_fp8_checkpoint_dequantises_to_the_reference(tiny_checkpoint, kind, block):
    ckpt = tiny_checkpoint(kind, layout="fp8", shards=3, mtp=True, fp8_block=block)
    model, cfg = _model(ckpt)
    report = load_weights(model, ckpt.path, cfg)
    _assert_loaded(model, _fused_reference(ckpt))
    assert report.quantization == "fp8" and report.dequantised > 0
    stored = read_headers(ckpt.path)
    fp8 = [n for n, e in stored.items() if e.dtype == "F8_E4M3"]
    assert report.dtypes["F8_E4M3"] == len(fp8)
    assert report.dequantised == sum(not n.startswith("mtp.") for n in fp8)
    assert report.skipped_mtp == sum(n.startswith("mtp.") for n in stored) > 0
    assert all(n.startswith("mtp.") for n in report.skipped_names)
    # Within FP8 (e4m3: 3 mantissa bits) of the float32 weights it was made from.
    original = _fused_reference(tiny_checkpoint(kind))
    loaded = model.state_dict()
    checked = 0
    for name, t in loaded.items():
        w = original[name]
        if torch.equal(t, w):
            continue
        rel = ((t - w).norm() / w.norm()).item()
        assert rel < 0.04, (name, rel)
        checked += 1
    assert checked >= (12 if kind == "moe" else 8)
    in_proj_a = "model.language_model.layers.0.linear_attn.in_proj_a.weight"
    assert torch.equal(loaded[in_proj_a], original[in_proj_a])


def test_fp8_weights_and_scales_split_across_shards(tiny_checkpoint):
    entries = read_headers(tiny_checkpoint("moe", layout="fp8", shards=3).path)
    split = [n for n in entries if n.endswith("_scale_inv")
             and entries[n].file != entries[n[: -len("_scale_inv")]].file]
    assert split


@pytest.mark.parametrize("shape,block", [((64, 64), (128, 128)), ((70, 45), (16, 32)),
                                         ((5, 300), (4, 128)), ((129, 1), (128, 128))])
def test_dequantise_fp8_tiles(fp8_codec, shape, block):
    torch.manual_seed(0)
    w = torch.randn(shape) * torch.logspace(-2, 1, shape[1])
    q, scale = fp8_codec.quantise(w, block)
    got = dequantise_fp8(q, scale, block)
    want = torch.empty(shape)
    for r in range(shape[0]):
        for c in range(shape[1]):
            want[r, c] = q[r, c].float() * scale[r // block[0], c // block[1]]
    assert torch.equal(got, want)
    assert ((got - w).norm() / w.norm()).item() < 0.04


def test_loads_into_meta_parameters(tiny_checkpoint):
    ckpt = tiny_checkpoint("dense", tied=True)
    model, cfg = _model(ckpt, device="meta")
    load_weights(model, ckpt.path, cfg, device="cpu")
    assert not any(p.is_meta for p in model.parameters())
    _assert_loaded(model, _fused_reference(ckpt))


def test_transform_sees_every_tensor_and_whole_expert_layers(tiny_checkpoint, tiny_spec):
    ckpt = tiny_checkpoint("moe", shards=3)
    model, cfg = _model(ckpt)
    seen = {}

    def transform(name, tensor):
        seen[name] = tuple(tensor.shape)
        return None if name.endswith("experts.gate_up_proj") else tensor

    report = load_weights(model, ckpt.path, cfg, transform=transform)
    assert set(seen) == set(expected_shapes(cfg)) and report.tensors_loaded == len(seen)
    e, i, h = tiny_spec.num_experts, tiny_spec.moe_intermediate, tiny_spec.hidden_size
    assert seen["model.language_model.layers.2.mlp.experts.gate_up_proj"] == (e, 2 * i, h)
    handled = model.state_dict()["model.language_model.layers.2.mlp.experts.gate_up_proj"]
    assert torch.isnan(handled).all()


def test_iter_weights_yields_each_tensor_once(tiny_checkpoint):
    ckpt = tiny_checkpoint("moe", layout="fp8", shards=3)
    cfg = load_config(ckpt.path)
    plan = plan_load(ckpt.path, cfg, expected_shapes(cfg))
    names = [n for n, _ in iter_weights(plan, dtypes={})]
    assert sorted(names) == sorted(expected_shapes(cfg))


def _copy(ckpt, tmp_path: Path) -> Path:
    dst = tmp_path / "ckpt"
    shutil.copytree(ckpt.path, dst)
    return dst


def _rewrite(folder: Path, edit) -> None:
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata={"format": "pt"})


def _load_error(folder: Path, kind="moe", dtype=torch.float32) -> ModelError:
    cfg = load_config(folder)
    model = ShapeModel(expected_shapes(cfg), dtype)
    with pytest.raises(ModelError) as err:
        load_weights(model, folder, cfg)
    return err.value


def test_missing_tensor_is_named(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("moe"), tmp_path)
    gone = "model.language_model.layers.1.self_attn.q_norm.weight"
    _rewrite(folder, lambda t: t.pop(gone))
    err = _load_error(folder)
    assert "1 missing" in err.message and gone in err.message


def test_missing_expert_is_named(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("moe"), tmp_path)
    gone = "model.language_model.layers.2.mlp.experts.5.up_proj.weight"
    _rewrite(folder, lambda t: t.pop(gone))
    err = _load_error(folder)
    assert "1 missing" in err.message and gone in err.message


def test_unexpected_tensor_is_named(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("dense", tied=True), tmp_path)
    extra = "lm_head.weight"
    _rewrite(folder, lambda t: t.update({extra: torch.zeros(512, 64),
                                         "model.language_model.layers.0.mlp.experts.0.up_proj"
                                         ".weight": torch.zeros(96, 64)}))
    err = _load_error(folder)
    assert "2 unexpected" in err.message and extra in err.message


def test_expert_index_beyond_the_model_is_unexpected(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("moe"), tmp_path)
    name = "model.language_model.layers.0.mlp.experts.8.down_proj.weight"
    _rewrite(folder, lambda t: t.update({name: torch.zeros(64, 32)}))
    err = _load_error(folder)
    assert name in err.message and "8 experts" in err.message


def test_wrong_shape_is_named(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("moe", layout="fused"), tmp_path)
    bad = "model.language_model.layers.0.mlp.experts.down_proj"
    dense = "model.language_model.layers.0.linear_attn.conv1d.weight"
    _rewrite(folder, lambda t: t.update({bad: t[bad][:, :, :16].clone(),
                                         dense: t[dense][:, :, :3].clone()}))
    err = _load_error(folder)
    assert "2 wrong shape" in err.message
    assert f"{bad} [8, 64, 16] (expected [8, 64, 32])" in err.message and dense in err.message


def test_many_problems_are_listed_with_a_count(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("moe"), tmp_path)
    _rewrite(folder, lambda t: [t.pop(n) for n in list(t)
                                if ".experts." in n and ".experts.0." not in n])
    err = _load_error(folder)
    assert "84 missing" in err.message and "(and 74 more)" in err.message
    whole = _copy(tiny_checkpoint("moe"), tmp_path / "whole")
    _rewrite(whole, lambda t: [t.pop(n) for n in list(t) if ".layers.3.mlp.experts." in n])
    err = _load_error(whole)
    assert "2 missing" in err.message
    assert "model.language_model.layers.3.mlp.experts.gate_up_proj" in err.message


def test_both_layouts_of_the_same_layer_are_refused(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("moe", layout="fused"), tmp_path)
    name = "model.language_model.layers.0.mlp.experts.3.gate_proj.weight"
    _rewrite(folder, lambda t: t.update({name: torch.zeros(32, 64)}))
    err = _load_error(folder)
    assert "stored twice" in err.message and name in err.message


def test_truncated_shard_is_named(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("moe", shards=3), tmp_path)
    shard = folder / "model-00002-of-00003.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[:-100])
    err = _load_error(folder)
    assert "truncated" in err.message and str(shard) in err.message


@pytest.mark.parametrize("garbage", [b"", b"\x01\x02", b"\xff" * 8 + b"{}", (b"\x10\x00\x00\x00"
                                     b"\x00\x00\x00\x00not json at all!!")])
def test_corrupt_shard_is_named(tiny_checkpoint, tmp_path, garbage):
    folder = _copy(tiny_checkpoint("moe"), tmp_path)
    (folder / "model.safetensors").write_bytes(garbage)
    err = _load_error(folder)
    assert "corrupt" in err.message and str(folder / "model.safetensors") in err.message


def test_index_naming_a_missing_shard(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("moe", shards=3), tmp_path)
    (folder / "model-00003-of-00003.safetensors").unlink()
    err = _load_error(folder)
    assert "model-00003-of-00003.safetensors" in err.message and "not in the folder" in err.message


def test_index_listing_a_tensor_its_shard_lacks(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("moe", shards=2), tmp_path)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.language_model.norm.weight"] = "model-00001-of-00002.safetensors"
    index["weight_map"]["model.language_model.ghost.weight"] = "model-00002-of-00002.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    err = _load_error(folder)
    assert "model.language_model.ghost.weight" in err.message


def test_corrupt_index(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("moe", shards=2), tmp_path)
    (folder / "model.safetensors.index.json").write_text('{"metadata": {}}')
    err = _load_error(folder)
    assert "corrupt checkpoint index" in err.message


def test_fp8_weight_without_scale(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("dense", layout="fp8"), tmp_path)
    name = "model.language_model.layers.3.self_attn.o_proj.weight"
    _rewrite(folder, lambda t: t.pop(name + "_scale_inv"))
    err = _load_error(folder)
    assert f"{name} is F8_E4M3 without {name}_scale_inv" in err.message


def test_fp8_scale_of_the_wrong_block_shape(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("dense", layout="fp8", fp8_block=(24, 40)), tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"]["weight_block_size"] = [128, 128]
    (folder / "config.json").write_text(json.dumps(config))
    err = _load_error(folder)
    assert "wrong shape" in err.message and "weight_scale_inv" in err.message


def test_unsupported_quantisation_method(tiny_checkpoint, tmp_path):
    folder = _copy(tiny_checkpoint("moe"), tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gptq", "bits": 4}
    (folder / "config.json").write_text(json.dumps(config))
    err = _load_error(folder)
    assert "gptq" in err.message


def test_pickle_only_folder_is_refused(tiny_checkpoint, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(tiny_checkpoint("moe").path / "config.json", folder / "config.json")
    torch.save({"x": torch.zeros(1)}, folder / "pytorch_model.bin")
    err = _load_error(folder)
    assert "no model.safetensors" in err.message and "pickle" in err.hint


def test_model_shape_mismatch_against_config(tiny_checkpoint):
    ckpt = tiny_checkpoint("moe")
    cfg = load_config(ckpt.path)
    shapes = expected_shapes(cfg)
    shapes["model.language_model.embed_tokens.weight"] = (1024, 64)
    model = ShapeModel(shapes, torch.float32)
    with pytest.raises(ModelError) as err:
        load_weights(model, ckpt.path, cfg)
    assert "embed_tokens.weight [512, 64] (expected [1024, 64])" in err.value.message


def test_shards_are_read_one_at_a_time(tiny_checkpoint, monkeypatch):
    import safetensors

    ckpt = tiny_checkpoint("moe", shards=3)
    cfg = load_config(ckpt.path)
    plan = plan_load(ckpt.path, cfg, expected_shapes(cfg))
    opened, real = [], safetensors.safe_open

    def recording(path, *args, **kwargs):
        opened.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(safetensors, "safe_open", recording)
    when = {name: len(opened) for name, _ in iter_weights(plan)}
    assert opened == [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]
    # Each tensor is yielded as soon as the shard holding its last piece has been read.
    shard_of = {n: int(e.file.name[6:11]) for n, e in read_headers(ckpt.path).items()}
    for name, count in when.items():
        prefix = name.rsplit(".", 1)[0] + "."
        pieces = [k for n, k in shard_of.items()
                  if n == name or (n.startswith(prefix) and ".experts." in name
                                   and n.endswith(("gate_proj.weight", "up_proj.weight")
                                                  if name.endswith("gate_up_proj")
                                                  else "down_proj.weight"))]
        assert count == max(pieces), name
    assert set(when.values()) == {1, 2, 3}
