"""Triton router: fp32 softmax over all experts, top-k by repeated argmax, renormalise."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import run


@triton.jit
def _route_kernel(
    logits_ptr, w_ptr, ids_ptr,
    T, E,
    TOPK: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_T + tl.arange(0, BLOCK_T)
    cols = tl.arange(0, BLOCK_E)
    kk = tl.arange(0, BLOCK_K)
    row_ok = rows < T
    col_ok = cols < E
    x = tl.load(
        logits_ptr + rows[:, None] * E + cols[None, :],
        mask=row_ok[:, None] & col_ok[None, :], other=float("-inf"),
    ).to(tl.float32)
    # padding rows would be all -inf; give them zeros so no NaN appears
    x = tl.where(row_ok[:, None], x, 0.0)
    p = tl.exp(x - tl.max(x, axis=1)[:, None])
    p = tl.where(col_ok[None, :], p, 0.0)
    p = p / tl.sum(p, axis=1)[:, None]
    work = tl.where(col_ok[None, :], p, -1.0)
    top_w = tl.zeros((BLOCK_T, BLOCK_K), dtype=tl.float32)
    top_i = tl.zeros((BLOCK_T, BLOCK_K), dtype=tl.int32)
    for j in tl.static_range(TOPK):
        best = tl.max(work, axis=1)
        # lowest expert id among equal probabilities
        idx = tl.min(tl.where(work == best[:, None], cols[None, :], BLOCK_E), axis=1)
        top_w = tl.where(kk[None, :] == j, best[:, None], top_w)
        top_i = tl.where(kk[None, :] == j, idx[:, None], top_i)
        work = tl.where(cols[None, :] == idx[:, None], -1.0, work)
    top_w = top_w / tl.sum(top_w, axis=1)[:, None]
    out = rows[:, None] * TOPK + kk[None, :]
    mask = row_ok[:, None] & (kk < TOPK)[None, :]
    tl.store(w_ptr + out, top_w, mask=mask)
    tl.store(ids_ptr + out, top_i, mask=mask)


def route(router_logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """router_logits [T, E] contiguous -> weights fp32 [T, top_k], ids int32 [T, top_k]."""
    T, E = router_logits.shape
    weights = torch.empty(T, top_k, dtype=torch.float32, device=router_logits.device)
    ids = torch.empty(T, top_k, dtype=torch.int32, device=router_logits.device)
    if T == 0:
        return weights, ids
    block_e = triton.next_power_of_2(E)
    block_t = max(1, min(triton.next_power_of_2(T), 4096 // block_e))
    run(
        _route_kernel, (triton.cdiv(T, block_t),), router_logits, weights, ids, T, E,
        TOPK=top_k, BLOCK_T=block_t, BLOCK_E=block_e, BLOCK_K=triton.next_power_of_2(top_k),
    )
    return weights, ids
