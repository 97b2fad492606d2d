"""The engine on the Triton kernels (CPU: TRITON_INTERPRET=1, which tests/conftest.py sets) against
the same engine on the naive ops, on a tiny random checkpoint in float32: greedy tokens equal and
logits within 1e-4 (relative max error; measured ~2e-6), for text, an image prompt decoded in a
batch beside a text prompt (packed prefill and in-place slot updates), int4 experts and FP8
experts kept as stored. Also how `kernels=` reaches the ops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from docextract.engine.engine import Engine
from docextract.engine.generate import Prompt, generate
from docextract.engine.qwen3_5 import GatedDeltaNet, GatedNorm, RMSNorm, SparseMoe
from docextract.errors import ModelError

BOUND = 1e-4


def rel_err(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return ((ours.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


@pytest.fixture(scope="module")
def checkpoint(random_checkpoint):
    return random_checkpoint("moe")


@pytest.fixture(scope="module")
def engines(checkpoint):
    cache = {}

    def get(kernels: str, experts: str = "bf16", path=None) -> Engine:
        key = (kernels, experts, path)
        if key not in cache:
            cache[key] = Engine.load(path or checkpoint, device="cpu", dtype=torch.float32,
                                     experts=experts, kernels=kernels)
        return cache[key]

    return get


class Recorder:
    def __init__(self):
        self.steps: list[torch.Tensor] = []

    def __call__(self, generated: list[int], logits: torch.Tensor) -> torch.Tensor:
        self.steps.append(logits.clone())
        return logits


def prompts(engine: Engine, with_image: bool) -> list[Prompt]:
    """A text prompt, and with `with_image` an image prompt (70 image tokens) before it."""
    cfg = engine.config
    gen = torch.Generator().manual_seed(5)
    text = Prompt(torch.randint(0, 470, (23,), generator=gen), max_new_tokens=8)
    if not with_image:
        return [text]
    photo = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 96, 3), dtype=np.uint8))
    pixels, grid = engine.processor([photo])
    pads = int(grid.prod()) // 4
    ids = [11, 12, cfg.vision_start_token_id] + [cfg.image_token_id] * pads
    ids += [cfg.vision_end_token_id] + torch.randint(0, 470, (6,), generator=gen).tolist()
    return [Prompt(torch.tensor(ids), pixels, grid, max_new_tokens=6), text]


def run(engine: Engine, batch: list[Prompt]) -> tuple[list[list[int]], list[torch.Tensor]]:
    recorders = [Recorder() for _ in batch]
    for p, r in zip(batch, recorders):
        p.logits_processors = [r]
    out = generate(engine.model, batch)
    return [g.tokens for g in out], [torch.stack(r.steps) for r in recorders]


@pytest.mark.parametrize("with_image", [False, True], ids=["text", "image-and-text-batch"])
def test_triton_engine_generates_what_the_naive_engine_does(engines, with_image):
    naive_tokens, naive_logits = run(engines("naive"), prompts(engines("naive"), with_image))
    tokens, logits = run(engines("triton"), prompts(engines("triton"), with_image))
    assert tokens == naive_tokens
    assert [len(t) for t in tokens] == [p.max_new_tokens for p in prompts(engines("naive"), with_image)]
    for ours, ref in zip(logits, naive_logits):
        assert rel_err(ours, ref) <= BOUND


def test_int4_experts_on_the_fused_triton_gemm(engines):
    ids = torch.randint(0, 470, (1, 37), generator=torch.Generator().manual_seed(2))
    ref = engines("naive", "int4").logits(ids)
    ours = engines("triton", "int4").logits(ids)
    assert engines("triton", "int4").experts == "int4"
    assert rel_err(ours, ref) <= BOUND


def test_fp8_experts_run_as_stored_on_the_triton_gemm(fp8_release):
    path = fp8_release(kind="moe")
    ids = torch.randint(0, 470, (1, 29), generator=torch.Generator().manual_seed(4))
    naive = Engine.load(path, device="cpu", dtype=torch.float32, kernels="naive")
    triton = Engine.load(path, device="cpu", dtype=torch.float32, kernels="triton")
    assert naive.experts == triton.experts == "fp8"
    assert rel_err(triton.logits(ids), naive.logits(ids)) <= BOUND


@pytest.mark.parametrize("kernels,impl", [("auto", None), ("naive", "naive"), ("triton", "triton")])
def test_kernels_choice_reaches_every_op_module(engines, kernels, impl):
    model = engines(kernels).model
    ops = [m for m in model.modules() if isinstance(m, (RMSNorm, GatedNorm, GatedDeltaNet, SparseMoe))]
    assert {type(m) for m in ops} == {RMSNorm, GatedNorm, GatedDeltaNet, SparseMoe}
    assert model.kernels == impl and all(m.impl == impl for m in ops)


def test_triton_on_the_cpu_without_the_interpreter_is_refused(checkpoint, monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(ModelError, match="CUDA"):
        Engine.load(checkpoint, device="cpu", kernels="triton")
