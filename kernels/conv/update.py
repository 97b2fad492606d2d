"""Triton single-step conv1d + SiLU that rolls each sequence's state slot in place (decode)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import run


@triton.jit
def _conv_update_kernel(
    x_ptr, state_ptr, w_ptr, idx_ptr, y_ptr,
    C,
    K: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_K: tl.constexpr,
):
    b = tl.program_id(0)
    c = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C
    slot = tl.load(idx_ptr + b).to(tl.int64)
    if slot < 0:
        zero = tl.zeros((BLOCK_C,), tl.float32).to(y_ptr.dtype.element_ty)
        tl.store(y_ptr + b * C + c, zero, mask=c_ok)
        return
    j = tl.arange(0, BLOCK_K)
    base = state_ptr + slot * (C * (K - 1)) + c[:, None] * (K - 1)
    # [BLOCK_C, BLOCK_K]: window = the K-1 stored inputs (oldest first) then the new input
    win = tl.load(base + j[None, :], mask=c_ok[:, None] & (j < K - 1)[None, :], other=0.0)
    win = win.to(tl.float32)
    xv = tl.load(x_ptr + b * C + c, mask=c_ok, other=0.0).to(tl.float32)
    win = tl.where((j == K - 1)[None, :], xv[:, None], win)
    w = tl.load(
        w_ptr + c[:, None] * K + j[None, :], mask=c_ok[:, None] & (j < K)[None, :], other=0.0
    )
    # the pre-activation is rounded to the output dtype, as transformers' conv + SiLU does
    acc = tl.sum(win * w.to(tl.float32), axis=1).to(y_ptr.dtype.element_ty).to(tl.float32)
    tl.store(y_ptr + b * C + c, (acc * tl.sigmoid(acc)).to(y_ptr.dtype.element_ty), mask=c_ok)
    # shift left by one: window column j becomes state column j-1
    tl.store(
        base + (j - 1)[None, :], win.to(state_ptr.dtype.element_ty),
        mask=c_ok[:, None] & (j >= 1)[None, :] & (j < K)[None, :],
    )


def causal_conv1d_update(
    x: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor, state_indices: torch.Tensor
) -> torch.Tensor:
    """x [B, C], conv_state [slots, C, K-1] (updated in place), weight [C, K], state_indices [B]
    -> y [B, C]."""
    B, C = x.shape
    K = weight.shape[1]
    y = torch.empty_like(x)
    if B == 0:
        return y
    block_c = min(triton.next_power_of_2(C), 256)
    run(
        _conv_update_kernel, (B, triton.cdiv(C, block_c)), x, conv_state, weight, state_indices, y, C,
        K=K, BLOCK_C=block_c, BLOCK_K=triton.next_power_of_2(K),
    )
    return y
