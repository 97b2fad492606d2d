"""RMSNorms of Qwen3.5: zero-centred (optionally fused with the residual add) and gated."""

from __future__ import annotations

import torch

from .._dispatch import check, check_float, use_triton
from . import naive


def _check(name: str, x: torch.Tensor, other: torch.Tensor, weight: torch.Tensor) -> None:
    check_float(name, x)
    check(
        x.dim() >= 1 and x.shape[-1] > 0,
        f"{name}: expected shape [..., D], got {tuple(x.shape)}",
    )
    check(
        other.shape == x.shape and other.dtype == x.dtype,
        f"{name}: expected a {tuple(x.shape)} {x.dtype} partner tensor, "
        f"got {tuple(other.shape)} {other.dtype}",
    )
    check(
        weight.shape == (x.shape[-1],),
        f"{name}: weight must have shape ({x.shape[-1]},), got {tuple(weight.shape)}",
    )
    check_float(f"{name} weight", weight)


def rms_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    residual: torch.Tensor | None = None,
    impl: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Zero-centred RMSNorm: y = x / sqrt(mean(x^2) + eps) * (1 + w), in fp32, cast to x's dtype.

    x [..., D]; weight [D]; residual None or [..., D] like x.
    Returns y [..., D], or (y, h) with h = x + residual [..., D] and y = rms_norm(h) when a
    residual is given (the pre-norm residual stream of a decoder layer).
    """
    _check("rms_norm", x, residual if residual is not None else x, weight)
    if use_triton(impl, x, weight, op="rms_norm"):
        from . import fused

        return fused.rms_norm(
            x.contiguous(), weight, eps, residual.contiguous() if residual is not None else None
        )
    return naive.rms_norm(x, weight, eps, residual)


def gated_rms_norm(
    x: torch.Tensor,
    z: torch.Tensor,
    weight: torch.Tensor,
    eps: float = 1e-6,
    impl: str | None = None,
) -> torch.Tensor:
    """Gated RMSNorm (norm before gate): y = (w * (x / rms(x)).to(x.dtype)) * silu(z.float()).

    x, z [..., D] (D = value head dim, one norm per head); weight [D] (plain w). Returns y like x.
    """
    _check("gated_rms_norm", x, z, weight)
    if use_triton(impl, x, z, weight, op="gated_rms_norm"):
        from . import fused

        return fused.gated_rms_norm(x.contiguous(), z.contiguous(), weight, eps)
    return naive.gated_rms_norm(x, z, weight, eps)


__all__ = ["rms_norm", "gated_rms_norm"]
