"""Routed experts on the CPU as grouped work: the (token, slot) pairs sorted by expert once, then
one grouped GEMM for gate+up over all experts, SiLU * up, one grouped GEMM for down, the routing
weights, and one scatter-add into the tokens (vLLM's stages, in plain torch).

The grouped GEMM is `torch._grouped_mm` (2-D activations against a 3-D weight stack with group
offsets) where the torch build has it on the CPU; otherwise one matmul per expert that has pairs,
on a contiguous slice of the sorted activations. The maths runs in the weights' dtype; the
dispatcher sends only float32 here (see `supported`), though bf16/fp16 work and are tested.
naive.py stays the ground truth; int8/int4/fp8 experts go there.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .quant import ExpertWeights


def supported(x: torch.Tensor, w13: ExpertWeights, w2: ExpertWeights) -> bool:
    """True for float32 CPU tensors with float32 expert weights. bf16 and fp16 stay on naive.py,
    which multiplies in fp32: CPUs without bf16 matrix instructions run bf16 GEMMs of prefill
    size several times slower than fp32 (bench/moe_cpu.py; bench/RESULTS.md, issue 17)."""
    return (x.device.type == "cpu" and x.dtype == torch.float32 and w13.format == "float"
            and w2.format == "float" and w13.data.dtype == torch.float32
            and w2.data.dtype == torch.float32)


def _grouped_mm_works() -> bool:
    if not hasattr(torch, "_grouped_mm"):
        return False
    try:
        a = torch.ones(3, 4)
        b = torch.ones(2, 4, 8)
        out = torch._grouped_mm(a, b, offs=torch.tensor([1, 3], dtype=torch.int32))
    except (RuntimeError, NotImplementedError, TypeError):
        return False
    return out.shape == (3, 8) and bool((out == 4).all())


HAS_GROUPED_MM = _grouped_mm_works()


def grouped_matmul(a: torch.Tensor, w: torch.Tensor, counts: list[int], offs: torch.Tensor,
                   use_grouped_mm: bool = HAS_GROUPED_MM) -> torch.Tensor:
    """a [P, K] rows sorted by group; w [E, N, K]; counts[e] rows of group e -> [P, N] with
    row p = a[p] @ w[e(p)].T."""
    # torch._grouped_mm wants rows of a multiple of 16 bytes (K and N); other sizes loop.
    item = a.element_size()
    if use_grouped_mm and (w.shape[1] * item) % 16 == 0 and (w.shape[2] * item) % 16 == 0:
        return torch._grouped_mm(a, w.transpose(1, 2), offs=offs)
    out = a.new_empty(a.shape[0], w.shape[1])
    start = 0
    for e, n in enumerate(counts):
        if n:
            torch.mm(a[start:start + n], w[e].t(), out=out[start:start + n])
            start += n
    return out


def experts(x: torch.Tensor, topk_weights: torch.Tensor, topk_ids: torch.Tensor,
            w13: ExpertWeights, w2: ExpertWeights,
            use_grouped_mm: bool = HAS_GROUPED_MM) -> torch.Tensor:
    """Same contract as naive.experts: x [T, H]; topk_weights [T, k]; topk_ids int32 [T, k];
    w13 [E, 2I, H] (gate rows, then up rows); w2 [E, H, I] -> [T, H] in x's dtype."""
    T, H = x.shape
    E, N13, _ = w13.shape
    k = topk_ids.shape[1]
    if T == 0:
        return x.new_zeros(T, H)
    flat = topk_ids.reshape(-1).long()
    # Pairs grouped by expert, in token order within each expert (as naive.experts).
    order = torch.argsort(flat, stable=True)
    counts_t = torch.bincount(flat, minlength=E)
    counts = counts_t.tolist()
    offs = counts_t.cumsum(0).to(torch.int32)
    tokens = order // k
    gate_up = grouped_matmul(x[tokens], w13.data, counts, offs, use_grouped_mm)  # [P, 2I]
    gate, up = gate_up.split(N13 // 2, dim=1)
    h = F.silu(gate).mul_(up)  # [P, I]
    y = grouped_matmul(h, w2.data, counts, offs, use_grouped_mm)  # [P, H]
    y.mul_(topk_weights.reshape(-1)[order, None].to(y.dtype))
    out = torch.zeros(T, H, dtype=torch.float32, device=x.device)
    out.index_add_(0, tokens, y.float())
    return out.to(x.dtype)
