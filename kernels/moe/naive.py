"""Plain-torch MoE stages (ground truth): route, align, and the experts as a loop over experts."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .quant import ExpertWeights, dequantize


def route(router_logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over all experts in fp32, top-k, renormalise the k weights to sum to 1.

    router_logits [T, E] -> weights fp32 [T, top_k] (descending), ids int32 [T, top_k].
    """
    probs = torch.softmax(router_logits.float(), dim=-1)
    weights, ids = torch.topk(probs, top_k, dim=-1)
    return weights / weights.sum(-1, keepdim=True), ids.to(torch.int32)


def max_padded_pairs(num_pairs: int, num_experts: int, block_m: int) -> int:
    """Upper bound on the padded pair count (no host sync needed), a multiple of block_m."""
    bound = min(num_pairs + num_experts * (block_m - 1), num_pairs * block_m)
    return -(-bound // block_m) * block_m


def align(
    topk_ids: torch.Tensor, num_experts: int, block_m: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sort the (token, k) pairs by expert into blocks of block_m, each expert's run padded.

    topk_ids int32 [T, k]. Pair p = t * k + j. Returns
    sorted_pairs int32 [P] (P = max_padded_pairs; padding holds T * k),
    block_expert int32 [P / block_m] (expert of each block, -1 past the used blocks),
    num_padded int32 [1] (used length of sorted_pairs). Experts with no pairs get no block.
    """
    flat = topk_ids.flatten().long()
    num_pairs = flat.numel()
    P = max_padded_pairs(num_pairs, num_experts, block_m)
    sorted_pairs = torch.full((P,), num_pairs, dtype=torch.int32, device=flat.device)
    block_expert = torch.full((P // block_m,), -1, dtype=torch.int32, device=flat.device)
    counts = torch.bincount(flat, minlength=num_experts)
    start = 0
    for e in range(num_experts):
        pairs = torch.nonzero(flat == e).flatten()
        sorted_pairs[start : start + pairs.numel()] = pairs.to(torch.int32)
        blocks = -(-int(counts[e]) // block_m)
        block_expert[start // block_m : start // block_m + blocks] = e
        start += blocks * block_m
    return sorted_pairs, block_expert, torch.tensor([start], dtype=torch.int32, device=flat.device)


def experts(
    x: torch.Tensor,
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    w13: ExpertWeights,
    w2: ExpertWeights,
) -> torch.Tensor:
    """Routed experts, one expert at a time, fp32 maths on dequantised weights.

    x [T, H]; topk_weights [T, k]; topk_ids int32 [T, k]; w13 [E, 2I, H] (gate rows, then up
    rows); w2 [E, H, I]. out[t] = sum_j w_tj * down_e(silu(gate_e x_t) * up_e x_t), e = ids[t, j].
    Rounded to x's dtype where the kernels store: the intermediate silu(gate) * up, each
    weighted expert output, and the sum. Returns [T, H] in x's dtype.
    """
    E = w13.shape[0]
    I = w13.shape[1] // 2
    k = topk_ids.shape[1]
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    # (token, slot) pairs grouped by expert, in token order within each expert: one sort and
    # one count for the whole call instead of a search per expert.
    flat = topk_ids.reshape(-1).long()
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=E).tolist()
    start = 0
    for e, n in enumerate(counts):
        if n == 0:
            continue
        pairs = order[start:start + n]
        start += n
        tokens, slots = pairs // k, pairs % k
        gate_up = x[tokens].float() @ dequantize(w13, e).t()
        h = (F.silu(gate_up[:, :I]) * gate_up[:, I:]).to(x.dtype)
        y = (h.float() @ dequantize(w2, e).t()) * topk_weights[tokens, slots, None].float()
        out.index_add_(0, tokens, y.to(x.dtype).float())
    return out.to(x.dtype)
