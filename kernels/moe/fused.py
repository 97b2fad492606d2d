"""Triton fused MoE experts: align -> grouped GEMM gate+up (SiLU(gate) * up fused) -> grouped GEMM
down (routing weight in the epilogue) -> combine. Expert weights are dequantised in registers.

Both GEMMs run one program per (block of BLOCK_M sorted pairs, BLOCK_N output columns); every pair
in a block belongs to the block's expert. Output rows are indexed by pair p = t * k + j, so the
order of pairs inside an expert's run never matters.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import device_limits, run

from . import align as align_mod
from .config import fit, get_config, validate
from .quant import GROUP, ExpertWeights

WFMT = {"float": 0, "int8": 1, "int4": 2, "fp8": 3}
ACT_NAMES = {torch.bfloat16: "bf16", torch.float16: "fp16", torch.float32: "fp32"}


@triton.jit
def _load_weight_tile(
    w_ptr, s_ptr, e, rows, rk, k0, row_ok, K,
    stride_we, stride_wn, stride_se, stride_sn, stride_sk,
    WFMT: tl.constexpr, GROUP: tl.constexpr,
):
    """[BK, BN] fp32 tile of expert e's weight rows `rows` at inputs rk (unscaled), and the [BN]
    scale of this K block for the group-scaled formats (int4, fp8; unused otherwise)."""
    mask = (rk < K)[:, None] & row_ok[None, :]
    base = w_ptr + e * stride_we + rows[None, :] * stride_wn
    if WFMT == 2:
        # two inputs per byte: even k in the low nibble, odd k in the high one
        byte = tl.load(base + (rk // 2)[:, None], mask=mask, other=0).to(tl.int32)
        nib = (byte >> ((rk % 2) * 4)[:, None]) & 15
        b = (nib - (nib >= 8).to(tl.int32) * 16).to(tl.float32)
    elif WFMT == 3:
        # no `other`: a literal cannot be cast to fp8 (in the interpreter)
        b = tl.where(mask, tl.load(base + rk[:, None], mask=mask).to(tl.float32), 0.0)
    else:
        b = tl.load(base + rk[:, None], mask=mask, other=0).to(tl.float32)
    if WFMT == 2:
        s = tl.load(
            s_ptr + e * stride_se + rows * stride_sn + (k0 // GROUP) * stride_sk,
            mask=row_ok, other=0.0,
        ).to(tl.float32)
    elif WFMT == 3:
        s = tl.load(
            s_ptr + e * stride_se + (rows // GROUP) * stride_sn + (k0 // GROUP) * stride_sk,
            mask=row_ok, other=0.0,
        ).to(tl.float32)
    else:
        s = row_ok.to(tl.float32)
    return b, s


@triton.jit
def _accumulate(
    acc, a, w_ptr, s_ptr, e, rows, rk, k0, row_ok, K,
    stride_we, stride_wn, stride_se, stride_sn, stride_sk,
    WFMT: tl.constexpr, GROUP: tl.constexpr, DOT_IEEE: tl.constexpr,
):
    """acc [BM, BN] += a [BM, BK] @ dequantised tile [BK, BN] (operands in a's dtype)."""
    b, s = _load_weight_tile(
        w_ptr, s_ptr, e, rows, rk, k0, row_ok, K,
        stride_we, stride_wn, stride_se, stride_sn, stride_sk, WFMT, GROUP,
    )
    b = b.to(a.dtype)
    if DOT_IEEE:
        part = tl.dot(a, b, input_precision="ieee")
    else:
        part = tl.dot(a, b)
    if WFMT >= 2:
        part = part * s[None, :]
    return acc + part


@triton.jit
def _moe_gemm_kernel(
    a_ptr, w_ptr, s_ptr, c_ptr, sorted_ptr, block_expert_ptr, num_padded_ptr, topw_ptr,
    N, K, num_pairs, up_offset,
    stride_we, stride_wn, stride_se, stride_sn, stride_sk,
    A_DIV: tl.constexpr, GATED: tl.constexpr, MUL_WEIGHT: tl.constexpr,
    WFMT: tl.constexpr, GROUP: tl.constexpr, DOT_IEEE: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    if pid_m * BLOCK_M >= tl.load(num_padded_ptr):
        return
    e = tl.load(block_expert_ptr + pid_m).to(tl.int64)
    pair = tl.load(sorted_ptr + pid_m * BLOCK_M + tl.arange(0, BLOCK_M))
    m_ok = pair < num_pairs
    # GEMM 1 reads token rows (pair // k), GEMM 2 reads the pair's own intermediate row
    a_row = (pair // A_DIV).to(tl.int64)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_ok = rn < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    acc_up = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        a_mask = m_ok[:, None] & (rk < K)[None, :]
        a = tl.load(a_ptr + a_row[:, None] * K + rk[None, :], mask=a_mask, other=0.0)
        acc = _accumulate(
            acc, a, w_ptr, s_ptr, e, rn, rk, k0, n_ok, K,
            stride_we, stride_wn, stride_se, stride_sn, stride_sk, WFMT, GROUP, DOT_IEEE,
        )
        if GATED:
            acc_up = _accumulate(
                acc_up, a, w_ptr, s_ptr, e, rn + up_offset, rk, k0, n_ok, K,
                stride_we, stride_wn, stride_se, stride_sn, stride_sk, WFMT, GROUP, DOT_IEEE,
            )
    if WFMT == 1:
        scale = tl.load(s_ptr + e * stride_se + rn * stride_sn, mask=n_ok, other=0.0)
        acc *= scale.to(tl.float32)[None, :]
        if GATED:
            acc_up *= tl.load(
                s_ptr + e * stride_se + (rn + up_offset) * stride_sn, mask=n_ok, other=0.0
            ).to(tl.float32)[None, :]
    if GATED:
        acc = acc * tl.sigmoid(acc) * acc_up
    if MUL_WEIGHT:
        acc *= tl.load(topw_ptr + pair, mask=m_ok, other=0.0).to(tl.float32)[:, None]
    tl.store(
        c_ptr + pair.to(tl.int64)[:, None] * N + rn[None, :], acc.to(c_ptr.dtype.element_ty),
        mask=m_ok[:, None] & n_ok[None, :],
    )


@triton.jit
def _combine_kernel(
    y_ptr, out_ptr, T, H, TOPK: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_H: tl.constexpr
):
    rt = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    rh = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    mask = (rt < T)[:, None] & (rh < H)[None, :]
    acc = tl.zeros((BLOCK_T, BLOCK_H), dtype=tl.float32)
    for j in tl.static_range(TOPK):
        y = tl.load(y_ptr + (rt[:, None] * TOPK + j) * H + rh[None, :], mask=mask, other=0.0)
        acc += y.to(tl.float32)
    tl.store(out_ptr + rt[:, None] * H + rh[None, :], acc.to(out_ptr.dtype.element_ty), mask=mask)


def _strides(w: ExpertWeights) -> tuple[int, int, int, int, int]:
    we, wn = w.data.stride(0), w.data.stride(1)
    if w.scale is None:
        return we, wn, 0, 0, 0
    s = w.scale
    return we, wn, s.stride(0), s.stride(1), s.stride(2) if s.dim() == 3 else 0


def grouped_gemm(
    a: torch.Tensor,
    w: ExpertWeights,
    sorted_pairs: torch.Tensor,
    block_expert: torch.Tensor,
    num_padded: torch.Tensor,
    num_pairs: int,
    config: dict,
    gated: bool,
    topk_weights: torch.Tensor | None = None,
    a_div: int = 1,
) -> torch.Tensor:
    """One grouped GEMM over the aligned pairs.

    a [rows, K] (token rows, read as pair // a_div); w [E, N_w, K]; returns c [num_pairs, N] in
    a's dtype with N = N_w / 2 and c = silu(a W_gate^T) * (a W_up^T) when gated, else N = N_w and
    c = a W^T, times topk_weights[pair] when given.
    """
    _, N_w, K = w.shape
    N = N_w // 2 if gated else N_w
    c = torch.empty(num_pairs, N, dtype=a.dtype, device=a.device)
    bm, bn, bk = config["BLOCK_M"], config["BLOCK_N"], config["BLOCK_K"]
    grid = (block_expert.numel(), triton.cdiv(N, bn))
    scale = w.scale if w.scale is not None else w.data
    run(
        _moe_gemm_kernel, grid, a, w.data, scale, c, sorted_pairs, block_expert, num_padded,
        topk_weights if topk_weights is not None else c,
        N, K, num_pairs, N,
        *_strides(w),
        A_DIV=a_div, GATED=gated, MUL_WEIGHT=topk_weights is not None,
        WFMT=WFMT[w.format], GROUP=GROUP, DOT_IEEE=a.dtype == torch.float32,
        BLOCK_M=bm, BLOCK_N=bn, BLOCK_K=bk,
        options={"num_warps": config.get("num_warps", 4), "num_stages": config.get("num_stages", 2)},
    )
    return c


def combine(y: torch.Tensor, T: int, top_k: int) -> torch.Tensor:
    """y [T * top_k, H] weighted expert outputs -> [T, H]: the sum over each token's k rows."""
    H = y.shape[1]
    out = torch.empty(T, H, dtype=y.dtype, device=y.device)
    block_h = min(triton.next_power_of_2(H), 256)
    block_t = max(1, min(triton.next_power_of_2(T), 4096 // block_h))
    run(
        _combine_kernel, (triton.cdiv(T, block_t), triton.cdiv(H, block_h)), y, out, T, H, TOPK=top_k, BLOCK_T=block_t, BLOCK_H=block_h
    )
    return out


def experts(
    x: torch.Tensor,
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    w13: ExpertWeights,
    w2: ExpertWeights,
    config: dict | None = None,
) -> torch.Tensor:
    """x [T, H] contiguous; topk_weights fp32 [T, k]; topk_ids int32 [T, k]; w13 [E, 2I, H];
    w2 [E, H, I] -> [T, H]. `config` overrides the tile configs of both GEMMs."""
    T, H = x.shape
    top_k = topk_ids.shape[1]
    E, N13, _ = w13.shape
    if T == 0:
        return torch.empty_like(x)
    limits = device_limits(x.device)
    gpu = limits.name if x.is_cuda else None
    act = ACT_NAMES[x.dtype]
    if config is not None:
        cfg1 = validate(config, w13.name, "config")
        cfg2 = validate(config, w2.name, "config")
    else:
        cfg1 = fit(get_config(E, N13, H, w13.name, T, gpu, act=act), act, True,
                   limits.smem_per_block, w13.name)
        cfg2 = fit(get_config(E, H, N13 // 2, w2.name, T, gpu, act=act), act, False,
                   limits.smem_per_block, w2.name)
    # both GEMMs walk the same aligned blocks
    cfg2["BLOCK_M"] = cfg1["BLOCK_M"]
    sorted_pairs, block_expert, num_padded = align_mod.align(topk_ids, E, cfg1["BLOCK_M"])
    num_pairs = topk_ids.numel()
    blocks = (sorted_pairs, block_expert, num_padded, num_pairs)
    h = grouped_gemm(x, w13, *blocks, cfg1, True, a_div=top_k)
    y = grouped_gemm(h, w2, *blocks, cfg2, False, topk_weights=topk_weights)
    return combine(y, T, top_k)
