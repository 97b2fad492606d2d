"""Triton alignment of (token, k) pairs by expert into padded blocks of BLOCK_M.

Three small kernels without a host sync (CUDA-graph friendly): count pairs per expert, turn the
counts into padded offsets and per-block expert ids, scatter each pair to its expert's run.
The order of pairs inside an expert's run is not deterministic on GPU (atomics); results do not
depend on it, since each pair's output row is its own.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .._dispatch import run

from .naive import max_padded_pairs


@triton.jit
def _count_kernel(ids_ptr, counts_ptr, num_pairs, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < num_pairs
    e = tl.load(ids_ptr + offs, mask=ok, other=0)
    tl.atomic_add(counts_ptr + e, 1, mask=ok)


@triton.jit
def _offsets_kernel(
    counts_ptr, cursor_ptr, block_expert_ptr, num_padded_ptr,
    E, num_blocks,
    BLOCK_M: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_B: tl.constexpr,
):
    e = tl.arange(0, BLOCK_E)
    e_ok = e < E
    padded = tl.cdiv(tl.load(counts_ptr + e, mask=e_ok, other=0), BLOCK_M) * BLOCK_M
    ends = tl.cumsum(padded, axis=0)
    tl.store(cursor_ptr + e, ends - padded, mask=e_ok)
    total = tl.sum(padded, axis=0)
    tl.store(num_padded_ptr, total)
    for b0 in range(0, num_blocks, BLOCK_B):
        b = b0 + tl.arange(0, BLOCK_B)
        # [BLOCK_B]: expert of block b = number of experts whose run ends at or before it
        done = (ends[None, :] <= b[:, None] * BLOCK_M) & e_ok[None, :]
        owner = tl.sum(done.to(tl.int32), axis=1)
        owner = tl.where(b * BLOCK_M < total, owner, -1)
        tl.store(block_expert_ptr + b, owner, mask=b < num_blocks)


@triton.jit
def _scatter_kernel(ids_ptr, cursor_ptr, sorted_ptr, num_pairs, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < num_pairs
    e = tl.load(ids_ptr + offs, mask=ok, other=0)
    pos = tl.atomic_add(cursor_ptr + e, 1, mask=ok)
    tl.store(sorted_ptr + pos, offs, mask=ok)


def align(
    topk_ids: torch.Tensor, num_experts: int, block_m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """topk_ids int32 [T, k] contiguous -> sorted_pairs [P], block_expert [P / block_m],
    num_padded [1] (see naive.align)."""
    num_pairs = topk_ids.numel()
    device = topk_ids.device
    P = max_padded_pairs(num_pairs, num_experts, block_m)
    sorted_pairs = torch.full((P,), num_pairs, dtype=torch.int32, device=device)
    block_expert = torch.empty(P // block_m, dtype=torch.int32, device=device)
    num_padded = torch.empty(1, dtype=torch.int32, device=device)
    counts = torch.zeros(num_experts, dtype=torch.int32, device=device)
    cursor = torch.empty(num_experts, dtype=torch.int32, device=device)
    block = 1024
    grid = (triton.cdiv(num_pairs, block),)
    if num_pairs > 0:
        run(_count_kernel, grid, topk_ids, counts, num_pairs, BLOCK=block)
    run(
        _offsets_kernel, (1,), counts, cursor, block_expert, num_padded, num_experts, P // block_m,
        BLOCK_M=block_m, BLOCK_E=triton.next_power_of_2(num_experts), BLOCK_B=64,
    )
    if num_pairs > 0:
        run(_scatter_kernel, grid, topk_ids, cursor, sorted_pairs, num_pairs, BLOCK=block)
    return sorted_pairs, block_expert, num_padded
