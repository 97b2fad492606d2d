import pytest
import torch
from docextract.kernels.attention import decode_attention, naive, store_kv

# fp32: summation order only; fp16: probabilities and output rounded to fp16
RATIO = {torch.float32: 1e-6, torch.float16: 1e-3}
DTYPES = [pytest.param(torch.float32, id="fp32"), pytest.param(torch.float16, id="fp16")]
# (query heads, kv heads, head dim)
HEADS = [
    pytest.param((4, 4, 32), id="mha-hd32"),
    pytest.param((4, 2, 32), id="gqa2-hd32"),
    pytest.param((8, 1, 24), id="mqa8-hd24"),
    pytest.param((6, 2, 16), id="gqa3-hd16"),
]
# one row per awkward length, plus padding rows (slot -1) among them
LENGTHS = [1, 3, 17, 64, 65, 130]
SLOTS = [2, -1, 0, 5, 1, -1, 3, 6]
ROW_LENGTHS = [1, 9, 3, 17, 64, 40, 65, 130]
MAX_LEN = 136


def _pool(slots, nkv, hd, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    shape = (slots, nkv, MAX_LEN, hd)
    return torch.randn(shape, generator=g).to(dtype), torch.randn(shape, generator=g).to(dtype)


def _rows(device):
    idx = torch.tensor(SLOTS, dtype=torch.int32, device=device)
    lengths = torch.tensor(ROW_LENGTHS, dtype=torch.int32, device=device)
    return idx, lengths


def test_rows_cover_the_awkward_lengths():
    real = [n for s, n in zip(SLOTS, ROW_LENGTHS) if s >= 0]
    assert sorted(real) == LENGTHS and SLOTS.count(-1) == 2


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads", HEADS)
def test_decode_attention_matches_naive(heads, dtype, device, assert_close):
    nh, nkv, hd = heads
    kc, vc = _pool(7, nkv, hd, dtype, seed=nh * 10 + nkv)
    kc, vc = kc.to(device), vc.to(device)
    q = torch.randn(len(SLOTS), nh, hd, generator=torch.Generator().manual_seed(hd)).to(dtype).to(device)
    idx, lengths = _rows(device)
    ref = naive.decode_attention(q, kc, vc, idx, lengths, hd**-0.5)
    out = decode_attention(q, kc, vc, idx, lengths, impl="triton")
    assert out.dtype == dtype and out.shape == (len(SLOTS), nh, hd)
    assert_close(f"decode_attention {heads} {dtype}", ref, out, RATIO[dtype])
    padding = idx < 0
    assert bool((out[padding] == 0).all()) and bool((ref[padding] == 0).all())


@pytest.mark.parametrize("splits", [1, 2, 3, 8], ids=lambda s: f"splits{s}")
def test_split_count_does_not_change_the_result(splits, device, assert_close):
    nh, nkv, hd = 4, 2, 32
    kc, vc = (t.to(device) for t in _pool(7, nkv, hd, torch.float32, seed=5))
    q = torch.randn(len(SLOTS), nh, hd, generator=torch.Generator().manual_seed(6)).to(device)
    idx, lengths = _rows(device)
    ref = naive.decode_attention(q, kc, vc, idx, lengths, 0.3)
    out = decode_attention(q, kc, vc, idx, lengths, scale=0.3, impl="triton", num_splits=splits)
    assert_close(f"splits={splits}", ref, out, RATIO[torch.float32])


def test_naive_equals_the_softmax_formula_per_row():
    """The reference itself, against a per-row loop with explicit GQA head mapping."""
    nh, nkv, hd = 6, 2, 16
    kc, vc = _pool(7, nkv, hd, torch.float32, seed=9)
    q = torch.randn(len(SLOTS), nh, hd, generator=torch.Generator().manual_seed(10))
    idx, lengths = _rows("cpu")
    out = naive.decode_attention(q, kc, vc, idx, lengths, 0.25)
    for b, (slot, n) in enumerate(zip(SLOTS, ROW_LENGTHS)):
        for h in range(nh):
            if slot < 0:
                assert bool((out[b, h] == 0).all())
                continue
            kvh = h // (nh // nkv)
            p = torch.softmax(kc[slot, kvh, :n].double() @ q[b, h].double() * 0.25, dim=0)
            want = p @ vc[slot, kvh, :n].double()
            torch.testing.assert_close(out[b, h].double(), want, rtol=1e-5, atol=1e-6)


def test_keys_past_the_length_are_never_read(device):
    """Poison every cache entry a row must not read (past its length, other slots): the Triton
    output stays equal to the naive one on the clean cache."""
    nh, nkv, hd = 4, 2, 32
    kc, vc = _pool(7, nkv, hd, torch.float32, seed=11)
    q = torch.randn(len(SLOTS), nh, hd, generator=torch.Generator().manual_seed(12))
    idx, lengths = _rows("cpu")
    ref = naive.decode_attention(q, kc, vc, idx, lengths, hd**-0.5)
    keep = torch.zeros(7, 1, MAX_LEN, 1, dtype=torch.bool)
    for slot, n in zip(SLOTS, ROW_LENGTHS):
        if slot >= 0:
            keep[slot, :, :n] = True
    kp, vp = kc.masked_fill(~keep, float("nan")), vc.masked_fill(~keep, float("inf"))
    out = decode_attention(q.to(device), kp.to(device), vp.to(device), idx.to(device),
                           lengths.to(device), impl="triton", num_splits=3)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-5, atol=1e-6)


def test_lengths_out_of_range_give_zero_rows(device):
    nh, nkv, hd = 2, 1, 16
    kc, vc = (t.to(device) for t in _pool(2, nkv, hd, torch.float32, seed=13))
    q = torch.randn(3, nh, hd, device=device)
    idx = torch.tensor([0, 1, 1], dtype=torch.int32, device=device)
    lengths = torch.tensor([0, MAX_LEN + 1, MAX_LEN], dtype=torch.int32, device=device)
    for impl in ("naive", "triton"):
        out = decode_attention(q, kc, vc, idx, lengths, impl=impl)
        assert bool((out[:2] == 0).all()) and bool(out[2].abs().sum() > 0), impl


def test_long_context_precision(device):
    """fp16 inputs over 2000 keys, against a float64 computation on the same fp16 values."""
    nh, nkv, hd = 8, 2, 64
    n = 2000
    g = torch.Generator().manual_seed(14)
    kc = torch.randn(1, nkv, n, hd, generator=g).half()
    vc = torch.randn(1, nkv, n, hd, generator=g).half()
    q = (2 * torch.randn(1, nh, hd, generator=g)).half()
    idx = torch.zeros(1, dtype=torch.int32)
    lengths = torch.full((1,), n, dtype=torch.int32)
    out = decode_attention(q.to(device), kc.to(device), vc.to(device), idx.to(device),
                           lengths.to(device), impl="triton")
    qg = q.double().view(nkv, nh // nkv, hd)
    p = torch.softmax(torch.einsum("kgd,kld->kgl", qg, kc[0].double()) * hd**-0.5, dim=-1)
    want = torch.einsum("kgl,kld->kgd", p, vc[0].double()).reshape(1, nh, hd)
    err = ((out.double().cpu() - want).pow(2).mean().sqrt() / want.pow(2).mean().sqrt()).item()
    assert err < 2e-3, err


@pytest.mark.parametrize("dtype", DTYPES)
def test_store_kv_writes_at_length_minus_one(dtype, device):
    nkv, hd = 2, 24
    kc, vc = (t.to(device) for t in _pool(7, nkv, hd, dtype, seed=15))
    before_k, before_v = kc.clone(), vc.clone()
    rows = len(SLOTS)
    g = torch.Generator().manual_seed(16)
    k = torch.randn(rows, nkv, hd, generator=g).to(dtype).to(device)
    v = torch.randn(rows, nkv, hd, generator=g).to(dtype).to(device)
    idx, lengths = _rows(device)
    ref_k, ref_v = kc.clone(), vc.clone()
    naive.store_kv(k, v, ref_k, ref_v, idx, lengths)
    store_kv(k, v, kc, vc, idx, lengths, impl="triton")
    assert torch.equal(kc, ref_k) and torch.equal(vc, ref_v)
    changed = (kc != before_k).any(-1) | (vc != before_v).any(-1)
    want = torch.zeros_like(changed)
    for b, (slot, n) in enumerate(zip(SLOTS, ROW_LENGTHS)):
        if slot >= 0:
            want[slot, :, n - 1] = True
            assert torch.equal(kc[slot, :, n - 1], k[b]) and torch.equal(vc[slot, :, n - 1], v[b])
    assert torch.equal(changed, want)


def test_store_kv_skips_lengths_out_of_range(device):
    kc, vc = (t.to(device) for t in _pool(2, 1, 16, torch.float32, seed=17))
    before = kc.clone()
    k = torch.randn(2, 1, 16, device=device)
    idx = torch.tensor([0, 1], dtype=torch.int32, device=device)
    lengths = torch.tensor([0, MAX_LEN + 1], dtype=torch.int32, device=device)
    for impl in ("naive", "triton"):
        store_kv(k, k, kc, vc, idx, lengths, impl=impl)
        assert torch.equal(kc, before), impl


@pytest.mark.parametrize(
    "change, message",
    [
        pytest.param({"q": torch.zeros(2, 4)}, "q: expected shape", id="q-rank"),
        pytest.param({"q": torch.zeros(2, 3, 16)}, "multiple of kv heads", id="heads"),
        pytest.param({"q": torch.zeros(2, 4, 8)}, "head dim", id="head-dim"),
        pytest.param({"q": torch.zeros(2, 4, 16, dtype=torch.float16)}, "share a dtype", id="dtype"),
        pytest.param({"slot_index": torch.zeros(2, dtype=torch.int64)}, "slot_index: expected int32",
                     id="slot-dtype"),
        pytest.param({"lengths": torch.ones(3, dtype=torch.int32)}, r"lengths: expected int32 \[2\]",
                     id="lengths-shape"),
        pytest.param({"v_cache": torch.zeros(3, 2, 12, 16)}, "equal shapes", id="cache-shape"),
        pytest.param({"k_cache": torch.zeros(3, 2, 16, 10).transpose(2, 3),
                      "v_cache": torch.zeros(3, 2, 16, 10).transpose(2, 3)}, "contiguous",
                     id="cache-strided"),
        pytest.param({"num_splits": 0}, "num_splits", id="splits"),
    ],
)
def test_decode_attention_rejects_bad_inputs(change, message):
    args = {"q": torch.zeros(2, 4, 16), "k_cache": torch.zeros(3, 2, 10, 16),
            "v_cache": torch.zeros(3, 2, 10, 16), "slot_index": torch.zeros(2, dtype=torch.int32),
            "lengths": torch.ones(2, dtype=torch.int32)}
    args.update(change)
    with pytest.raises(ValueError, match=message):
        decode_attention(**args)


def test_store_kv_rejects_bad_inputs():
    kc = torch.zeros(3, 2, 10, 16)
    idx, n = torch.zeros(2, dtype=torch.int32), torch.ones(2, dtype=torch.int32)
    with pytest.raises(ValueError, match="kv heads"):
        store_kv(torch.zeros(2, 1, 16), torch.zeros(2, 1, 16), kc, kc.clone(), idx, n)
    with pytest.raises(ValueError, match="equal shapes"):
        store_kv(torch.zeros(2, 2, 16), torch.zeros(2, 2, 8), kc, kc.clone(), idx, n)
    with pytest.raises(ValueError, match="lengths"):
        store_kv(torch.zeros(2, 2, 16), torch.zeros(2, 2, 16), kc, kc.clone(), idx, n[:1])


COMPILE = r"""
import json
import torch
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from docextract.kernels.attention import decode

TYPES = {torch.bfloat16: "bf16", torch.float32: "fp32", torch.int32: "i32"}


def signature(launch):
    names = [n for n in launch.kernel.arg_names if n not in launch.constexprs]
    sig = dict.fromkeys(launch.constexprs, "constexpr")
    for name, arg in zip(names, launch.args, strict=True):
        if isinstance(arg, torch.Tensor):
            sig[name] = "*" + TYPES[arg.dtype]
        else:
            sig[name] = "fp32" if isinstance(arg, float) else "i32"
    return {n: sig[n] for n in launch.kernel.arg_names}


rows = []
for dtype, targets in ((torch.bfloat16, (90, 86)), (torch.float32, (86,))):
    # the 35B-A3B attention: 16 query heads, 2 kv heads of 256
    q = torch.zeros(3, 16, 256, dtype=dtype)
    cache = torch.zeros(4, 2, 64, 256, dtype=dtype)
    rows_i32 = torch.zeros(3, dtype=torch.int32)
    launches = decode.attention_launches(q, cache, cache, rows_i32, rows_i32, 0.1, 4, q.clone())
    launches.append(decode.store_launch(q[:, :2], q[:, :2], cache, cache, rows_i32, rows_i32))
    for cc in targets:
        for launch in launches:
            src = ASTSource(launch.kernel, signature(launch), launch.constexprs)
            kernel = triton.compile(src, target=GPUTarget("cuda", cc, 32), options=launch.options)
            assert "cubin" in kernel.asm
            rows.append([str(dtype), cc, launch.kernel.__name__, kernel.metadata.shared])
print(json.dumps(rows))
"""


def test_kernels_compile_for_cuda_targets(tmp_path):
    """No GPU here: compile the launches decode_attention and store_kv make at the 35B-A3B shapes
    to cubin for sm_90 (H100/H200) and sm_86 (RTX 30xx), which the interpreter never does, in a
    process without TRITON_INTERPRET; shared memory must fit a consumer GPU (99 KiB)."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton-cache")
    run = subprocess.run([sys.executable, "-c", COMPILE], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=False, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(rows) == 9
    assert {r[2] for r in rows} == {"_split_kernel", "_combine_kernel", "_store_kernel"}
    assert all(shared <= 99 * 1024 for *_, shared in rows), rows
