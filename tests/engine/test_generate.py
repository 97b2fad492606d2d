"""The Engine API around generation: requests -> prompts -> completions, stop tokens, token
budgets, logits processors, batching, and the load-time choices that are not available yet."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from docextract.engine import Completion, Engine, Request
from docextract.engine.cache import Cache
from docextract.engine.config import ModelConfig
from docextract.engine.generate import Prompt, generate, generate_step
from docextract.engine.tokenizer import ImageSlot
from docextract.errors import ModelError, UsageError


@pytest.fixture(scope="module")
def engine(tiny_checkpoint) -> Engine:
    return Engine.load(tiny_checkpoint("moe").path, device="cpu", dtype=torch.float32)


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def photo(h: int, w: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def force(token: int, at_step: int):
    """A logits processor that makes `token` the greedy choice at step `at_step`."""

    def proc(generated: list[int], logits: torch.Tensor) -> torch.Tensor:
        if len(generated) == at_step:
            logits = logits.clone()
            logits[token] = logits.max() + 1
        return logits

    return proc


def test_engine_attributes(engine, tiny_checkpoint):
    assert engine.name == tiny_checkpoint("moe").path.name
    assert engine.experts == "bf16"
    assert isinstance(engine.config, ModelConfig) and engine.config.is_moe
    assert engine.tokenizer.image_pad_id == engine.config.image_token_id
    assert engine.load_report.tensors_loaded > 0


def test_request_becomes_chat_prompt_with_expanded_pads(engine, tiny_spec):
    request = Request(prompt="Extract the invoice as JSON.", images=[photo(256, 256), photo(300, 520, 1)],
                      image_labels=["Page 1", "Page 2"], system="Be exact.", max_new_tokens=5)
    prompt = engine.prompt(request)
    grids = prompt.image_grid_thw.tolist()
    content = ["Page 1: ", ImageSlot(), "Page 2: ", ImageSlot(), request.prompt]
    assert prompt.input_ids.tolist() == engine.tokenizer.build_prompt_ids(content, "Be exact.", image_grid_thw=grids)
    pads = (prompt.input_ids == tiny_spec.image_token_id).sum().item()
    assert pads == sum(t * h * w // 4 for t, h, w in grids)
    assert prompt.pixel_values.shape == (sum(t * h * w for t, h, w in grids), 1536)
    assert prompt.max_new_tokens == 5


def test_generate_completions_match_the_generation_loop(engine):
    requests = [
        Request(prompt="Read the PAN card.", images=[photo(256, 300)], max_new_tokens=6),
        Request(prompt="What is the total?", max_new_tokens=9),
        Request(prompt="Two pages.", images=[photo(256, 256, 2), photo(400, 256, 3)],
                image_labels=["Page 1", "Page 2"], max_new_tokens=4),
    ]
    completions = engine.generate(requests)
    assert [type(c) for c in completions] == [Completion] * 3
    for request, completion in zip(requests, completions):
        (alone,) = generate(engine.model, [engine.prompt(request)], stop_ids=engine.tokenizer.stop_ids)
        assert completion.tokens == alone.tokens
        assert completion.prompt_tokens == engine.prompt(request).input_ids.numel()
        if completion.finish_reason == "length":
            assert len(completion.tokens) == request.max_new_tokens
            assert completion.text == engine.tokenizer.decode(completion.tokens)
        assert {"vision_s", "prefill_s", "decode_s"} <= set(completion.timings)
    engine.max_batch = 1
    try:
        assert [c.tokens for c in engine.generate(requests)] == [c.tokens for c in completions]
    finally:
        engine.max_batch = 8


def test_stop_token_ends_a_sequence_and_leaves_the_text(engine):
    stop = engine.tokenizer.im_end_id
    prompts = [
        Prompt(torch.arange(5, 25), max_new_tokens=10, logits_processors=[force(stop, 3)]),
        Prompt(torch.arange(40, 47), max_new_tokens=8),
    ]
    steps = list(generate_step(engine.model, prompts, stop_ids=[stop]))
    # Both run until the first stops after its 4th token; then only the second runs.
    assert [len(s) for s in steps] == [2] * 4 + [1] * 4
    first, second = generate(engine.model, prompts, stop_ids=[stop])
    assert first.finish_reason == "stop" and len(first.tokens) == 4 and first.tokens[-1] == stop
    assert second.finish_reason == "length" and len(second.tokens) == 8


def test_logits_processors_see_the_tokens_generated_so_far(engine):
    seen = []

    def spy(generated, logits):
        seen.append(list(generated))
        return logits

    (out,) = generate(engine.model, [Prompt(torch.arange(10, 30), max_new_tokens=4, logits_processors=[spy])])
    assert seen == [out.tokens[:k] for k in range(4)]


def test_bfloat16_engine_is_as_close_to_float32_as_transformers(tiny_checkpoint, hf_model):
    from transformers import Qwen3_5ForConditionalGeneration

    # Dense: MoE routing flips under bf16 make the error of a random tiny model erratic.
    ckpt = tiny_checkpoint("dense")
    ours16 = Engine.load(ckpt.path, device="cpu")
    assert ours16.model.dtype == torch.bfloat16
    layer = ours16.model.model.language_model.layers[0].linear_attn
    assert layer.A_log.dtype == layer.norm.weight.dtype == torch.float32
    ids = torch.randint(0, 470, (1, 40), generator=torch.Generator().manual_seed(0))
    ref32 = Engine.load(ckpt.path, device="cpu", dtype=torch.float32).logits(ids)
    hf16 = Qwen3_5ForConditionalGeneration.from_pretrained(ckpt.reference, dtype=torch.bfloat16).eval()
    with torch.no_grad():
        hf_err = rel_err(hf16(input_ids=ids).logits, hf_model(ckpt)(input_ids=ids).logits)
    assert rel_err(ours16.logits(ids), ref32) <= hf_err




def test_bad_requests(engine):
    with pytest.raises(UsageError, match="labels"):
        engine.prompt(Request(prompt="x", images=[photo(256, 256)], image_labels=["a", "b"]))
    with pytest.raises(ModelError, match="max_new_tokens"):
        generate(engine.model, [Prompt(torch.arange(4), max_new_tokens=0)])
    with pytest.raises(ModelError, match="images given"):
        engine.logits(torch.tensor([[1, 2, engine.config.image_token_id, 3]]))
    pixels, grid = engine.processor([photo(256, 256)])
    with pytest.raises(ModelError, match="needs 64"):
        engine.logits(torch.tensor([[1, 2, engine.config.image_token_id, 3]]), pixels, grid)


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        pytest.param(dict(experts="fp4"), UsageError, "expert format", id="unknown-experts"),
        pytest.param(dict(kernels="fast"), UsageError, "kernels", id="unknown-kernels"),
        pytest.param(dict(dtype="int8"), UsageError, "dtype", id="bad-dtype"),
        pytest.param(dict(device="tpu"), UsageError, "device", id="bad-device"),
    ],
)
def test_load_rejects_unavailable_choices(tiny_checkpoint, kwargs, error, match):
    with pytest.raises(error, match=match):
        Engine.load(tiny_checkpoint("moe").path, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error when CUDA is absent")
def test_cuda_without_a_gpu_is_a_model_error(tiny_checkpoint):
    with pytest.raises(ModelError, match="CUDA"):
        Engine.load(tiny_checkpoint("moe").path, device="cuda")


def test_cache_refuses_to_overflow(engine):
    cache = Cache(engine.config.text_config, 1, 4, dtype=torch.float32, device="cpu")
    layer = engine.config.text_config.full_attention_layers[0]
    kv = torch.zeros(engine.config.text_config.num_key_value_heads, 5, engine.config.text_config.head_dim)
    with pytest.raises(ModelError, match="exceed 4 tokens"):
        cache.append_kv(layer, 0, kv, kv)
