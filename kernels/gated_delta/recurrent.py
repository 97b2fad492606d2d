"""Triton gated delta rule decode step: one token per sequence, state slot updated in place."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import run


@triton.jit
def _recurrent_kernel(
    q_ptr, k_ptr, v_ptr, g_ptr, beta_ptr, state_ptr, idx_ptr, o_ptr,
    scale,
    Hk: tl.constexpr, Hv: tl.constexpr, Dk: tl.constexpr, Dv: tl.constexpr,
    L2NORM: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
):
    b = tl.program_id(0)
    hv = tl.program_id(1)
    hk = hv // (Hv // Hk)
    rk = tl.arange(0, BK)
    rv = tl.program_id(2) * BV + tl.arange(0, BV)
    k_ok = rk < Dk
    v_ok = rv < Dv
    o_offs = (b * Hv + hv) * Dv + rv
    slot = tl.load(idx_ptr + b).to(tl.int64)
    if slot < 0:
        tl.store(o_ptr + o_offs, tl.zeros((BV,), tl.float32).to(o_ptr.dtype.element_ty), mask=v_ok)
        return
    q = tl.load(q_ptr + (b * Hk + hk) * Dk + rk, mask=k_ok, other=0.0).to(tl.float32)
    k = tl.load(k_ptr + (b * Hk + hk) * Dk + rk, mask=k_ok, other=0.0).to(tl.float32)
    v = tl.load(v_ptr + o_offs, mask=v_ok, other=0.0).to(tl.float32)
    g = tl.load(g_ptr + b * Hv + hv).to(tl.float32)
    beta = tl.load(beta_ptr + b * Hv + hv).to(tl.float32)
    if L2NORM:
        q = q * tl.rsqrt(tl.sum(q * q, axis=0) + 1e-6)
        k = k * tl.rsqrt(tl.sum(k * k, axis=0) + 1e-6)
    q = q * scale
    # [BK, BV] fp32 slice of the slot's state
    offs = ((slot * Hv + hv) * Dk + rk[:, None]) * Dv + rv[None, :]
    mask = k_ok[:, None] & v_ok[None, :]
    S = tl.load(state_ptr + offs, mask=mask, other=0.0) * tl.exp(g)
    delta = beta * (v - tl.sum(S * k[:, None], axis=0))
    S = S + k[:, None] * delta[None, :]
    o = tl.sum(S * q[:, None], axis=0)
    tl.store(state_ptr + offs, S, mask=mask)
    tl.store(o_ptr + o_offs, o.to(o_ptr.dtype.element_ty), mask=v_ok)


def recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor,
    state_indices: torch.Tensor,
    scale: float,
    use_qk_l2norm: bool,
    block_v: int = 32,
) -> torch.Tensor:
    """q, k [B, Hk, Dk]; v [B, Hv, Dv]; g, beta [B, Hv]; state [slots, Hv, Dk, Dv] fp32 (in
    place); state_indices [B] (all contiguous) -> o [B, Hv, Dv]."""
    B, Hk, Dk = k.shape
    Hv, Dv = v.shape[1], v.shape[2]
    o = torch.empty_like(v)
    if B == 0:
        return o
    block_v = min(block_v, triton.next_power_of_2(Dv))
    run(
        _recurrent_kernel, (B, Hv, triton.cdiv(Dv, block_v)), q, k, v, g, beta, state, state_indices, o,
        scale,
        Hk=Hk, Hv=Hv, Dk=Dk, Dv=Dv, L2NORM=use_qk_l2norm,
        BK=triton.next_power_of_2(Dk), BV=block_v,
    )
    return o
