"""Triton RMSNorms: one program normalises BLOCK_R rows of width D (D fits one block)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import run


@triton.jit
def _rms_norm_kernel(
    x_ptr, res_ptr, w_ptr, y_ptr, h_ptr,
    R, D, eps,
    HAS_RES: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_D)
    mask = (rows[:, None] < R) & (cols[None, :] < D)
    offs = rows[:, None] * D + cols[None, :]
    x = tl.load(x_ptr + offs, mask=mask, other=0.0)
    if HAS_RES:
        # the residual stream is kept in the activation dtype
        h = (x.to(tl.float32) + tl.load(res_ptr + offs, mask=mask, other=0.0).to(tl.float32))
        h = h.to(y_ptr.dtype.element_ty)
        tl.store(h_ptr + offs, h, mask=mask)
        x = h
    xf = x.to(tl.float32)
    inv = tl.rsqrt(tl.sum(xf * xf, axis=1) / D + eps)
    w = tl.load(w_ptr + cols, mask=cols < D, other=0.0).to(tl.float32)
    y = xf * inv[:, None] * (1.0 + w[None, :])
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _gated_rms_norm_kernel(
    x_ptr, z_ptr, w_ptr, y_ptr,
    R, D, eps,
    ROUND_PRODUCT: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_R + tl.arange(0, BLOCK_R)
    cols = tl.arange(0, BLOCK_D)
    mask = (rows[:, None] < R) & (cols[None, :] < D)
    offs = rows[:, None] * D + cols[None, :]
    xf = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    inv = tl.rsqrt(tl.sum(xf * xf, axis=1) / D + eps)
    # rounded to the activation dtype before the weight, as in transformers
    n = (xf * inv[:, None]).to(y_ptr.dtype.element_ty).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=cols < D, other=0.0).to(tl.float32)
    p = n * w[None, :]
    if ROUND_PRODUCT:
        p = p.to(y_ptr.dtype.element_ty).to(tl.float32)
    z = tl.load(z_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    y = p * z * tl.sigmoid(z)
    tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)


def _launch_shape(R: int, D: int) -> tuple[int, int, int]:
    block_d = triton.next_power_of_2(D)
    # about 4k elements per program: many rows when D is small
    block_r = max(1, min(triton.next_power_of_2(R), 4096 // block_d))
    return block_r, block_d, triton.cdiv(R, block_r)


def rms_norm(
    x: torch.Tensor, weight: torch.Tensor, eps: float, residual: torch.Tensor | None
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """x [..., D] contiguous, weight [D], residual like x or None -> y (and h = x + residual)."""
    D = x.shape[-1]
    R = x.numel() // D
    y = torch.empty_like(x)
    h = torch.empty_like(x) if residual is not None else y
    if R == 0:
        return (y, h) if residual is not None else y
    block_r, block_d, grid = _launch_shape(R, D)
    run(
        _rms_norm_kernel, (grid,), x, residual if residual is not None else x, weight, y, h, R, D, eps,
        HAS_RES=residual is not None, BLOCK_R=block_r, BLOCK_D=block_d,
    )
    return (y, h) if residual is not None else y


def gated_rms_norm(
    x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, eps: float
) -> torch.Tensor:
    """x, z [..., D] contiguous, weight [D] -> y like x."""
    D = x.shape[-1]
    R = x.numel() // D
    y = torch.empty_like(x)
    if R == 0:
        return y
    block_r, block_d, grid = _launch_shape(R, D)
    round_product = torch.promote_types(weight.dtype, x.dtype) != torch.float32
    run(
        _gated_rms_norm_kernel, (grid,), x, z, weight, y, R, D, eps,
        ROUND_PRODUCT=round_product, BLOCK_R=block_r, BLOCK_D=block_d,
    )
    return y
