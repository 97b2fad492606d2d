import pytest
import torch

from docextract.kernels import causal_conv1d, causal_conv1d_update
from docextract.kernels.conv import naive

# fp32: summation order only; fp16: one rounding of the output
RATIO = {torch.float32: 1e-6, torch.float16: 1e-3}
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float16, id="fp16")]
LENGTHS = [
    pytest.param([1], id="T1"),
    pytest.param([3], id="T3"),
    pytest.param([17], id="T17"),
    pytest.param([64], id="T64"),
    pytest.param([65], id="T65"),
    pytest.param([130], id="T130"),
    pytest.param([2, 0, 1, 17, 45], id="packed-with-empty"),
    pytest.param([64, 1, 65], id="packed-64-1-65"),
]


def _cu(lengths, device="cpu"):
    offsets = [0, *torch.tensor(lengths).cumsum(0).tolist()]
    return torch.tensor(offsets, dtype=torch.int32, device=device)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("lengths", LENGTHS)
@pytest.mark.parametrize(
    "with_state", [pytest.param(True, id="state"), pytest.param(False, id="zero")]
)
def test_causal_conv1d_matches_naive(lengths, with_state, dtype, device, assert_close):
    g = torch.Generator().manual_seed(sum(lengths) + len(lengths))
    C, K, cu = 200, 4, _cu(lengths, device)
    x = torch.randn(sum(lengths), C, generator=g).to(device, dtype)
    w = (torch.randn(C, K, generator=g) * 0.5).to(device, dtype)
    init = torch.randn(len(lengths), C, K - 1, generator=g).to(device, dtype)
    init = init if with_state else None
    ref_y, ref_fin = naive.causal_conv1d(x, w, cu, init)
    y, fin = causal_conv1d(x, w, cu, init, impl="triton")
    assert_close("conv y", ref_y, y, RATIO[dtype])
    assert torch.equal(fin, ref_fin)


def test_naive_conv_matches_transformers_single_sequence():
    from transformers.models.qwen3_5_moe.modeling_qwen3_5_moe import causal_conv1d_fn

    g = torch.Generator().manual_seed(3)
    x = torch.randn(23, 40, generator=g)
    w = torch.randn(40, 4, generator=g)
    ref = causal_conv1d_fn(x.t()[None], w, None, activation="silu")[0].t()
    y, fin = naive.causal_conv1d(x, w, _cu([23]))
    assert torch.allclose(y, ref, atol=1e-5)
    assert torch.equal(fin[0], x[-3:].t())


def test_final_state_of_short_sequence_keeps_initial_state():
    init = torch.arange(1 * 2 * 3, dtype=torch.float32).reshape(1, 2, 3)
    x = torch.tensor([[100.0, 200.0]])
    _, fin = naive.causal_conv1d(x, torch.ones(2, 4), _cu([1]), init)
    assert fin.tolist() == [[[1.0, 2.0, 100.0], [4.0, 5.0, 200.0]]]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("batch", [pytest.param(b, id=f"B{b}") for b in (1, 3, 17)])
def test_conv_update_matches_naive_in_place(batch, dtype, device, assert_close):
    g = torch.Generator().manual_seed(batch)
    C, K, slots = 72, 4, 20
    x = torch.randn(batch, C, generator=g).to(device, dtype)
    w = torch.randn(C, K, generator=g).to(device, dtype)
    pool = torch.randn(slots, C, K - 1, generator=g).to(device, dtype)
    idx = torch.randperm(slots, generator=g)[:batch].to(torch.int32)
    if batch > 1:
        idx[1] = -1
    idx = idx.to(device)
    ref_pool, out_pool = pool.clone(), pool.clone()
    ref = naive.causal_conv1d_update(x, ref_pool, w, idx)
    out = causal_conv1d_update(x, out_pool, w, idx, impl="triton")
    assert_close("conv update y", ref, out, RATIO[dtype])
    assert torch.equal(out_pool, ref_pool)
    untouched = torch.ones(slots, dtype=torch.bool, device=device)
    untouched[idx[idx >= 0].long()] = False
    assert torch.equal(out_pool[untouched], pool[untouched])
    if batch > 1:
        assert not out[1].any()


@pytest.mark.parametrize("impl", ["naive", "triton"])
def test_prefill_then_steps_equals_one_prefill(impl, device, assert_close):
    g = torch.Generator().manual_seed(11)
    C, K, L, split = 36, 4, 9, 5
    x = torch.randn(L, C, generator=g).to(device)
    w = torch.randn(C, K, generator=g).to(device)
    full, _ = causal_conv1d(x, w, _cu([L], device), impl=impl)
    head, state = causal_conv1d(x[:split], w, _cu([split], device), impl=impl)
    pool = torch.zeros(3, C, K - 1, device=device)
    pool[2] = state[0]
    slot = torch.tensor([2], dtype=torch.int32, device=device)
    steps = [causal_conv1d_update(x[t : t + 1], pool, w, slot, impl=impl) for t in range(split, L)]
    assert_close("prefill+steps", full, torch.cat([head, *steps]), 1e-6)


def test_conv_rejects_bad_state_shape():
    with pytest.raises(ValueError, match="initial_state"):
        causal_conv1d(torch.zeros(4, 8), torch.zeros(8, 4), _cu([4]), torch.zeros(1, 8, 4))


def test_conv_rejects_bad_cu_seqlens():
    with pytest.raises(ValueError, match="cu_seqlens"):
        causal_conv1d(torch.zeros(4, 8), torch.zeros(8, 4), _cu([3]))
