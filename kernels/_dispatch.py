"""Backend choice shared by every public op: Triton on CUDA tensors, the naive reference elsewhere.

The choice is, in order: the op's `impl` argument, then `DOCEXTRACT_KERNELS`, then "auto". Triton
modules are imported only when a Triton path runs, so `TRITON_INTERPRET=1` set after this package
is imported (as the tests do) still takes effect.
"""

from __future__ import annotations

import os

import torch

IMPLS = ("auto", "naive", "triton")
ENV = "DOCEXTRACT_KERNELS"


def interpreter_on() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def use_triton(impl: str | None, *tensors: torch.Tensor) -> bool:
    """True when the op should run its Triton kernel on these tensors."""
    choice = impl if impl is not None else os.environ.get(ENV, "auto")
    if choice not in IMPLS:
        source = "impl" if impl is not None else ENV
        raise ValueError(f"{source}={choice!r}: expected one of {', '.join(IMPLS)}")
    on_cuda = all(t.is_cuda for t in tensors)
    if choice == "naive":
        return False
    if choice == "auto":
        return on_cuda
    if not on_cuda and not interpreter_on():
        raise ValueError(
            "the Triton kernels need CUDA tensors, or TRITON_INTERPRET=1 to run on the CPU"
        )
    return True


def wants_naive(impl: str | None) -> bool:
    """True when the reference is asked for by name (`impl` or DOCEXTRACT_KERNELS=naive)."""
    return (impl if impl is not None else os.environ.get(ENV, "auto")) == "naive"


def check(cond: bool, message: str) -> None:
    """Raise ValueError(message) unless cond (shape and dtype validation of the public ops)."""
    if not cond:
        raise ValueError(message)


def check_float(name: str, t: torch.Tensor) -> None:
    check(
        t.dtype in (torch.float32, torch.float16, torch.bfloat16),
        f"{name}: expected float32, float16 or bfloat16, got {t.dtype}",
    )


def check_cu_seqlens(cu_seqlens: torch.Tensor, num_tokens: int) -> None:
    """Shape and dtype always; the values too when on the CPU (on CUDA that would cost a sync)."""
    check(
        cu_seqlens.dim() == 1 and cu_seqlens.numel() >= 2,
        f"cu_seqlens: expected shape [S+1] with S >= 1, got {tuple(cu_seqlens.shape)}",
    )
    check(cu_seqlens.dtype == torch.int32, f"cu_seqlens: expected int32, got {cu_seqlens.dtype}")
    if not cu_seqlens.is_cuda:
        check(
            int(cu_seqlens[0]) == 0
            and int(cu_seqlens[-1]) == num_tokens
            and bool((cu_seqlens[1:] >= cu_seqlens[:-1]).all()),
            f"cu_seqlens: expected non-decreasing offsets from 0 to {num_tokens}, "
            f"got {cu_seqlens.tolist()}",
        )

