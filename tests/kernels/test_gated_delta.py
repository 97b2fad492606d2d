import pytest
import torch

from docextract.kernels import chunk_gated_delta_rule, recurrent_gated_delta_rule
from docextract.kernels.gated_delta import naive

# fp32: rounding of fp32 maths in another order; fp16: inputs and output rounded to fp16 (the
# reference sees the same fp16 inputs, so only the output rounding, ~3e-4 RMS, remains)
RATIO = {torch.float32: 2e-6, torch.float16: 2e-3}
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float16, id="fp16")]
LENGTHS = [
    pytest.param([1], id="T1"),
    pytest.param([3], id="T3"),
    pytest.param([17], id="T17"),
    pytest.param([64], id="T64"),
    pytest.param([65], id="T65"),
    pytest.param([130], id="T130"),
    pytest.param([1, 33, 0, 65], id="packed-1-33-0-65"),
]


def _cu(lengths):
    return torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)


def _inputs(T, Hk, Hv, Dk, Dv, dtype, seed, decay=0.5):
    """Random conv outputs (not normalised), log decay g <= 0, beta in (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(T, Hk, Dk, generator=g).to(dtype)
    k = torch.randn(T, Hk, Dk, generator=g).to(dtype)
    v = torch.randn(T, Hv, Dv, generator=g).to(dtype)
    logdecay = -decay * torch.rand(T, Hv, generator=g)
    beta = torch.rand(T, Hv, generator=g).to(dtype)
    return q, k, v, logdecay, beta


@pytest.mark.parametrize("lengths", LENGTHS + [pytest.param([200, 7], id="packed-200-7")])
@pytest.mark.parametrize(
    "heads", [pytest.param((1, 1), id="H1"), pytest.param((2, 4), id="Hk2-Hv4")]
)
def test_naive_chunked_matches_naive_recurrent(lengths, heads, assert_close):
    Hk, Hv = heads
    q, k, v, g, beta = _inputs(sum(lengths), Hk, Hv, 16, 12, torch.float32, sum(lengths))
    h0 = torch.randn(len(lengths), Hv, 16, 12, generator=torch.Generator().manual_seed(1))
    cu = _cu(lengths)
    ref_o, ref_h = naive.recurrent(q, k, v, g, beta, cu, h0)
    o, h = naive.chunked(q, k, v, g, beta, cu, h0)
    assert_close("chunked o", ref_o, o, 2e-6)
    assert_close("chunked state", ref_h, h, 2e-6)


def test_naive_recurrent_matches_transformers():
    from transformers.models.qwen3_5_moe.modeling_qwen3_5_moe import (
        torch_recurrent_gated_delta_rule,
    )

    q, k, v, g, beta = _inputs(20, 2, 4, 16, 8, torch.float32, 5)
    h0 = torch.randn(1, 4, 16, 8, generator=torch.Generator().manual_seed(2))
    ref_o, ref_h = torch_recurrent_gated_delta_rule(
        q[None],
        k[None],
        v[None],
        g[None],
        beta[None],
        initial_state=h0,
        output_final_state=True,
        use_qk_l2norm_in_kernel=True,
    )
    o, h = naive.recurrent(q, k, v, g, beta, _cu([20]), h0)
    assert torch.allclose(o, ref_o[0], atol=1e-6) and torch.allclose(h, ref_h, atol=1e-6)


def _on(device, *tensors):
    return [t.to(device) for t in tensors]


def _decode_steps(inputs, pool, slot, steps, impl):
    """Feeds tokens `steps` of the [T, ...] inputs one decode step at a time through `slot`."""
    return [
        recurrent_gated_delta_rule(*(x[t : t + 1] for x in inputs), pool, slot, impl=impl)
        for t in steps
    ]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lengths", LENGTHS)
def test_chunk_kernel_matches_naive(lengths, dtype, device, assert_close):
    Hk, Hv, Dk, Dv = 1, 2, 32, 24
    inputs = _inputs(sum(lengths), Hk, Hv, Dk, Dv, dtype, 10 + sum(lengths))
    h0 = torch.randn(len(lengths), Hv, Dk, Dv, generator=torch.Generator().manual_seed(3))
    cu = _cu(lengths)
    ref_o, ref_h = naive.recurrent(*inputs, cu, h0)
    o, h = chunk_gated_delta_rule(*_on(device, *inputs, cu, h0), impl="triton")
    assert o.dtype == dtype and h.dtype == torch.float32
    assert_close("chunk o", ref_o, o, RATIO[dtype])
    assert_close("chunk state", ref_h, h, 2e-6)


def test_chunk_kernel_grouped_heads_no_state_no_l2norm(device, assert_close):
    """Hv = 2 Hk, zero initial state, inputs normalised by the caller and a custom scale."""
    q, k, v, g, beta = _inputs(40, 2, 4, 16, 40, torch.float32, 4)
    q = torch.nn.functional.normalize(q, dim=-1)
    k = torch.nn.functional.normalize(k, dim=-1)
    cu = _cu([15, 25])
    ref_o, ref_h = naive.recurrent(q, k, v, g, beta, cu, None, 0.3, False)
    args = _on(device, q, k, v, g, beta, cu)
    o, h = chunk_gated_delta_rule(*args, scale=0.3, use_qk_l2norm=False, impl="triton")
    assert_close("chunk o", ref_o, o, 2e-6)
    assert_close("chunk state", ref_h, h, 2e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [pytest.param(b, id=f"B{b}") for b in (1, 3, 17)])
def test_recurrent_kernel_matches_naive_in_place(batch, dtype, device, assert_close):
    Hk, Hv, Dk, Dv, slots = 1, 2, 32, 40, 24
    inputs = _inputs(batch, Hk, Hv, Dk, Dv, dtype, 20 + batch)
    pool = torch.randn(slots, Hv, Dk, Dv, generator=torch.Generator().manual_seed(batch))
    idx = torch.randperm(slots, generator=torch.Generator().manual_seed(7))[:batch].to(torch.int32)
    if batch > 1:
        idx[-1] = -1
    ref_pool, out_pool = pool.clone(), pool.to(device)
    ref = naive.decode(*inputs, ref_pool, idx)
    out = recurrent_gated_delta_rule(*_on(device, *inputs), out_pool, idx.to(device), impl="triton")
    assert_close("decode o", ref, out, RATIO[dtype])
    assert_close("decode pool", ref_pool, out_pool, 1e-6)
    keep = torch.ones(slots, dtype=torch.bool)
    keep[idx[idx >= 0].long()] = False
    assert torch.equal(out_pool.cpu()[keep], pool[keep])
    if batch > 1:
        assert not out[-1].any()


@pytest.mark.parametrize("impl", ["naive", "triton"])
def test_prefill_then_decode_equals_one_prefill(impl, device, assert_close):
    inputs = _on(device, *_inputs(21, 1, 2, 16, 16, torch.float32, 9))
    full_o, full_h = chunk_gated_delta_rule(*inputs, _cu([21]).to(device), impl=impl)
    head = [x[:18] for x in inputs]
    head_o, h = chunk_gated_delta_rule(*head, _cu([18]).to(device), impl=impl)
    pool = torch.zeros(2, 2, 16, 16, device=device)
    pool[1] = h[0]
    slot = torch.tensor([1], dtype=torch.int32, device=device)
    steps = _decode_steps(inputs, pool, slot, range(18, 21), impl)
    assert_close("prefill+decode o", full_o, torch.cat([head_o, *steps]), 2e-6)
    assert_close("prefill+decode state", full_h[0], pool[1], 2e-6)


def test_recurrent_state_precision_over_long_decode(device, assert_close):
    """200 fp16 decode steps with slow decay (long memory) against a float64 recurrence:
    the fp32 state must not drift (measured relative RMS error 2.6e-7)."""
    steps, Hk, Hv, Dk, Dv = 200, 1, 2, 16, 16
    inputs = _inputs(steps, Hk, Hv, Dk, Dv, torch.float16, 42, decay=0.002)
    ref_o, ref_h = naive.recurrent(*(x.double() for x in inputs), _cu([steps]))
    pool = torch.zeros(3, Hv, Dk, Dv, device=device)
    slot = torch.tensor([2], dtype=torch.int32, device=device)
    outs = _decode_steps(_on(device, *inputs), pool, slot, range(steps), "triton")
    assert_close("long decode state", ref_h[0], pool[2], 2e-6)
    assert_close("long decode o", ref_o, torch.cat(outs), 1e-3)


def test_chunk_kernel_precision_over_long_sequence(device, assert_close):
    """600 tokens through the chunk kernel against a float64 recurrence (measured 2.3e-7)."""
    T = 600
    inputs = _inputs(T, 1, 1, 16, 16, torch.float32, 43, decay=0.01)
    ref_o, ref_h = naive.recurrent(*(x.double() for x in inputs), _cu([T]))
    o, h = chunk_gated_delta_rule(*_on(device, *inputs, _cu([T])), impl="triton")
    assert_close("long chunk o", ref_o, o, 2e-6)
    assert_close("long chunk state", ref_h, h, 2e-6)


@pytest.mark.parametrize(
    "change, match",
    [
        pytest.param({"g": torch.zeros(4, 2, dtype=torch.float16)}, "float32", id="g-dtype"),
        pytest.param({"v": torch.zeros(4, 3, 8)}, "multiple", id="heads"),
        pytest.param({"beta": torch.zeros(4, 3)}, "beta", id="beta-shape"),
        pytest.param({"initial_state": torch.zeros(1, 2, 8, 4)}, "initial_state", id="state-shape"),
    ],
)
def test_chunk_rejects_bad_inputs(change, match):
    args = dict(
        q=torch.zeros(4, 2, 8),
        k=torch.zeros(4, 2, 8),
        v=torch.zeros(4, 2, 8),
        g=torch.zeros(4, 2),
        beta=torch.zeros(4, 2),
        cu_seqlens=_cu([4]),
    )
    args.update(change)
    with pytest.raises(ValueError, match=match):
        chunk_gated_delta_rule(**args)


def test_recurrent_rejects_half_precision_state():
    with pytest.raises(ValueError, match="state"):
        recurrent_gated_delta_rule(
            torch.zeros(1, 1, 8),
            torch.zeros(1, 1, 8),
            torch.zeros(1, 1, 8),
            torch.zeros(1, 1),
            torch.zeros(1, 1),
            torch.zeros(2, 1, 8, 8, dtype=torch.float16),
            torch.zeros(1, dtype=torch.int32),
        )
