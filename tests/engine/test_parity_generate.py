"""Greedy generation against transformers `generate`, and the cached decode path against our own
full forward: prefill + token-by-token decode, batches, chunked prefill (float32).

Logit bounds are relative max errors (see test_parity_logits.py): 1e-5 for text, 5e-5 once
images are in the prompt.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from docextract.engine import Engine
from docextract.engine.generate import Prompt, generate

BOUND = 1e-5
IMAGE_BOUND = 5e-5


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


@pytest.fixture(scope="module")
def engines(tiny_checkpoint):
    cache = {}

    def load(kind: str) -> Engine:
        if kind not in cache:
            cache[kind] = Engine.load(tiny_checkpoint(kind).path, device="cpu", dtype=torch.float32)
        return cache[kind]

    return load


def make_prompt(engine: Engine, spec, text: int, images: list[tuple[int, int]], seed: int, max_new: int) -> Prompt:
    """`text` random tokens after the images (pixel sizes), HF conventions (pads expanded)."""
    gen = torch.Generator().manual_seed(seed)
    ids: list[int] = torch.randint(0, 470, (3,), generator=gen).tolist()
    pixel_values = grid = None
    if images:
        rng = np.random.default_rng(seed)
        pixel_values, grid = engine.processor(
            [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in images]
        )
        for t, h, w in grid.tolist():
            ids += [spec.vision_start_id] + [spec.image_token_id] * (t * h * w // 4) + [spec.vision_end_id]
    ids += torch.randint(0, 470, (text,), generator=gen).tolist()
    return Prompt(torch.tensor(ids), pixel_values, grid, max_new_tokens=max_new)


class Recorder:
    """A logits processor that keeps a copy of every step's logits."""

    def __init__(self):
        self.steps: list[torch.Tensor] = []

    def __call__(self, generated: list[int], logits: torch.Tensor) -> torch.Tensor:
        assert len(generated) == len(self.steps)
        self.steps.append(logits.clone())
        return logits


def run(engine: Engine, prompts: list[Prompt], **kwargs) -> tuple[list[list[int]], list[torch.Tensor]]:
    recorders = []
    for p in prompts:
        p.logits_processors = [Recorder()]
        recorders.append(p.logits_processors[0])
    out = generate(engine.model, prompts, **kwargs)
    return [g.tokens for g in out], [torch.stack(r.steps) for r in recorders]


@pytest.mark.parametrize("kind", ["moe", "dense"])
@pytest.mark.parametrize("images", [[], [(256, 320)]], ids=["text", "image"])
def test_greedy_32_tokens_match_transformers(engines, hf_model, tiny_checkpoint, tiny_spec, kind, images):
    engine = engines(kind)
    prompt = make_prompt(engine, tiny_spec, 9, images, seed=11, max_new=32)
    ids = prompt.input_ids[None]
    kwargs = {}
    if images:
        kwargs = dict(pixel_values=prompt.pixel_values, image_grid_thw=prompt.image_grid_thw,
                      mm_token_type_ids=(ids == tiny_spec.image_token_id).int())
    with torch.no_grad():
        ref = hf_model(tiny_checkpoint(kind)).generate(
            input_ids=ids, max_new_tokens=32, min_new_tokens=32, do_sample=False, **kwargs
        )[0, ids.shape[1] :].tolist()
    (ours,) = generate(engine.model, [prompt])
    assert len(ref) == len(ours.tokens) == 32
    assert ours.tokens == ref
    assert ours.finish_reason == "length"


@pytest.mark.parametrize("length", [1, 63, 64, 65, 200], ids=lambda n: f"prompt{n}")
def test_prefill_then_decode_equals_full_forward(engines, tiny_spec, length):
    engine = engines("moe")
    prompt = make_prompt(engine, tiny_spec, max(length - 3, 0), [], seed=length, max_new=6)
    prompt.input_ids = prompt.input_ids[:length]
    (tokens,), (steps,) = run(engine, [prompt])
    full = torch.cat([prompt.input_ids, torch.tensor(tokens[:-1])])[None]
    ref = engine.logits(full)[0, length - 1 :]
    assert rel_err(steps, ref) <= BOUND


@pytest.mark.parametrize("kind", ["moe", "dense"])
def test_image_prompt_decode_equals_full_forward(engines, tiny_spec, kind):
    engine = engines(kind)
    prompt = make_prompt(engine, tiny_spec, 5, [(256, 256), (200, 400)], seed=3, max_new=12)
    (tokens,), (steps,) = run(engine, [prompt])
    full = torch.cat([prompt.input_ids, torch.tensor(tokens[:-1])])[None]
    ref = engine.logits(full, prompt.pixel_values, prompt.image_grid_thw)[0, prompt.input_ids.numel() - 1 :]
    # The rope delta of the images carries into every decoded position.
    assert rel_err(steps, ref) <= IMAGE_BOUND


def test_batch_of_different_prompts_equals_each_alone(engines, tiny_spec):
    engine = engines("moe")

    def prompts():
        return [
            make_prompt(engine, tiny_spec, 70, [(256, 256), (300, 200)], seed=1, max_new=10),
            make_prompt(engine, tiny_spec, 4, [(200, 520)], seed=2, max_new=16),
            make_prompt(engine, tiny_spec, 130, [], seed=4, max_new=7),
        ]

    together_tokens, together_logits = run(engine, prompts())
    for k, prompt in enumerate(prompts()):
        (alone_tokens,), (alone_logits,) = run(engine, [prompt])
        assert together_tokens[k] == alone_tokens
        assert len(alone_tokens) == prompt.max_new_tokens
        assert rel_err(together_logits[k], alone_logits) <= BOUND


def test_chunked_prefill_equals_whole_prefill(engines, tiny_spec):
    engine = engines("dense")

    def prompts():
        return [make_prompt(engine, tiny_spec, 100, [(256, 256)], seed=5, max_new=5),
                make_prompt(engine, tiny_spec, 20, [], seed=6, max_new=5)]

    whole_tokens, whole_logits = run(engine, prompts())
    chunked_tokens, chunked_logits = run(engine, prompts(), prefill_chunk=48)
    assert chunked_tokens == whole_tokens
    for a, b in zip(chunked_logits, whole_logits):
        assert rel_err(a, b) <= BOUND
