"""Triton chunked gated delta rule over packed variable-length sequences (prefill).

Per chunk of BT tokens (gamma = the cumulative log decay inside the chunk, D_ij =
exp(gamma_i - gamma_j) for i >= j), two kernels:
1. every (chunk, value head) in parallel, state-free: A = strict_lower(beta K K^T * D),
   T = (I + A)^-1 by forward substitution, W = T (beta K exp(gamma)), U = T (beta V) (fp32 scratch);
2. one program per (sequence, value head, BV value columns) walks its chunks in order with the
   fp32 state slice S [Dk, BV] in registers: V' = U - W S, O = (Q exp(gamma)) S +
   lower(Q K^T * D) V', S = exp(gamma_last) S + (K exp(gamma_last - gamma))^T V'.
The chunk length BT changes only the rounding, not the result (it is exact for any BT >= 16).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import device_limits, run


@triton.jit
def _load_rows(ptr, t, t_ok, h, rk, k_ok, H: tl.constexpr, Dk: tl.constexpr, L2NORM: tl.constexpr):
    """[BT, BK] fp32 rows of q or k (head h) at tokens t, L2-normalised when L2NORM."""
    x = tl.load(
        ptr + (t[:, None] * H + h) * Dk + rk[None, :], mask=t_ok[:, None] & k_ok[None, :], other=0.0
    ).to(tl.float32)
    if L2NORM:
        x = x * tl.rsqrt(tl.sum(x * x, axis=1) + 1e-6)[:, None]
    return x


@triton.jit
def _chunk_wu_kernel(
    k_ptr, v_ptr, g_ptr, beta_ptr, cu_ptr, w_ptr, u_ptr,
    S,
    Hk: tl.constexpr, Hv: tl.constexpr, Dk: tl.constexpr, Dv: tl.constexpr,
    L2NORM: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BVU: tl.constexpr,
    BLOCK_S: tl.constexpr,
):
    """One program per (chunk, value head): W = T (beta K exp(gamma)), U = T (beta V), fp32."""
    c = tl.program_id(0)
    hv = tl.program_id(1)
    hk = hv // (Hv // Hk)
    # chunk c -> (sequence, first token): chunks of all sequences numbered in order
    sid = tl.arange(0, BLOCK_S)
    s_ok = sid < S
    bos_all = tl.load(cu_ptr + sid, mask=s_ok, other=0)
    n_chunks = tl.cdiv(tl.load(cu_ptr + sid + 1, mask=s_ok, other=0) - bos_all, BT)
    ends = tl.cumsum(n_chunks, axis=0)
    seq = tl.sum((ends <= c).to(tl.int32), axis=0)
    if seq >= S:
        return
    first = tl.sum(tl.where(sid == seq, ends - n_chunks, 0), axis=0)
    bos = tl.sum(tl.where(sid == seq, bos_all, 0), axis=0) + (c - first) * BT
    eos = tl.load(cu_ptr + seq + 1)
    rt = tl.arange(0, BT)
    rk = tl.arange(0, BK)
    k_ok = rk < Dk
    t = bos + rt
    t_ok = t < eos
    k = _load_rows(k_ptr, t, t_ok, hk, rk, k_ok, Hk, Dk, L2NORM)
    g = tl.load(g_ptr + t * Hv + hv, mask=t_ok, other=0.0)
    b = tl.load(beta_ptr + t * Hv + hv, mask=t_ok, other=0.0).to(tl.float32)
    gam = tl.cumsum(g, axis=0)
    strict = rt[:, None] > rt[None, :]
    # [BT, BT]; the exponent is zeroed above the diagonal so nothing overflows there
    decay = tl.exp(tl.where(strict, gam[:, None] - gam[None, :], 0.0))
    kb = k * b[:, None]
    A = tl.where(strict, tl.dot(kb, tl.trans(k), input_precision="ieee") * decay, 0.0)
    # T = (I + A)^-1: row r = e_r - sum_{j<r} A[r, j] T[j, :], rows above r already final
    Tm = (rt[:, None] == rt[None, :]).to(tl.float32)
    for r in range(1, BT):
        a_r = tl.sum(tl.where(rt[:, None] == r, A, 0.0), axis=0)
        upd = tl.sum(a_r[:, None] * Tm, axis=0)
        Tm = tl.where(rt[:, None] == r, Tm - upd[None, :], Tm)
    W = tl.dot(Tm, kb * tl.exp(gam)[:, None], input_precision="ieee")
    tl.store(
        w_ptr + (t[:, None] * Hv + hv) * Dk + rk[None, :], W, mask=t_ok[:, None] & k_ok[None, :]
    )
    for v0 in range(0, Dv, BVU):
        rv = v0 + tl.arange(0, BVU)
        vm = t_ok[:, None] & (rv < Dv)[None, :]
        v_offs = (t[:, None] * Hv + hv) * Dv + rv[None, :]
        v = tl.load(v_ptr + v_offs, mask=vm, other=0.0).to(tl.float32)
        tl.store(u_ptr + v_offs, tl.dot(Tm, v * b[:, None], input_precision="ieee"), mask=vm)


@triton.jit
def _chunk_state_kernel(
    q_ptr, k_ptr, g_ptr, w_ptr, u_ptr, cu_ptr, h0_ptr, o_ptr, ht_ptr,
    scale,
    Hk: tl.constexpr, Hv: tl.constexpr, Dk: tl.constexpr, Dv: tl.constexpr,
    L2NORM: tl.constexpr, HAS_INIT: tl.constexpr,
    BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    """One program per (sequence, value head, BV columns): the sequential walk over chunks."""
    s = tl.program_id(0)
    hv = tl.program_id(1)
    hk = hv // (Hv // Hk)
    bos = tl.load(cu_ptr + s)
    eos = tl.load(cu_ptr + s + 1)
    rt = tl.arange(0, BT)
    rk = tl.arange(0, BK)
    rv = tl.program_id(2) * BV + tl.arange(0, BV)
    k_ok = rk < Dk
    v_ok = rv < Dv
    lower = rt[:, None] >= rt[None, :]
    # [BK, BV] fp32 state slice
    state_offs = ((s * Hv + hv) * Dk + rk[:, None]).to(tl.int64) * Dv + rv[None, :]
    state_mask = k_ok[:, None] & v_ok[None, :]
    if HAS_INIT:
        S = tl.load(h0_ptr + state_offs, mask=state_mask, other=0.0)
    else:
        S = tl.zeros((BK, BV), dtype=tl.float32)
    for i in range(0, tl.cdiv(eos - bos, BT)):
        t = bos + i * BT + rt
        t_ok = t < eos
        q = _load_rows(q_ptr, t, t_ok, hk, rk, k_ok, Hk, Dk, L2NORM) * scale
        k = _load_rows(k_ptr, t, t_ok, hk, rk, k_ok, Hk, Dk, L2NORM)
        g = tl.load(g_ptr + t * Hv + hv, mask=t_ok, other=0.0)
        # padded positions have g = 0, so the total is also gamma at the last real token
        gam = tl.cumsum(g, axis=0)
        g_last = tl.sum(g, axis=0)
        W = tl.load(
            w_ptr + (t[:, None] * Hv + hv) * Dk + rk[None, :],
            mask=t_ok[:, None] & k_ok[None, :], other=0.0,
        )
        tv_offs = (t[:, None] * Hv + hv) * Dv + rv[None, :]
        tv_mask = t_ok[:, None] & v_ok[None, :]
        vn = tl.load(u_ptr + tv_offs, mask=tv_mask, other=0.0)
        vn -= tl.dot(W, S, input_precision="ieee")
        decay = tl.exp(tl.where(lower, gam[:, None] - gam[None, :], 0.0))
        attn = tl.where(lower, tl.dot(q, tl.trans(k), input_precision="ieee") * decay, 0.0)
        o = tl.dot(q * tl.exp(gam)[:, None], S, input_precision="ieee")
        o += tl.dot(attn, vn, input_precision="ieee")
        tl.store(o_ptr + tv_offs, o.to(o_ptr.dtype.element_ty), mask=tv_mask)
        kd = k * tl.exp(g_last - gam)[:, None]
        S = S * tl.exp(g_last) + tl.dot(tl.trans(kd), vn, input_precision="ieee")
    tl.store(ht_ptr + state_offs, S, mask=state_mask)


def state_shared_bytes(stages: int, block_t: int, block_k: int, block_v: int, qk_bytes: int) -> int:
    """Estimated shared memory of `_chunk_state_kernel`: per pipelined chunk, the q and k tiles
    [BT, BK], the fp32 W [BT, BK] and U [BT, BV] tiles and g; plus 16 KiB for layout conversions.
    Triton 3.9 at Dk = Dv = 128, BT 16, BV 32, 8 warps (tests/kernels/compile_targets.py):
    fp32 59,456 B with 2 stages and 86,144 B with 3 (the estimate: 69,760 and 96,448)."""
    per_stage = block_t * (2 * block_k * qk_bytes + 4 * block_k + 4 * block_v + 4)
    return stages * per_stage + 16 * 1024


def state_options(limits, block_t: int, block_k: int, block_v: int, qk_bytes: int) -> dict:
    """num_warps / num_stages of `_chunk_state_kernel` for a device: 8 warps (the [BK, BV] fp32
    state and the [BT, BK] tiles spill heavily with 4), and the most stages (up to 3) whose
    estimated shared memory fits the device's per-block limit. With 4 warps, BT 32 and 3 stages
    it needed 123,136 B (bf16) and spilled ~10 KB per thread: over an RTX 3090's 101,376 B."""
    for stages in (3, 2):
        if state_shared_bytes(stages, block_t, block_k, block_v, qk_bytes) <= limits.smem_per_block:
            return {"num_warps": 8, "num_stages": stages}
    return {"num_warps": 8, "num_stages": 1}


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    cu_seqlens: torch.Tensor,
    initial_state: torch.Tensor | None,
    scale: float,
    use_qk_l2norm: bool,
    block_t: int = 16,
    block_v: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k [T, Hk, Dk]; v [T, Hv, Dv]; g, beta [T, Hv]; cu_seqlens [S+1]; initial_state
    [S, Hv, Dk, Dv] fp32 or None (all contiguous) -> o [T, Hv, Dv], final_state [S, Hv, Dk, Dv]."""
    T, Hk, Dk = k.shape
    Hv, Dv = v.shape[1], v.shape[2]
    S = cu_seqlens.numel() - 1
    o = torch.empty_like(v)
    final = torch.empty(S, Hv, Dk, Dv, dtype=torch.float32, device=v.device)
    block_k = max(16, triton.next_power_of_2(Dk))
    block_v = max(16, min(block_v, triton.next_power_of_2(Dv)))
    # fp32 scratch: per token, its chunk's rows of W and U
    w = torch.empty(T, Hv, Dk, dtype=torch.float32, device=v.device)
    u = torch.empty(T, Hv, Dv, dtype=torch.float32, device=v.device)
    if T > 0:
        # every sequence adds at most one partial chunk: an upper bound without a host sync
        run(
            _chunk_wu_kernel, (triton.cdiv(T, block_t) + S, Hv), k, v, g, beta, cu_seqlens, w, u,
            S,
            Hk=Hk, Hv=Hv, Dk=Dk, Dv=Dv, L2NORM=use_qk_l2norm,
            BT=block_t, BK=block_k, BVU=max(16, min(64, triton.next_power_of_2(Dv))),
            BLOCK_S=triton.next_power_of_2(S),
        )
    state_opts = state_options(device_limits(v.device), block_t, block_k, block_v, k.element_size())
    run(
        _chunk_state_kernel, (S, Hv, triton.cdiv(Dv, block_v)), q, k, g, w, u, cu_seqlens,
        initial_state if initial_state is not None else final, o, final,
        scale,
        Hk=Hk, Hv=Hv, Dk=Dk, Dv=Dv, L2NORM=use_qk_l2norm, HAS_INIT=initial_state is not None,
        BT=block_t, BK=block_k, BV=block_v,
        options=state_opts,
    )
    return o, final
