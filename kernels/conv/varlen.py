"""Triton causal depthwise conv1d + SiLU over packed sequences (prefill)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import run


@triton.jit
def _conv_varlen_kernel(
    x_ptr, w_ptr, cu_ptr, init_ptr, y_ptr,
    T, C, S,
    K: tl.constexpr, HAS_INIT: tl.constexpr,
    BLOCK_T: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_S: tl.constexpr,
):
    t = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    t_ok = t < T
    c_ok = c < C
    # sequence of each token: how many sequence ends lie at or before it
    s_idx = tl.arange(0, BLOCK_S)
    ends = tl.load(cu_ptr + 1 + s_idx, mask=s_idx < S, other=2147483647)
    seq = tl.sum((t[:, None] >= ends[None, :]).to(tl.int32), axis=1)
    bos = tl.load(cu_ptr + seq, mask=t_ok, other=0)
    acc = tl.zeros((BLOCK_T, BLOCK_C), dtype=tl.float32)
    for j in tl.static_range(K):
        # [BLOCK_T]: input position of tap j; before bos it comes from the initial state
        p = t - (K - 1) + j
        in_seq = p >= bos
        m = t_ok[:, None] & c_ok[None, :]
        xv = tl.load(x_ptr + p[:, None] * C + c[None, :], mask=m & in_seq[:, None], other=0.0)
        xv = xv.to(tl.float32)
        if HAS_INIT:
            h = (K - 1) + p - bos
            hv = tl.load(
                init_ptr + seq[:, None] * (C * (K - 1)) + c[None, :] * (K - 1) + h[:, None],
                mask=m & (~in_seq)[:, None], other=0.0,
            )
            xv = tl.where(in_seq[:, None], xv, hv.to(tl.float32))
        w = tl.load(w_ptr + c * K + j, mask=c_ok, other=0.0).to(tl.float32)
        acc += xv * w[None, :]
    # the pre-activation is rounded to the output dtype, as transformers' conv + SiLU does
    acc = acc.to(y_ptr.dtype.element_ty).to(tl.float32)
    y = acc * tl.sigmoid(acc)
    tl.store(
        y_ptr + t[:, None] * C + c[None, :], y.to(y_ptr.dtype.element_ty),
        mask=t_ok[:, None] & c_ok[None, :],
    )


@triton.jit
def _conv_final_state_kernel(
    x_ptr, cu_ptr, init_ptr, fin_ptr,
    C,
    KM1: tl.constexpr, HAS_INIT: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
):
    s = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    j = tl.arange(0, BLOCK_K)
    bos = tl.load(cu_ptr + s)
    eos = tl.load(cu_ptr + s + 1)
    # [BLOCK_K]: positions of the last K-1 inputs of the sequence
    p = eos - KM1 + j
    in_seq = p >= bos
    m = (c < C)[:, None] & (j < KM1)[None, :]
    v = tl.load(x_ptr + p[None, :] * C + c[:, None], mask=m & in_seq[None, :], other=0.0)
    v = v.to(tl.float32)
    if HAS_INIT:
        h = KM1 + p - bos
        hv = tl.load(
            init_ptr + s * (C * KM1) + c[:, None] * KM1 + h[None, :],
            mask=m & (~in_seq)[None, :], other=0.0,
        )
        v = tl.where(in_seq[None, :], v, hv.to(tl.float32))
    tl.store(
        fin_ptr + s * (C * KM1) + c[:, None] * KM1 + j[None, :],
        v.to(fin_ptr.dtype.element_ty), mask=m,
    )


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    cu_seqlens: torch.Tensor,
    initial_state: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x [T, C], weight [C, K], cu_seqlens [S+1], initial_state [S, C, K-1] or None (contiguous)
    -> y [T, C], final_state [S, C, K-1]."""
    T, C = x.shape
    K = weight.shape[1]
    S = cu_seqlens.numel() - 1
    y = torch.empty_like(x)
    state_dtype = initial_state.dtype if initial_state is not None else x.dtype
    final = torch.empty(S, C, K - 1, dtype=state_dtype, device=x.device)
    has_init = initial_state is not None
    init = initial_state if has_init else final
    block_c = min(triton.next_power_of_2(C), 128)
    if T > 0:
        # 32 x 128 tiles with 8 warps: 174 registers and no spills (sm_86, fp32); 64 x 128 with 4
        # warps took 255 registers and spilled up to 800 B per thread
        block_t = min(triton.next_power_of_2(T), 32)
        grid = (triton.cdiv(T, block_t), triton.cdiv(C, block_c))
        run(
            _conv_varlen_kernel, grid, x, weight, cu_seqlens, init, y, T, C, S,
            K=K, HAS_INIT=has_init, BLOCK_T=block_t, BLOCK_C=block_c,
            BLOCK_S=triton.next_power_of_2(S), options={"num_warps": 8},
        )
    run(
        _conv_final_state_kernel, (S, triton.cdiv(C, block_c)), x, cu_seqlens, init, final, C,
        KM1=K - 1, HAS_INIT=has_init, BLOCK_C=block_c, BLOCK_K=triton.next_power_of_2(K - 1),
    )
    return y, final
