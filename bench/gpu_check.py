"""GPU check: one command that fits a 10-minute call.

    python bench/gpu_check.py [--results bench/RESULTS.md] [--commit SHA] [--sections kernels,e2e]
    python bench/gpu_check.py --quick        # CPU through TRITON_INTERPRET=1, tiny shapes

Section `kernels`: every Triton kernel against its naive.py on CUDA (parity, relative RMS error),
then its time and achieved GB/s (memory-bound ops) or TFLOP/s (prefill GEMMs, chunked DeltaNet)
against the H200 floors of performance.md (4.8 TB/s, ~790 TFLOP/s bf16). Shapes are those of
Qwen3.5-35B-A3B (hidden 2048, 256 experts top-8 of width 512, DeltaNet 16 key / 32 value heads of
128, conv width 8192).

Section `e2e`: the engine (Triton kernels, `generate`) on a random-weight model with the real
35B-A3B shapes, built on the GPU in bf16 and its routed experts quantised to int4 in place: prefill
time of one 2k-token prompt, decode tokens/s at batch 1 and 32, each against its derived floor
(the bytes a step must read at 4.8 TB/s, or the prefill FLOPs at ~790 TFLOP/s), and the weights'
and peak GPU memory. Each workload runs once untimed first (Triton compiles). --quick runs it on
the tiny preset in float32.

Section `graphs` (not in the default run: `--sections graphs`): the decode attention kernel
against its naive.py at 35B-A3B attention shapes (16 query / 2 kv heads of 256, 4k context) with
its GB/s, then decode tokens/s at batch 1, 8, 32 and 64 on the same random model as `e2e`, eager
and replayed from a CUDA graph (`DecodeGraphs`), the graph's first-step logits checked against
the eager step's. --quick runs the graph rows eagerly through the padded static buffers.

Section `pages` (not in the default run: `--sections pages`): A4 pages per second through the
continuously batched engine on the same random model (one page image per request at the size
`docextract run` renders A4 at 200 dpi, 1344x1920 = 2,520 image tokens; PAGE_NEW_TOKENS generated
tokens each, stop tokens off so every request does the same work), at max_batch 8 and 64.

Exit status 1 when a parity check fails.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PEAK_BYTES_S = 4.8e12
PEAK_FLOPS = 790e12
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Case:
    """One kernel at one shape: both paths return a tensor or a tuple of tensors to compare."""

    name: str
    shape: str
    naive: Callable[[], object]
    triton: Callable[[], object]
    ratio: float
    bytes: float = 0.0
    flops: float = 0.0


@dataclass
class Row:
    name: str
    shape: str
    err: float | None
    ok: bool
    ms: float
    achieved: str
    floor_ms: float
    section: str = "kernels"


def rel_err(ref, out) -> float:
    import torch

    refs = ref if isinstance(ref, tuple) else (ref,)
    outs = out if isinstance(out, tuple) else (out,)
    worst = 0.0
    for r, o in zip(refs, outs):
        r, o = r.double(), o.double()
        if not torch.isfinite(o).all():
            return float("inf")
        den = r.pow(2).mean().sqrt().item()
        num = (r - o).pow(2).mean().sqrt().item()
        worst = max(worst, num / den if den > 0 else num)
    return worst


def timed_ms(fn: Callable[[], object], cuda: bool) -> float:
    if cuda:
        import triton.testing

        return float(triton.testing.do_bench(fn, warmup=10, rep=50))
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def run_case(case: Case, cuda: bool) -> Row:
    err = rel_err(case.naive(), case.triton())
    ms = timed_ms(case.triton, cuda)
    if case.flops:
        achieved = f"{case.flops / ms / 1e9:.1f} TFLOP/s"
        floor = case.flops / PEAK_FLOPS * 1e3
    else:
        achieved = f"{case.bytes / ms / 1e6:.0f} GB/s"
        floor = case.bytes / PEAK_BYTES_S * 1e3
    return Row(case.name, case.shape, err, err <= case.ratio, ms, achieved, floor)


def kernel_cases(quick: bool, device: str) -> list[Case]:
    """Real 35B-A3B shapes in bf16 on CUDA; tiny fp16/fp32 ones for --quick (interpreter)."""
    import docextract.kernels as K
    import torch
    from docextract.kernels.gated_delta import naive as gd_naive
    from docextract.kernels.moe import naive as moe_naive
    from docextract.kernels.moe import quantize

    gen = torch.Generator(device=device).manual_seed(0)
    dt = torch.float16 if quick else torch.bfloat16
    # bf16 keeps 8 mantissa bits: rounding the stored intermediates costs up to ~1e-2
    ratio = 2e-3 if quick else 1e-2

    def randn(*shape, dtype=dt, scale=1.0):
        return (torch.randn(*shape, generator=gen, device=device) * scale).to(dtype)

    def cu(*lengths):
        offsets = [0]
        for n in lengths:
            offsets.append(offsets[-1] + n)
        return torch.tensor(offsets, dtype=torch.int32, device=device)

    H = 64 if quick else 2048
    T_pre = 24 if quick else 2048
    esize = torch.finfo(dt).bits // 8
    cases = []

    x, res, w = randn(T_pre, H), randn(T_pre, H), randn(H, scale=0.1)
    cases.append(
        Case(
            "rms_norm+residual",
            f"T={T_pre} H={H}",
            lambda: K.rms_norm(x, w, residual=res, impl="naive"),
            lambda: K.rms_norm(x, w, residual=res, impl="triton"),
            ratio,
            bytes=4 * T_pre * H * esize,
        )
    )
    Hv, Hk, Dk, Dv = (4, 2, 32, 32) if quick else (32, 16, 128, 128)
    o, z, wn = randn(T_pre * Hv, Dv), randn(T_pre * Hv, Dv), randn(Dv, dtype=torch.float32)
    cases.append(
        Case(
            "gated_rms_norm",
            f"rows={T_pre * Hv} D={Dv}",
            lambda: K.gated_rms_norm(o, z, wn, impl="naive"),
            lambda: K.gated_rms_norm(o, z, wn, impl="triton"),
            ratio,
            bytes=3 * T_pre * Hv * Dv * esize,
        )
    )

    C = 2 * Hk * Dk + Hv * Dv
    lengths = (T_pre // 2, T_pre // 4, T_pre - T_pre // 2 - T_pre // 4)
    xc, wc, cuc = randn(T_pre, C), randn(C, 4, scale=0.5), cu(*lengths)
    init = randn(len(lengths), C, 3)
    cases.append(
        Case(
            "causal_conv1d",
            f"T={T_pre} C={C} seqs={len(lengths)}",
            lambda: K.causal_conv1d(xc, wc, cuc, init, impl="naive"),
            lambda: K.causal_conv1d(xc, wc, cuc, init, impl="triton"),
            ratio,
            bytes=2 * T_pre * C * esize,
        )
    )
    for B in (1, 4) if quick else (1, 32):
        pool = randn(2 * B, C, 3)
        idx = torch.arange(B, dtype=torch.int32, device=device) * 2
        xu = randn(B, C)
        pools = [pool.clone(), pool.clone()]
        cases.append(
            Case(
                "causal_conv1d_update",
                f"B={B} C={C}",
                lambda xu=xu, p=pools[0], idx=idx: (
                    K.causal_conv1d_update(xu, p, wc, idx, impl="naive"),
                    p,
                ),
                lambda xu=xu, p=pools[1], idx=idx: (
                    K.causal_conv1d_update(xu, p, wc, idx, impl="triton"),
                    p,
                ),
                ratio,
                bytes=B * C * (2 * 3 + 2) * esize,
            )
        )

    q, k = randn(T_pre, Hk, Dk), randn(T_pre, Hk, Dk)
    v, beta = randn(T_pre, Hv, Dv), torch.rand(T_pre, Hv, generator=gen, device=device).to(dt)
    g = -0.5 * torch.rand(T_pre, Hv, generator=gen, device=device)
    cud = cu(*lengths)
    h0 = randn(len(lengths), Hv, Dk, Dv, dtype=torch.float32)
    # per token and value head: ~8 products of Dk x Dv plus ~4 of chunk x D (chunk 64)
    gd_flops = 2 * T_pre * Hv * (8 * Dk * Dv + 4 * 64 * Dk)
    cases.append(
        Case(
            "chunk_gated_delta_rule",
            f"T={T_pre} Hv={Hv} D={Dk} seqs={len(lengths)}",
            lambda: gd_naive.chunked(q, k, v, g, beta, cud, h0),
            lambda: K.chunk_gated_delta_rule(q, k, v, g, beta, cud, h0, impl="triton"),
            ratio,
            flops=gd_flops,
        )
    )
    for B in (1, 4) if quick else (1, 32):
        pool = randn(2 * B, Hv, Dk, Dv, dtype=torch.float32)
        idx = torch.arange(B, dtype=torch.int32, device=device) * 2
        pools = [pool.clone(), pool.clone()]
        args = (q[:B], k[:B], v[:B], g[:B], beta[:B])
        cases.append(
            Case(
                "recurrent_gated_delta_rule",
                f"B={B} Hv={Hv} D={Dk}",
                lambda a=args, p=pools[0], idx=idx: (gd_naive.decode(*a, p, idx), p),
                lambda a=args, p=pools[1], idx=idx: (
                    K.recurrent_gated_delta_rule(*a, p, idx, impl="triton"),
                    p,
                ),
                ratio,
                bytes=B * Hv * Dk * Dv * 4 * 2,
            )
        )

    E, top_k, I = (8, 2, 32) if quick else (256, 8, 512)
    logits = randn(T_pre, E, dtype=torch.float32)
    cases.append(
        Case(
            "moe_route",
            f"T={T_pre} E={E} k={top_k}",
            lambda: K.moe_route(logits, top_k, impl="naive")[0],
            lambda: K.moe_route(logits, top_k, impl="triton")[0],
            1e-5,
            bytes=T_pre * E * 4,
        )
    )
    w13 = randn(E, 2 * I, H, scale=H**-0.5)
    w2 = randn(E, H, I, scale=I**-0.5)
    formats = {
        "bf16" if not quick else "fp16": (
            K.ExpertWeights("float", w13),
            K.ExpertWeights("float", w2),
        )
    }
    for fmt in ("int8", "int4", "fp8"):
        formats[fmt] = (quantize(w13.float(), fmt), quantize(w2.float(), fmt))
    for T in (1, 5, T_pre) if quick else (1, 32, T_pre):
        xt = randn(T, H)
        tw, tid = moe_naive.route(randn(T, E, dtype=torch.float32), top_k)
        # decode reads every touched expert once; prefill is counted in FLOPs
        touched = int(torch.unique(tid).numel())
        for name, (a, b) in formats.items():
            per_expert = (
                sum(
                    w.data.numel() * w.data.element_size()
                    + (w.scale.numel() * w.scale.element_size() if w.scale is not None else 0)
                    for w in (a, b)
                )
                / E
            )
            prefill = T == T_pre
            cases.append(
                Case(
                    f"moe_experts[{name}]",
                    f"T={T} E={E} k={top_k} I={I} H={H}",
                    lambda xt=xt, tw=tw, tid=tid, a=a, b=b: moe_naive.experts(xt, tw, tid, a, b),
                    lambda xt=xt, tw=tw, tid=tid, a=a, b=b: K.moe_experts(
                        xt, tw, tid, a, b, impl="triton"
                    ),
                    ratio,
                    bytes=0.0 if prefill else touched * per_expert,
                    flops=2 * T * top_k * 3 * I * H if prefill else 0.0,
                )
            )
    return cases


PREFILL_TOKENS = 2048
# TODO(issue 7): decode at batch 1, 8, 32 and 64, and pages/s on sample documents, as more rows here.
DECODE_BATCHES = (1, 32)
DECODE_TOKENS = 32
DECODE_PROMPT = 128
GiB = 1024**3


def _sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def _floors(model, config, batch: int, context: int) -> dict[str, float]:
    """Derived floors (performance.md) of the text model with quantised experts: the bytes one
    decode step of `batch` sequences at `context` tokens must read, all weight bytes, and the
    matmul FLOPs per prefill token."""
    from docextract.engine.quant import QuantizedExperts, model_bytes

    text, t = model.model.language_model, config.text_config
    tied = config.tie_word_embeddings
    routed = sum(model_bytes(m) for m in model.modules() if isinstance(m, QuantizedExperts))
    embed = model_bytes(text.embed_tokens)
    head = embed if tied else model_bytes(model.lm_head)
    # embedding rows are gathered, not streamed; the head is read whole
    dense = model_bytes(text) - embed - routed + head
    touched = 1 - (1 - t.num_experts_per_tok / t.num_experts) ** batch
    # per sequence: the fp32 DeltaNet state read and written, the KV cache read
    state = 2 * 4 * len(t.linear_attention_layers) * (
        t.linear_num_value_heads * t.linear_key_head_dim * t.linear_value_head_dim
    )
    kv = 2 * model.dtype.itemsize * len(t.full_attention_layers) * (
        t.num_key_value_heads * t.head_dim * context
    )
    numel = {n: p.numel() for n, p in text.named_parameters() if ".mlp.experts." not in n}
    routed_numel = 3 * t.num_experts * t.moe_intermediate_size * t.hidden_size * len(t.layer_types)
    embed_numel = text.embed_tokens.weight.numel()
    matmul = (sum(numel.values()) - embed_numel + (embed_numel if tied else model.lm_head.weight.numel())
              + routed_numel * t.num_experts_per_tok / t.num_experts)
    return {"step_bytes": dense + routed * touched + batch * (state + kv),
            "all_bytes": dense + routed, "flops_per_token": 2 * matmul}


def _size(n: float) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / 1024**2:.1f} MiB"


def build_model(quick: bool, device: str) -> tuple[object, object, float]:
    """(config, model, build seconds): random 35B-A3B weights in bf16 (--quick: the tiny preset in
    float32) with int4 routed experts, on the Triton kernels."""
    import torch

    from docextract.engine import randomckpt
    from docextract.engine.quant import quantize_model_

    config = randomckpt.model_config("moe", "tiny" if quick else "35b-a3b")
    dtype = torch.float32 if quick else torch.bfloat16
    start = time.perf_counter()
    model = quantize_model_(randomckpt.random_model(config, device, dtype, seed=0), "int4")
    model.kernels = "triton"
    _sync(device == "cuda")
    return config, model, time.perf_counter() - start


def e2e_rows(quick: bool, device: str, built: tuple | None = None) -> list[Row]:
    """Prefill, decode at DECODE_BATCHES and memory of the engine on random 35B-A3B weights with
    int4 experts (--quick: the tiny preset in float32 through the interpreter)."""
    import torch

    from docextract.engine.generate import Prompt, generate
    from docextract.engine.quant import model_bytes

    cuda = device == "cuda"
    config, model, build_s = built or build_model(quick, device)
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    gen = torch.Generator().manual_seed(0)

    def prompts(n: int, length: int, new: int) -> list[Prompt]:
        # ids below 256 are byte tokens in every preset
        return [Prompt(torch.randint(0, 256, (length,), generator=gen), max_new_tokens=new)
                for _ in range(n)]

    rows = []
    tokens = 24 if quick else PREFILL_TOKENS
    if cuda:
        generate(model, prompts(1, tokens, 1))
    prefill_s = generate(model, prompts(1, tokens, 1))[0].timings["prefill_s"]
    floors = _floors(model, config, 1, tokens)
    floor_ms = max(floors["all_bytes"] / PEAK_BYTES_S, tokens * floors["flops_per_token"] / PEAK_FLOPS) * 1e3
    rows.append(Row("prefill", f"{tokens} tokens, int4 experts", None, True, prefill_s * 1e3,
                    f"{tokens / prefill_s:,.0f} tok/s", floor_ms, "e2e"))
    new, length = (3, 8) if quick else (DECODE_TOKENS, DECODE_PROMPT)
    for batch in (1, 4) if quick else DECODE_BATCHES:
        if cuda:
            generate(model, prompts(batch, length, 3))
        out = generate(model, prompts(batch, length, new))
        # the first token comes from the prefill; new - 1 decode forwards follow
        step_s = out[0].timings["decode_s"] / (new - 1)
        floor_ms = _floors(model, config, batch, length + new)["step_bytes"] / PEAK_BYTES_S * 1e3
        rows.append(Row(f"decode batch {batch}", f"{new} tokens after {length}, int4 experts", None,
                        True, step_s * 1e3, f"{batch / step_s:,.1f} tok/s", floor_ms, "e2e"))
    peak = f"peak {_size(torch.cuda.max_memory_allocated())}" if cuda else "peak -"
    rows.append(Row("memory", f"weights {_size(model_bytes(model))} (built in {build_s:.0f} s)",
                    None, True, 0.0, peak, 0.0, "e2e"))
    return rows


GRAPH_BATCHES = (1, 8, 32, 64)
GRAPH_STEPS = 16


def attention_cases(quick: bool, device: str) -> list[Case]:
    """decode_attention at the 35B-A3B attention shapes, bf16, rows of different lengths up to a
    4k context (--quick: tiny fp16 through the interpreter)."""
    import docextract.kernels.attention as A
    import torch
    from docextract.kernels.attention import naive as attn_naive

    gen = torch.Generator(device=device).manual_seed(1)
    dt = torch.float16 if quick else torch.bfloat16
    nh, nkv, hd = (4, 2, 32) if quick else (16, 2, 256)
    context = 70 if quick else 4096
    cases = []
    for B in (1, 3) if quick else (1, 32, 64):
        kc = torch.randn(B, nkv, context, hd, generator=gen, device=device).to(dt)
        vc = torch.randn(B, nkv, context, hd, generator=gen, device=device).to(dt)
        q = torch.randn(B, nh, hd, generator=gen, device=device).to(dt)
        idx = torch.arange(B, dtype=torch.int32, device=device)
        # lengths from the full context down to 3/4 of it
        lengths = (context - (torch.arange(B, device=device) * 37) % (context // 4)).to(torch.int32)
        keys = int(lengths.sum())
        cases.append(
            Case(
                "decode_attention",
                f"B={B} nh={nh} nkv={nkv} hd={hd} ctx<={context}",
                lambda q=q, kc=kc, vc=vc, idx=idx, n=lengths: attn_naive.decode_attention(
                    q, kc, vc, idx, n, hd**-0.5
                ),
                lambda q=q, kc=kc, vc=vc, idx=idx, n=lengths: A.decode_attention(
                    q, kc, vc, idx, n, impl="triton"
                ),
                2e-3 if quick else 1e-2,
                bytes=(2 * keys * nkv + 2 * B * nh) * hd * kc.element_size(),
            )
        )
    return cases


def graph_rows(quick: bool, device: str, built: tuple | None = None) -> list[Row]:
    """Decode tokens/s at GRAPH_BATCHES, eager and replayed from a CUDA graph, on the e2e model;
    the graph row's parity is its first step's logits against an eager step from the same state."""
    import copy

    import torch

    from docextract.engine.generate import Prompt, prefill
    from docextract.engine.graphs import DecodeGraphs
    from docextract.engine.qwen3_5 import Batch

    cuda = device == "cuda"
    config, model, _ = built or build_model(quick, device)
    rows = []
    for case in attention_cases(quick, device):
        rows.append(run_case(case, cuda))
        rows[-1].section = "graphs"
    gen = torch.Generator().manual_seed(0)
    steps, length = (1, 8) if quick else (GRAPH_STEPS, DECODE_PROMPT)
    for batch in (1, 2) if quick else GRAPH_BATCHES:
        slots = list(range(batch))
        cache = model.make_cache(batch, length + 2 * steps + 4)
        prompts = [Prompt(torch.randint(0, 256, (length,), generator=gen)) for _ in slots]
        with torch.inference_mode():
            logits, _, _ = prefill(model, prompts, cache, slots)
        ids = logits.argmax(-1)

        def positions(cache=cache, slots=slots):
            return torch.tensor([cache.lengths[s] for s in slots], device=model.device)

        def eager_step(ids, cache=cache, slots=slots):
            hidden = model(model.embed(ids), Batch([1] * len(slots), positions(cache).expand(3, -1), cache, slots))
            return model.lm_logits(hidden).float()

        graphs = DecodeGraphs(model, cache, buckets=(batch,), enabled=cuda, pad=True)

        def graph_step(ids, graphs=graphs, slots=slots):
            return graphs(ids, positions(), slots)

        with torch.inference_mode():
            err = rel_err(eager_step(ids, copy.deepcopy(cache)), graph_step(ids))
            timings = {}
            for name, step in (("eager", eager_step), ("graph", graph_step)):
                ids = step(ids).argmax(-1)
                _sync(cuda)
                start = time.perf_counter()
                for _ in range(steps):
                    ids = step(ids).argmax(-1)
                _sync(cuda)
                timings[name] = (time.perf_counter() - start) / steps
        floor_ms = _floors(model, config, batch, length + steps)["step_bytes"] / PEAK_BYTES_S * 1e3
        for name, step_s in timings.items():
            rows.append(Row(f"decode batch {batch} {name}", f"{steps} steps after {length}, int4 experts",
                            err if name == "graph" else None, name != "graph" or err <= 1e-2,
                            step_s * 1e3, f"{batch / step_s:,.1f} tok/s", floor_ms, "graphs"))
        del graphs, cache
    return rows


PAGE_COUNT = 64
PAGE_NEW_TOKENS = 128
PAGE_BATCHES = (8, 64)


def _engine_over(model, config):
    """An Engine around an already built random model: the random tokenizer and the default
    image processor (as randomckpt.random_engine builds them)."""
    from docextract.engine import Engine, randomckpt
    from docextract.engine.processor import DEFAULT_MAX_PIXELS, ImageProcessor
    from docextract.engine.tokenizer import Tokenizer

    backend = randomckpt.build_tokenizer(randomckpt.first_special_id(config))
    tok = Tokenizer(backend, chat_template=randomckpt.BUILTIN_CHAT_TEMPLATE, template_source="random",
                    config=config, special_tokens_map={"eos_token": "<|im_end|>",
                                                       "pad_token": "<|endoftext|>"})
    v = config.vision_config
    processor = ImageProcessor(patch_size=v.patch_size, temporal_patch_size=v.temporal_patch_size,
                               merge_size=v.spatial_merge_size, max_pixels=DEFAULT_MAX_PIXELS)
    return Engine(model, tok, processor, name="random")


def page_rows(quick: bool, device: str, built: tuple | None = None) -> list[Row]:
    """A4 pages per second: one page image per request as `docextract run` renders it (A4 at
    200 dpi capped at 2,560 tokens of 32x32 pixels: 1344x1920), vision + prefill + a fixed
    PAGE_NEW_TOKENS generated tokens, continuously batched `max_batch` at a time (--quick: tiny
    preset, small pages)."""
    import numpy as np
    import torch
    from PIL import Image

    from docextract.engine.api import Request
    from docextract.engine.generate import generate

    cuda = device == "cuda"
    config, model, _ = built or build_model(quick, device)
    engine = _engine_over(model, config)
    rng = np.random.default_rng(0)
    count, new, size = (4, 4, (128, 96)) if quick else (PAGE_COUNT, PAGE_NEW_TOKENS, (1920, 1344))
    pages = [Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)) for _ in range(count)]
    rows = []
    for batch in (2,) if quick else PAGE_BATCHES:
        def run(batch=batch):
            prompts = [engine.prompt(Request(prompt="Extract the document as JSON.", images=[p],
                                             image_labels=["Page 1"], max_new_tokens=new))
                       for p in pages]  # preprocessing is part of the measured time
            return generate(engine.model, prompts, stop_ids=[], max_batch=batch)

        if cuda:
            generate(engine.model, [engine.prompt(Request(prompt="warm", images=[pages[0]],
                                                          max_new_tokens=2))], stop_ids=[])
        _sync(cuda)
        start = time.perf_counter()
        out = run()
        _sync(cuda)
        seconds = time.perf_counter() - start
        tokens = sum(len(g.tokens) for g in out)
        rows.append(Row(f"pages max_batch {batch}",
                        f"{count} pages {size[1]}x{size[0]}, {new} new tokens each, int4 experts",
                        None, all(len(g.tokens) == new for g in out), seconds * 1e3,
                        f"{count / seconds:,.2f} pages/s, {tokens / seconds:,.0f} tok/s", 0.0,
                        "pages"))
    return rows


def gpu_name(cuda: bool) -> str:
    if not cuda:
        return "cpu-interpreter"
    import torch

    return torch.cuda.get_device_name()


def commit_id(given: str | None) -> str:
    if given:
        return given
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


HEADER = (
    "| date | GPU | commit | section | kernel | shape | parity err | ms | achieved | floor ms | "
    "of floor |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def format_rows(rows: list[Row], gpu: str, commit: str) -> list[str]:
    date = datetime.date.today().isoformat()
    lines = []
    for r in rows:
        share = f"{r.floor_ms / r.ms:.0%}" if r.ms > 0 and r.floor_ms > 0 else "-"
        status = "-" if r.err is None else f"{r.err:.1e}" + ("" if r.ok else " FAIL")
        ms = f"{r.ms:.4f}" if r.ms > 0 else "-"
        floor = f"{r.floor_ms:.4f}" if r.floor_ms > 0 else "-"
        lines.append(
            f"| {date} | {gpu} | {commit} | {r.section} | {r.name} | {r.shape} | {status} | "
            f"{ms} | {r.achieved} | {floor} | {share} |"
        )
    return lines


def append_results(path: Path, lines: list[str]) -> None:
    """Append table rows to a markdown file, writing the header first when the file is new."""
    new = not path.exists()
    with path.open("a") as fh:
        fh.write((HEADER if new else "") + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CPU, Triton interpreter, tiny shapes")
    parser.add_argument("--results", type=Path, help="append the rows to this markdown file")
    parser.add_argument("--commit", help="commit id for the rows (default: git rev-parse)")
    parser.add_argument("--sections", default="kernels,e2e",
                        help="comma-separated sections to run (kernels, e2e, graphs)")
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - {"kernels", "e2e", "graphs", "pages"}
    if unknown or not sections:
        print(f"error: unknown sections {sorted(unknown)}; use kernels, e2e, graphs, pages",
              file=sys.stderr)
        return 2
    if args.quick:
        os.environ["TRITON_INTERPRET"] = "1"
    import torch

    cuda = not args.quick
    if cuda and not torch.cuda.is_available():
        print("error: no CUDA device; use --quick for the CPU run", file=sys.stderr)
        return 2
    device = "cuda" if cuda else "cpu"
    rows = []
    if "kernels" in sections:
        rows += [run_case(case, cuda) for case in kernel_cases(args.quick, device)]
    built = build_model(args.quick, device) if {"e2e", "graphs", "pages"} & set(sections) else None
    if "e2e" in sections:
        rows += e2e_rows(args.quick, device, built)
    if "graphs" in sections:
        rows += graph_rows(args.quick, device, built)
    if "pages" in sections:
        rows += page_rows(args.quick, device, built)
    lines = format_rows(rows, gpu_name(cuda), commit_id(args.commit))
    print(HEADER + "\n".join(lines))
    if args.results:
        append_results(args.results, lines)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
