"""Mixture of experts: route -> align/sort by expert -> grouped GEMM gate+up -> grouped GEMM down
-> weighted combine, with bf16/fp16/fp32, int8, int4 or fp8 expert weights (see quant.py)."""

from __future__ import annotations

import torch

from .._dispatch import check, check_float, use_triton, wants_naive
from . import grouped_cpu, naive
from .quant import ExpertWeights, as_expert_weights, dequantize, quantize


def moe_route(
    router_logits: torch.Tensor, top_k: int, impl: str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over all experts in fp32, top-k, renormalise (Qwen3.5 always renormalises).

    router_logits [T, E]. Returns weights fp32 [T, top_k] (descending) and ids int32 [T, top_k].
    transformers rounds the weights to the logits' dtype before use; cast them to match it.
    """
    check(
        router_logits.dim() == 2,
        f"router_logits: expected shape [T, E], got {tuple(router_logits.shape)}",
    )
    check_float("router_logits", router_logits)
    check(
        1 <= top_k <= router_logits.shape[1],
        f"top_k must be in [1, {router_logits.shape[1]}], got {top_k}",
    )
    if use_triton(impl, router_logits, op="moe_route"):
        from . import route

        return route.route(router_logits.contiguous(), top_k)
    return naive.route(router_logits, top_k)


def moe_experts(
    x: torch.Tensor,
    topk_weights: torch.Tensor,
    topk_ids: torch.Tensor,
    w13: torch.Tensor | ExpertWeights,
    w2: torch.Tensor | ExpertWeights,
    impl: str | None = None,
    config: dict | None = None,
) -> torch.Tensor:
    """Routed experts: out[t] = sum_j w_tj * down_e(silu(gate_e x_t) * up_e x_t), e = ids[t, j].

    x [T, H]; topk_weights [T, k] (fp32 from moe_route); topk_ids int32 [T, k];
    w13 [E, 2I, H] (`gate_up_proj`, gate rows first) and w2 [E, H, I] (`down_proj`), each a
    float tensor or ExpertWeights (int8, int4, fp8). `config` ({"BLOCK_M", "BLOCK_N", "BLOCK_K",
    "num_warps", "num_stages"}) overrides the JSON tile configs. Returns [T, H] in x's dtype.
    """
    w13, w2 = as_expert_weights(w13), as_expert_weights(w2)
    check(x.dim() == 2, f"x: expected shape [T, H], got {tuple(x.shape)}")
    check_float("x", x)
    w13.validate("w13")
    w2.validate("w2")
    T, H = x.shape
    E, N13, K13 = w13.shape
    check(K13 == H and N13 % 2 == 0, f"w13: expected shape [E, 2I, {H}], got {(E, N13, K13)}")
    check(
        w2.shape == (E, H, N13 // 2),
        f"w2: expected shape ({E}, {H}, {N13 // 2}), got {w2.shape}",
    )
    check(
        topk_ids.dim() == 2 and topk_ids.shape[0] == T and topk_ids.dtype == torch.int32,
        f"topk_ids: expected int32 [{T}, k], got {topk_ids.dtype} {tuple(topk_ids.shape)}",
    )
    check(
        topk_weights.shape == topk_ids.shape,
        f"topk_weights: expected shape {tuple(topk_ids.shape)}, got {tuple(topk_weights.shape)}",
    )
    check_float("topk_weights", topk_weights)
    if use_triton(impl, x, topk_weights, topk_ids, w13.data, w2.data, op="moe_experts"):
        from . import fused

        return fused.experts(
            x.contiguous(), topk_weights.contiguous(), topk_ids.contiguous(), w13, w2, config
        )
    # On the CPU: grouped GEMMs over the sorted pairs (float experts), unless naive is asked for.
    if not wants_naive(impl) and grouped_cpu.supported(x, w13, w2):
        return grouped_cpu.experts(x, topk_weights, topk_ids, w13, w2)
    return naive.experts(x, topk_weights, topk_ids, w13, w2)


__all__ = [
    "moe_route",
    "moe_experts",
    "ExpertWeights",
    "quantize",
    "dequantize",
]
