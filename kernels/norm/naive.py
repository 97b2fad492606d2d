"""Plain-torch RMSNorms of Qwen3.5 (the ground truth for the Triton kernels in fused.py)."""

from __future__ import annotations

import torch


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    residual: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Zero-centred RMSNorm y = x / rms(x) * (1 + w), in fp32, cast to x's dtype.

    x [..., D], weight [D] (stored as the offset from 1), residual like x or None.
    With a residual: h = x + residual (rounded to x's dtype, as the model's residual stream is)
    and the result is (rms_norm(h), h).
    """
    if residual is not None:
        h = (x.float() + residual.float()).to(x.dtype)
        return rms_norm(h, weight, eps), h
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    return (y * (1.0 + weight.float())).to(x.dtype)


def gated_rms_norm(
    x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Gated RMSNorm of the DeltaNet output, norm before gate (transformers' RMSNormGated order).

    x, z [..., D]; weight [D] (plain w, not 1 + w). n = x / rms(x) in fp32, cast to x's dtype;
    p = w * n in the promoted dtype of (w, x); y = p * silu(z in fp32), cast to x's dtype.
    """
    xf = x.float()
    n = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)
    p = weight * n
    return (p * torch.nn.functional.silu(z.float())).to(x.dtype)
