"""Routed-expert storage: int8/int4 quantised while loading or by `quantize_checkpoint`, FP8 kept as
stored, on tiny random checkpoints (float32 engine, naive kernels on the CPU).

Quality bounds against the 16-bit experts, on 3 prompts x 40 tokens of the tiny random MoE
(hidden 64, 8 experts top-2; random routers have near ties, so one flipped expert moves a token's
logits a lot): logits relative error ||q - ref|| / ||ref|| at most 0.15 for int8 (measured 0.095)
and 0.7 for int4 (measured 0.44); top-1 agreement at least 0.9 for int8 (measured 0.95) and 0.4
for int4 (measured 0.51: the tiny model's logits are nearly flat). The int4 numbers are those of round-to-nearest int4 on Gaussian weights
(the routed-experts' output alone moves by ~18%); that the engine computes exactly the quantised
model is checked separately, against 16-bit experts holding the dequantised values.
"""

from __future__ import annotations

import json
import shutil
import weakref

import pytest
import torch
from docextract.kernels.moe import dequantize
from safetensors.torch import load_file, save_file

from docextract.engine import quant
from docextract.engine.config import load_config
from docextract.engine.engine import Engine
from docextract.engine.qwen3_5 import Experts
from docextract.engine.weights import model_tensors, read_headers
from docextract.errors import ModelError, UsageError

BOUNDS = {"int8": (0.15, 0.9), "int4": (0.7, 0.4)}


def load(path, **kw) -> Engine:
    return Engine.load(path, device="cpu", dtype=torch.float32, kernels="naive", **kw)


def token_batch() -> torch.Tensor:
    return torch.randint(0, 470, (3, 40), generator=torch.Generator().manual_seed(8))


@pytest.fixture(scope="module")
def ckpt(random_checkpoint):
    return random_checkpoint("moe")


@pytest.fixture(scope="module")
def reference(ckpt):
    return load(ckpt).logits(token_batch())


@pytest.fixture(scope="module")
def written(ckpt, tmp_path_factory):
    """experts -> a checkpoint written by quantize_checkpoint (with its progress calls)."""
    cache = {}

    def get(fmt: str):
        if fmt not in cache:
            calls = []
            out = quant.quantize_checkpoint(ckpt, tmp_path_factory.mktemp(f"q-{fmt}") / "out", fmt,
                                            progress=lambda d, t: calls.append((d, t)))
            cache[fmt] = (out, calls)
        return cache[fmt]

    return get


@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_quantised_experts_stay_close_to_16_bit(ckpt, reference, fmt):
    engine = load(ckpt, experts=fmt)
    got = engine.logits(token_batch())
    err = float((got - reference).norm() / reference.norm())
    top1 = float((got.argmax(-1) == reference.argmax(-1)).float().mean())
    max_err, min_top1 = BOUNDS[fmt]
    print(f"{fmt}: logits relative error {err:.3f}, top-1 agreement {top1:.3f}")
    assert engine.experts == fmt
    assert 0 < err <= max_err and top1 >= min_top1


def test_int8_is_closer_than_int4(ckpt, reference):
    errs = {f: float((load(ckpt, experts=f).logits(token_batch()) - reference).norm()) for f in ("int8", "int4")}
    assert errs["int8"] < errs["int4"] / 2


@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_engine_computes_exactly_the_quantised_model(ckpt, fmt):
    """The packed experts give what 16-bit experts holding their dequantised values give."""
    q = load(ckpt, experts=fmt)
    plain = load(ckpt)
    float_experts = dict(plain.model.named_modules())
    with torch.no_grad():
        for name, m in q.model.named_modules():
            if isinstance(m, quant.QuantizedExperts):
                float_experts[name].gate_up_proj.copy_(dequantize(m.gate_up_proj.weights()))
                float_experts[name].down_proj.copy_(dequantize(m.down_proj.weights()))
    ids = token_batch()
    ours, ref = q.logits(ids), plain.logits(ids)
    assert float((ours - ref).abs().max() / ref.abs().max()) <= 1e-5


def test_only_routed_experts_are_quantised(ckpt):
    engine = load(ckpt, experts="int4")
    tensors = model_tensors(engine.model)
    packed = {n for n, t in tensors.items() if t.dtype in (torch.uint8, torch.int8)}
    assert packed and all(".mlp.experts." in n and n.endswith(".qweight") for n in packed)
    assert not any(isinstance(m, Experts) for m in engine.model.modules())
    for keep in ("mlp.gate.weight", "shared_expert.up_proj.weight", "shared_expert_gate.weight",
                 "linear_attn.in_proj_a.weight", "linear_attn.in_proj_b.weight", "lm_head.weight",
                 "self_attn.q_proj.weight", "model.visual.blocks.0.attn.qkv.weight"):
        hits = [t for n, t in tensors.items() if n.endswith(keep)]
        assert hits and all(t.dtype == torch.float32 for t in hits), keep
    # scales: fp32 per output row (int8), bf16 per 128 inputs (int4)
    scales = {t.dtype for n, t in tensors.items() if n.endswith(".scales")}
    assert scales == {torch.bfloat16}


@pytest.mark.parametrize("layout", ["fused", "per_expert"])
def test_one_layer_of_16_bit_experts_at_a_time(ckpt, per_expert, tmp_path, monkeypatch, layout):
    """While quantising on load, no expert tensor handed over earlier is still alive."""
    path = ckpt
    if layout == "per_expert":
        path = tmp_path / "per-expert"
        shutil.copytree(ckpt, path)
        save_file(per_expert(load_file(str(ckpt / "model.safetensors"))), str(path / "model.safetensors"))
    seen, alive = [], []
    fill = quant.PackedExperts.fill_

    def spy(self, w):
        alive[:] = [r for r in alive if r() is not None]
        seen.append(len(alive))
        alive.append(weakref.ref(w))
        fill(self, w)

    monkeypatch.setattr(quant.PackedExperts, "fill_", spy)
    load(path, experts="int4")
    layers = load_config(ckpt).text_config.num_hidden_layers
    assert len(seen) == 2 * layers and max(seen) == 0


@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_written_checkpoint_loads_as_is_with_the_same_logits(ckpt, written, monkeypatch, fmt):
    on_load = load(ckpt, experts=fmt).logits(token_batch())
    out, _ = written(fmt)

    def refuse(*a, **k):
        raise AssertionError("a written checkpoint must not be quantised again")

    monkeypatch.setattr(quant, "quantize_tensor", refuse)
    for experts in ("bf16", fmt):
        engine = load(out, experts=experts)
        assert engine.experts == fmt
        assert torch.equal(engine.logits(token_batch()), on_load)


def test_written_checkpoint_layout(ckpt, written):
    out, calls = written("int4")
    data = json.loads((out / "config.json").read_text())
    q = data["quantization_config"]
    layers = load_config(ckpt).text_config.num_hidden_layers
    assert q["quant_method"] == "docextract" and q["experts"] == "int4" and q["bits"] == 4
    assert q["group_size"] == 128 and q["scale_dtype"] == "bfloat16" and q["symmetric"] is True
    assert q["modules"] == [f"model.language_model.layers.{i}.mlp.experts" for i in range(layers)]
    headers = read_headers(out)
    src = read_headers(ckpt)
    e, i, h = 8, 32, 64
    layer = "model.language_model.layers.0.mlp.experts."
    assert headers[layer + "gate_up_proj.qweight"].dtype == "U8"
    assert headers[layer + "gate_up_proj.qweight"].shape == (e, 2 * i, h // 2)
    assert headers[layer + "gate_up_proj.scales"].shape == (e, 2 * i, 1)
    assert headers[layer + "down_proj.qweight"].shape == (e, h, i // 2)
    assert layer + "gate_up_proj" not in headers
    rest = {n: x for n, x in src.items() if ".mlp.experts." not in n}
    assert {n: (x.dtype, x.shape) for n, x in rest.items()} == {
        n: (headers[n].dtype, headers[n].shape) for n in rest}
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja",
                 "preprocessor_config.json", "generation_config.json"):
        assert (out / name).read_bytes() == (ckpt / name).read_bytes()
    done = [d for d, _ in calls]
    assert done == sorted(done) and calls[-1][0] == calls[-1][1] == sum(x.nbytes for x in src.values())
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_sharded_output_and_fp8_source(fp8_release, tmp_path):
    src = fp8_release()
    out = quant.quantize_checkpoint(src, tmp_path / "q", "int8", max_shard_bytes=200_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    files = sorted(set(index["weight_map"].values()))
    assert len(files) > 2 and files[-1].endswith(f"of-{len(files):05d}.safetensors")
    headers = read_headers(out)
    # the experts are int8, the release's other FP8 weights stay FP8 with their scales
    assert {headers[n].dtype for n in headers if ".mlp.experts." in n} == {"I8", "F32"}
    fp8 = {n for n, x in read_headers(src).items() if x.dtype == "F8_E4M3" and ".mlp.experts." not in n}
    assert fp8 and all(headers[n].dtype == "F8_E4M3" and n + "_scale_inv" in headers for n in fp8)
    q = json.loads((out / "config.json").read_text())["quantization_config"]
    assert q["weight_block_size"] == [128, 128] and q["source_quantization_config"]["quant_method"] == "fp8"
    ids = token_batch()
    # FP8 -> float32 -> int8 while loading, or the same through the written checkpoint
    assert torch.equal(load(out).logits(ids), load(src, experts="int8").logits(ids))


def test_fp8_experts_kept_as_stored_equal_dequantised_experts(fp8_release, monkeypatch):
    path = fp8_release()
    native = load(path)
    tensors = model_tensors(native.model)
    assert native.experts == "fp8"
    assert tensors["model.language_model.layers.0.mlp.experts.gate_up_proj.qweight"].dtype == torch.float8_e4m3fn
    monkeypatch.setattr(quant, "_native_fp8", lambda *a: False)
    dequantised = load(path)
    assert dequantised.experts == "bf16"
    ids = token_batch()
    ref = dequantised.logits(ids)
    assert float((native.logits(ids) - ref).abs().max() / ref.abs().max()) <= 1e-5


def test_fp8_blocks_that_do_not_tile_the_experts_are_dequantised(random_checkpoint):
    from docextract.engine.config import ModelConfig

    config = ModelConfig.from_dict(json.loads((random_checkpoint("moe") / "config.json").read_text()))
    config.quantization_config = {"quant_method": "fp8", "weight_block_size": [128, 128]}
    # intermediate 32: gate and up rows share a 128-row block
    assert quant.resolve_experts(random_checkpoint("moe"), config, "bf16") == ("float", False)


def _rewrite(src, dst, tensors=None, config=None):
    shutil.copytree(src, dst)
    if tensors is not None:
        t = load_file(str(src / "model.safetensors"))
        save_file(tensors(t) or t, str(dst / "model.safetensors"))
    if config is not None:
        data = json.loads((src / "config.json").read_text())
        config(data["quantization_config"])
        (dst / "config.json").write_text(json.dumps(data))
    return dst


L0 = "model.language_model.layers.0.mlp.experts."


@pytest.mark.parametrize(
    "tensors,config,error,match",
    [
        pytest.param(lambda t: t.pop(L0 + "down_proj.scales").sum() and None, None, ModelError,
                     "1 missing: " + L0 + "down_proj.scales", id="missing-scales"),
        pytest.param(lambda t: t.update({L0 + "gate_up_proj.qweight": t[L0 + "gate_up_proj.qweight"]
                                         .view(torch.int8)}), None, ModelError,
                     "wrong dtype: " + L0 + "gate_up_proj.qweight I8", id="int8-where-uint8"),
        pytest.param(lambda t: t.update({L0 + "gate_up_proj.qweight": t[L0 + "gate_up_proj.qweight"]
                                         .to(torch.float32)}), None, ModelError,
                     "wrong dtype", id="float-where-packed"),
        pytest.param(lambda t: t.update({L0 + "down_proj.scales": t[L0 + "down_proj.scales"][:, :-1].contiguous()}),
                     None, ModelError, "wrong shape: " + L0 + "down_proj.scales", id="scales-shape"),
        pytest.param(lambda t: t.update({L0 + "gate_up_proj": torch.zeros(8, 64, 64)}), None,
                     ModelError, "1 unexpected: " + L0 + "gate_up_proj", id="16-bit-experts-too"),
        pytest.param(None, lambda q: q.update(experts="int8", bits=8, group_size=None,
                                              scale_dtype="float32"),
                     ModelError, "wrong shape", id="config-says-int8"),
        pytest.param(None, lambda q: q.update(group_size=64), ModelError, "group_size", id="group"),
        pytest.param(None, lambda q: q["modules"].pop(), ModelError, "modules", id="modules"),
        pytest.param(None, lambda q: q.update(experts="int2"), ModelError, "int2", id="format"),
        pytest.param(None, lambda q: q.update(quant_method="awq"), ModelError, "not supported",
                     id="method"),
    ],
)
def test_quantised_checkpoint_loader_errors(written, tmp_path, tensors, config, error, match):
    out, _ = written("int4")
    bad = _rewrite(out, tmp_path / "bad", tensors, config)
    with pytest.raises(error, match=match):
        load(bad)


def test_quantised_checkpoint_loads_only_as_what_it_holds(written):
    out, _ = written("int4")
    with pytest.raises(ModelError, match="holds int4 experts"):
        load(out, experts="int8")


def test_quantise_errors(ckpt, written, random_checkpoint, tmp_path):
    with pytest.raises(UsageError, match="cannot quantise experts to 'bf16'"):
        quant.quantize_checkpoint(ckpt, tmp_path / "a", "bf16")
    with pytest.raises(ModelError, match="already quantised"):
        quant.quantize_checkpoint(written("int4")[0], tmp_path / "b", "int8")
    with pytest.raises(ModelError, match="dense"):
        quant.quantize_checkpoint(random_checkpoint("dense"), tmp_path / "c", "int4")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "keep.txt").write_text("x")
    with pytest.raises(UsageError, match="not an empty folder"):
        quant.quantize_checkpoint(ckpt, tmp_path / "d", "int4")
    with pytest.raises(ModelError, match="no routed experts"):
        load(random_checkpoint("dense"), experts="int4")


def test_a_failed_quantisation_leaves_nothing_behind(ckpt, tmp_path, monkeypatch):
    def broken(w, fmt):
        raise RuntimeError("disk full")

    monkeypatch.setattr(quant, "quantize_tensor", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        quant.quantize_checkpoint(ckpt, tmp_path / "out", "int4")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_in_memory_quantisation_equals_quantise_on_load(ckpt, fmt):
    plain = load(ckpt)
    quant.quantize_model_(plain.model, fmt)
    ids = token_batch()
    assert torch.equal(plain.logits(ids), load(ckpt, experts=fmt).logits(ids))
    with pytest.raises(ModelError, match="already quantised"):
        quant.quantize_model_(plain.model, fmt)


def test_fp8_experts_stay_fp8_only_from_sm89():
    """fp8e4nv does not compile below sm_89: an A100 or RTX 3090 gets the FP8 release's experts
    dequantised to 16 bits while loading; int8 stays available for 8-bit memory there."""
    from docextract.engine.config import ModelConfig

    # the defaults of a qwen3_5_moe config are Qwen3.5-35B-A3B's sizes
    config = ModelConfig.from_dict({"model_type": "qwen3_5_moe", "quantization_config": {
        "quant_method": "fp8", "weight_block_size": [128, 128]},
        "vision_config": {"out_hidden_size": 2048}})
    assert quant.resolve_experts(None, config, "bf16") == ("fp8", False)
    assert quant.resolve_experts(None, config, "bf16", capability=(9, 0)) == ("fp8", False)
    assert quant.resolve_experts(None, config, "bf16", capability=(8, 9)) == ("fp8", False)
    assert quant.resolve_experts(None, config, "bf16", capability=(8, 6)) == ("float", False)
    assert quant.resolve_experts(None, config, "bf16", capability=(8, 0)) == ("float", False)
    assert quant.resolve_experts(None, config, "int8", capability=(8, 0)) == ("int8", True)
