"""Warm-up of a session's shapes (engine/warmup.py): which prefills and decode steps it runs, that
it leaves the cache as it found it, and its progress line. On the CPU the ops take their PyTorch
path, so this checks the bookkeeping; on a GPU the same steps compile the Triton kernels."""

from __future__ import annotations

import io

import torch

from docextract.console import Console, Progress
from docextract.engine import randomckpt, warmup
from docextract.engine.scheduler import Scheduler
from docextract.kernels import _dispatch


def test_plan_covers_sequence_counts_token_buckets_and_decode_batches():
    steps = warmup.plan(5, 1000)
    prefills = [sizes for kind, sizes in steps if kind == "prefill"]
    decodes = [sizes[0] for kind, sizes in steps if kind == "decode"]
    assert sorted({len(p) for p in prefills}) == [1, 2, 4, 5]
    for s in (1, 2, 4, 5):
        totals = {sum(p) for p in prefills if len(p) == s}
        # a multiple of 16 tokens, not one, and a call past the MoE tiles' 256-token bucket
        assert any(t % 16 == 0 for t in totals) and any(t % 16 for t in totals)
        assert max(totals) > 256
    assert decodes == [1, 2, 4, 5]
    assert warmup.plan(4, 1000, decode_batches=[]) == [s for s in warmup.plan(4, 1000) if s[0] == "prefill"]
    assert all(max(sizes) <= 20 for kind, sizes in warmup.plan(2, 20) if kind == "prefill")


def test_warm_up_leaves_the_cache_empty_and_reports_progress(monkeypatch):
    # the console shows progress only after a second; the tiny model may be faster than that
    monkeypatch.setattr(Progress, "DELAY_S", 0.0)
    monkeypatch.setattr(Progress, "LINE_EVERY_S", 0.0)
    model = randomckpt.random_model(randomckpt.model_config("moe", "tiny"), "cpu", torch.float32, seed=1)
    sched = Scheduler(model, num_slots=3, max_len=400)
    err = io.StringIO()
    console = Console(stderr=err, stdout=io.StringIO(), color=False)
    seconds = warmup.warm_up(model, sched, console)
    assert seconds > 0
    cache = sched.cache
    assert cache.lengths == [0, 0, 0] and not cache.lengths_dev.any()
    for pool in (*cache.conv.values(), *cache.recurrent.values()):
        assert not pool.any()
    steps = len(warmup.plan(3, 400))
    assert f"warm-up: compiling the GPU kernels for this session's shapes: {steps}/{steps}" in err.getvalue()


def test_warm_up_runs_every_shape_through_the_kernels():
    """Recorded on the meta device: the prefill and decode launches of the plan are all made."""
    config = randomckpt.model_config("moe", "tiny")
    with _dispatch.record() as launches:
        from docextract.engine.qwen3_5 import Model

        model = Model.empty(config, torch.float32, "meta")
        model.kernels = "triton"
        sched = Scheduler(model, num_slots=2, max_len=64)
        warmup.warm_up(model, sched)
    names = {launch.name for launch in launches}
    assert {"_chunk_state_kernel", "_conv_varlen_kernel", "_recurrent_kernel", "_conv_update_kernel",
            "_split_kernel", "_moe_gemm_kernel"} <= names
    # one chunked-prefill launch per prefill of the plan (one DeltaNet layer... per layer)
    prefills = [s for s in warmup.plan(2, 64) if s[0] == "prefill"]
    layers = len(config.text_config.linear_attention_layers)
    assert sum(1 for launch in launches if launch.name == "_chunk_state_kernel") == len(prefills) * layers
