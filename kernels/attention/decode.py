"""Triton split-K (flash-decoding) attention of one query token per sequence over a slot-pool KV
cache, and the in-place write of the new token's key and value.

Pass 1 runs one program per (sequence, kv head, split). Each split takes an equal share of the
sequence's valid keys, sized on the device from its length, so the grid depends only on the batch
size and a split count fixed by the caller: nothing is read back to the host and the launch can be
captured in a CUDA graph. A program serves all query heads of its kv head (GQA), so each key and
value tile is loaded once, and keeps an online softmax (running max and sum, base 2) in fp32.
Pass 2 merges the splits of each (sequence, query head).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import Launch, device_limits

LOG2E = 1.4426950408889634


@triton.jit
def _split_kernel(
    q_ptr, k_ptr, v_ptr, slot_ptr, len_ptr, po_ptr, pm_ptr, pl_ptr,
    scale_log2, max_len,
    stride_ks, stride_kh, stride_kl, stride_vs, stride_vh, stride_vl,
    NH: tl.constexpr, HD: tl.constexpr, GROUP: tl.constexpr, SPLITS: tl.constexpr,
    BLOCK_G: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, DOT_IEEE: tl.constexpr,
):
    b = tl.program_id(0)
    kvh = tl.program_id(1)
    sp = tl.program_id(2)
    slot = tl.load(slot_ptr + b)
    n = tl.load(len_ptr + b)
    # padding rows and lengths out of range attend to nothing
    n = tl.where((slot >= 0) & (n >= 1) & (n <= max_len), n, 0)
    per = tl.cdiv(tl.cdiv(n, SPLITS), BLOCK_N) * BLOCK_N
    lo = sp * per
    hi = tl.minimum(lo + per, n)
    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, BLOCK_D)
    g_ok = g < GROUP
    d_ok = d < HD
    heads = kvh * GROUP + g
    # [BLOCK_G, BLOCK_D]: the query heads of this kv head (padded rows are zero)
    q = tl.load(q_ptr + (b * NH + heads)[:, None] * HD + d[None, :],
                mask=g_ok[:, None] & d_ok[None, :], other=0.0)
    slot64 = tl.maximum(slot, 0).to(tl.int64)
    k_base = k_ptr + slot64 * stride_ks + kvh * stride_kh
    v_base = v_ptr + slot64 * stride_vs + kvh * stride_vh
    m_i = tl.full((BLOCK_G,), float("-inf"), tl.float32)
    l_i = tl.zeros((BLOCK_G,), tl.float32)
    acc = tl.zeros((BLOCK_G, BLOCK_D), tl.float32)
    for start in range(lo, hi, BLOCK_N):
        pos = start + tl.arange(0, BLOCK_N)
        pos_ok = pos < hi
        kv_mask = pos_ok[:, None] & d_ok[None, :]
        # [BLOCK_N, BLOCK_D]
        k = tl.load(k_base + pos[:, None] * stride_kl + d[None, :], mask=kv_mask, other=0.0)
        if DOT_IEEE:
            s = tl.dot(q, tl.trans(k.to(q.dtype)), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k.to(q.dtype)))
        # [BLOCK_G, BLOCK_N] scores in base 2
        s = tl.where(pos_ok[None, :], s * scale_log2, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_base + pos[:, None] * stride_vl + d[None, :], mask=kv_mask, other=0.0)
        v = v.to(q.dtype)
        if DOT_IEEE:
            pv = tl.dot(p.to(v.dtype), v, input_precision="ieee")
        else:
            pv = tl.dot(p.to(v.dtype), v)
        acc = acc * alpha[:, None] + pv
        m_i = m_new
    # partials [B, NH, SPLITS(, HD)]: unnormalised sum, max and denominator of this split
    row = (b * NH + heads) * SPLITS + sp
    tl.store(po_ptr + row[:, None] * HD + d[None, :], acc, mask=g_ok[:, None] & d_ok[None, :])
    tl.store(pm_ptr + row, m_i, mask=g_ok)
    tl.store(pl_ptr + row, l_i, mask=g_ok)


@triton.jit
def _combine_kernel(
    po_ptr, pm_ptr, pl_ptr, out_ptr,
    HD: tl.constexpr, SPLITS: tl.constexpr, BLOCK_S: tl.constexpr, BLOCK_D: tl.constexpr,
):
    bh = tl.program_id(0)
    s = tl.arange(0, BLOCK_S)
    d = tl.arange(0, BLOCK_D)
    s_ok = s < SPLITS
    d_ok = d < HD
    m = tl.load(pm_ptr + bh * SPLITS + s, mask=s_ok, other=float("-inf"))
    l_s = tl.load(pl_ptr + bh * SPLITS + s, mask=s_ok, other=0.0)
    m_max = tl.max(m, axis=0)
    # empty splits (max -inf) weigh nothing; a row with no keys at all gets zeros
    m_max = tl.where(m_max > float("-inf"), m_max, 0.0)
    w = tl.exp2(m - m_max)
    total = tl.sum(l_s * w, axis=0)
    acc = tl.load(po_ptr + (bh * SPLITS + s)[:, None] * HD + d[None, :],
                  mask=s_ok[:, None] & d_ok[None, :], other=0.0)
    o = tl.sum(acc * w[:, None], axis=0)
    o = tl.where(total > 0, o / tl.maximum(total, 1e-30), 0.0)
    tl.store(out_ptr + bh * HD + d, o.to(out_ptr.dtype.element_ty), mask=d_ok)


@triton.jit
def _store_kernel(
    k_ptr, v_ptr, kc_ptr, vc_ptr, slot_ptr, len_ptr, max_len,
    stride_ks, stride_kh, stride_kl, stride_vs, stride_vh, stride_vl,
    NKV: tl.constexpr, HD: tl.constexpr, BLOCK_D: tl.constexpr,
):
    b = tl.program_id(0)
    h = tl.program_id(1)
    slot = tl.load(slot_ptr + b)
    n = tl.load(len_ptr + b)
    if (slot >= 0) & (n >= 1) & (n <= max_len):
        d = tl.arange(0, BLOCK_D)
        d_ok = d < HD
        src = (b * NKV + h) * HD + d
        pos = (n - 1).to(tl.int64)
        slot64 = slot.to(tl.int64)
        k = tl.load(k_ptr + src, mask=d_ok)
        v = tl.load(v_ptr + src, mask=d_ok)
        tl.store(kc_ptr + slot64 * stride_ks + h * stride_kh + pos * stride_kl + d,
                 k.to(kc_ptr.dtype.element_ty), mask=d_ok)
        tl.store(vc_ptr + slot64 * stride_vs + h * stride_vh + pos * stride_vl + d,
                 v.to(vc_ptr.dtype.element_ty), mask=d_ok)


def default_splits(batch: int, nkv: int, max_len: int, block_n: int, device: torch.device) -> int:
    """Splits per (sequence, kv head): enough programs for ~2 waves of the GPU's SMs, at most
    one per key block of the cache. Depends on shapes only, so a captured graph keeps it."""
    sms = device_limits(device).sms
    want = triton.cdiv(2 * sms, batch * nkv)
    return max(1, min(triton.next_power_of_2(want), 64, triton.cdiv(max_len, block_n)))


def block_n_for(head_dim: int, element_size: int) -> int:
    """Keys per tile: a 16 KiB key tile, 16 to 64 keys (fp32 at hd 256 then needs ~50 KiB of
    shared memory with two stages, within a consumer GPU's ~99 KiB)."""
    return max(16, min(64, triton.next_power_of_2(16384 // (head_dim * element_size) + 1) // 2))


def attention_launches(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_index: torch.Tensor,
    lengths: torch.Tensor,
    scale: float,
    num_splits: int | None,
    out: torch.Tensor,
) -> list[Launch]:
    """The split and combine launches writing `out` [B, nh, hd] (B >= 1), workspace allocated."""
    B, nh, hd = q.shape
    nkv, max_len = k_cache.shape[1], k_cache.shape[2]
    block_n = block_n_for(hd, k_cache.element_size())
    splits = num_splits or default_splits(B, nkv, max_len, block_n, q.device)
    group = nh // nkv
    # [B, nh, splits, hd] fp32 partial sums, [B, nh, splits] running max and denominator
    po = torch.empty(B, nh, splits, hd, dtype=torch.float32, device=q.device)
    pm = torch.empty(B, nh, splits, dtype=torch.float32, device=q.device)
    pl = torch.empty(B, nh, splits, dtype=torch.float32, device=q.device)
    block_d = max(16, triton.next_power_of_2(hd))
    split = Launch(
        _split_kernel, (B, nkv, splits),
        (q, k_cache, v_cache, slot_index, lengths, po, pm, pl, scale * LOG2E, max_len,
         k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
         v_cache.stride(0), v_cache.stride(1), v_cache.stride(2)),
        {"NH": nh, "HD": hd, "GROUP": group, "SPLITS": splits,
         "BLOCK_G": max(16, triton.next_power_of_2(group)), "BLOCK_N": block_n, "BLOCK_D": block_d,
         "DOT_IEEE": q.dtype == torch.float32},
        {"num_warps": 4, "num_stages": 2},
    )
    combine = Launch(
        _combine_kernel, (B * nh,), (po, pm, pl, out),
        {"HD": hd, "SPLITS": splits, "BLOCK_S": max(2, triton.next_power_of_2(splits)),
         "BLOCK_D": block_d},
        {},
    )
    return [split, combine]


def store_launch(
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_index: torch.Tensor,
    lengths: torch.Tensor,
) -> Launch:
    B, nkv, hd = k.shape
    return Launch(
        _store_kernel, (B, nkv),
        (k, v, k_cache, v_cache, slot_index, lengths, k_cache.shape[2],
         k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
         v_cache.stride(0), v_cache.stride(1), v_cache.stride(2)),
        {"NKV": nkv, "HD": hd, "BLOCK_D": triton.next_power_of_2(hd)},
        {},
    )


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_index: torch.Tensor,
    lengths: torch.Tensor,
    scale: float,
    num_splits: int | None = None,
) -> torch.Tensor:
    """q [B, nh, hd] contiguous; k_cache, v_cache [slots, nkv, max_len, hd] (last dim
    contiguous); slot_index, lengths int32 [B] -> [B, nh, hd] in q's dtype."""
    out = torch.empty_like(q)
    if q.shape[0] == 0:
        return out
    for launch in attention_launches(q, k_cache, v_cache, slot_index, lengths, scale, num_splits, out):
        launch()
    return out


def store_kv(
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_index: torch.Tensor,
    lengths: torch.Tensor,
) -> None:
    """k, v [B, nkv, hd] contiguous; caches [slots, nkv, max_len, hd] (written in place);
    slot_index, lengths int32 [B]."""
    if k.shape[0] > 0:
        store_launch(k, v, k_cache, v_cache, slot_index, lengths)()
