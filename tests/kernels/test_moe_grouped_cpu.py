"""The CPU grouped-GEMM experts (kernels/moe/grouped_cpu.py) against naive.experts."""

import pytest
import torch

from docextract.kernels import ExpertWeights, moe_experts
from docextract.kernels.moe import grouped_cpu, naive, quantize

H, I, E = 80, 48, 7
PATHS = [pytest.param(True, id="grouped_mm"), pytest.param(False, id="loop")]


def _case(T, top_k, dtype, seed, dead=(2, 5)):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, H, generator=g).to(dtype)
    logits = torch.randn(T, E, generator=g)
    logits[:, list(dead)] -= 100  # experts with no pairs at all
    weights, ids = naive.route(logits, top_k)
    w13 = ExpertWeights("float", (torch.randn(E, 2 * I, H, generator=g) / H**0.5).to(dtype))
    w2 = ExpertWeights("float", (torch.randn(E, H, I, generator=g) / I**0.5).to(dtype))
    return x, weights, ids, w13, w2


@pytest.mark.parametrize("grouped_mm", PATHS)
@pytest.mark.parametrize("top_k", [1, 3])
@pytest.mark.parametrize("T", [pytest.param(n, id=f"T{n}") for n in (1, 2, 17, 130)])
def test_grouped_fp32_matches_naive(T, top_k, grouped_mm, assert_close):
    if grouped_mm and not grouped_cpu.HAS_GROUPED_MM:
        pytest.skip("this torch build has no CPU torch._grouped_mm")
    x, weights, ids, w13, w2 = _case(T, top_k, torch.float32, seed=T + top_k)
    ref = naive.experts(x, weights, ids, w13, w2)
    out = grouped_cpu.experts(x, weights, ids, w13, w2, use_grouped_mm=grouped_mm)
    assert out.dtype == torch.float32
    # fp32 differs by summation order only
    assert_close("grouped fp32", ref, out, 2e-6)


@pytest.mark.parametrize("grouped_mm", PATHS)
def test_grouped_bf16_close_to_naive(grouped_mm, assert_close):
    if grouped_mm and not grouped_cpu.HAS_GROUPED_MM:
        pytest.skip("this torch build has no CPU torch._grouped_mm")
    x, weights, ids, w13, w2 = _case(33, 2, torch.bfloat16, seed=4)
    ref = naive.experts(x, weights, ids, w13, w2)
    out = grouped_cpu.experts(x, weights, ids, w13, w2, use_grouped_mm=grouped_mm)
    assert out.dtype == torch.bfloat16
    # bf16 rounds gate_up and the expert outputs where naive keeps fp32 (8 mantissa bits)
    assert_close("grouped bf16", ref, out, 1e-2)


def test_grouped_with_no_tokens():
    x, weights, ids, w13, w2 = _case(0, 2, torch.float32, seed=0)
    assert grouped_cpu.experts(x, weights, ids, w13, w2).shape == (0, H)


def test_cpu_dispatch_takes_grouped_unless_naive_is_asked(monkeypatch):
    calls = []
    real = grouped_cpu.experts
    monkeypatch.setattr(grouped_cpu, "experts", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.delenv("DOCEXTRACT_KERNELS", raising=False)
    x, weights, ids, w13, w2 = _case(9, 2, torch.float32, seed=1)
    ref = naive.experts(x, weights, ids, w13, w2)
    assert torch.allclose(moe_experts(x, weights, ids, w13, w2), ref, atol=1e-5)
    assert calls == [1]
    assert torch.equal(moe_experts(x, weights, ids, w13, w2, impl="naive"), ref)
    monkeypatch.setenv("DOCEXTRACT_KERNELS", "naive")
    assert torch.equal(moe_experts(x, weights, ids, w13, w2), ref)
    assert calls == [1]
    # bf16 experts (slow bf16 GEMMs on most CPUs) and quantised experts stay on the reference
    xb, wb, ib, b13, b2 = _case(9, 2, torch.bfloat16, seed=1)
    assert torch.equal(moe_experts(xb, wb, ib, b13, b2), naive.experts(xb, wb, ib, b13, b2))
    monkeypatch.delenv("DOCEXTRACT_KERNELS")
    q13, q2 = quantize(w13.data, "int8"), quantize(w2.data, "int8")
    assert torch.equal(moe_experts(x, weights, ids, q13, q2), naive.experts(x, weights, ids, q13, q2))
    assert calls == [1]


def test_grouped_unaligned_widths_fall_back_to_the_loop(assert_close):
    """torch._grouped_mm needs 16-byte rows; widths of 10 and 6 floats go through the loop."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(11, 10, generator=g)
    weights, ids = naive.route(torch.randn(11, 4, generator=g), 2)
    w13 = ExpertWeights("float", torch.randn(4, 12, 10, generator=g))
    w2 = ExpertWeights("float", torch.randn(4, 10, 6, generator=g))
    ref = naive.experts(x, weights, ids, w13, w2)
    assert_close("grouped unaligned", ref, grouped_cpu.experts(x, weights, ids, w13, w2), 2e-6)
