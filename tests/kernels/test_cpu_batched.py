"""The CPU decode paths (kernels/gated_delta/cpu.py, kernels/conv/cpu.py, kernels/attention/
cpu.py): pool rows read and updated in place; against the naive references (the ground truth,
checked against transformers in test_gated_delta.py, test_conv.py and test_attention.py)."""

import pytest
import torch

from docextract.kernels import causal_conv1d_update, recurrent_gated_delta_rule
from docextract.kernels.conv import naive as conv_naive
from docextract.kernels.gated_delta import naive


def _inputs(T, Hk, Hv, Dk, Dv, seed, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(T, Hk, Dk, generator=g).to(dtype) for _ in range(2))
    v = torch.randn(T, Hv, Dv, generator=g).to(dtype)
    return q, k, v, -0.5 * torch.rand(T, Hv, generator=g), torch.rand(T, Hv, generator=g).to(dtype)


@pytest.mark.parametrize("slots", [[0, 1, 2], [3, 4], [2, 0, 3], [1, -1, 3]], ids=str)
def test_decode_step_updates_the_pool_like_the_reference(slots, assert_close):
    B = len(slots)
    q, k, v, g, beta = _inputs(B, 2, 4, 16, 12, 7)
    pool = torch.randn(5, 4, 16, 12, generator=torch.Generator().manual_seed(3))
    idx = torch.tensor(slots, dtype=torch.int32)
    ref_pool = pool.clone()
    ref = naive.decode(q, k, v, g, beta, ref_pool, idx)
    out = recurrent_gated_delta_rule(q, k, v, g, beta, pool, idx, impl="auto")
    assert_close("decode o", ref, out, 2e-6)
    assert_close("decode pool", ref_pool, pool, 2e-6)


@pytest.mark.parametrize("slots", [[0, 1, 2], [1, 2], [2, 0], [0, -1]], ids=str)
def test_conv_step_rolls_the_pool_like_the_reference(slots):
    B, C, K = len(slots), 6, 4
    gen = torch.Generator().manual_seed(5)
    x, w = torch.randn(B, C, generator=gen), torch.randn(C, K, generator=gen)
    pool = torch.randn(4, C, K - 1, generator=gen)
    idx = torch.tensor(slots, dtype=torch.int32)
    ref_pool = pool.clone()
    ref = conv_naive.causal_conv1d_update(x, ref_pool, w, idx)
    out = causal_conv1d_update(x, pool, w, idx, impl="auto")
    assert torch.equal(ref, out) and torch.equal(ref_pool, pool)


@pytest.mark.parametrize("slots,lengths", [([0, 1, 2], [5, 9, 1]), ([1, 2], [7, 7]),
                                           ([2, 0], [3, 4]), ([0, -1], [3, 2])], ids=str)
def test_decode_attention_reads_the_pool_like_the_reference(slots, lengths, assert_close):
    from docextract.kernels.attention import decode_attention
    from docextract.kernels.attention import naive as attn_naive

    gen = torch.Generator().manual_seed(11)
    q = torch.randn(len(slots), 4, 8, generator=gen)
    keys, values = (torch.randn(3, 2, 10, 8, generator=gen) for _ in range(2))
    idx, n = torch.tensor(slots, dtype=torch.int32), torch.tensor(lengths, dtype=torch.int32)
    ref = attn_naive.decode_attention(q, keys, values, idx, n, 0.3)
    out = decode_attention(q, keys, values, idx, n, 0.3, impl="auto")
    assert_close("decode attention", ref, out, 2e-6)
