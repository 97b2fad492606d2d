"""Kernel tests: each Triton kernel against its naive.py, on the CPU through the interpreter, or
on CUDA where a GPU is present (the `device` fixture)."""

import os

import pytest
import torch

# before anything imports a module with @triton.jit (kernels import theirs lazily, on first use)
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def rel_rms_error(ref: torch.Tensor, out: torch.Tensor) -> float:
    """sqrt(mean((ref - out)^2)) / sqrt(mean(ref^2)), in float64; 0 when both are all zero."""
    ref64, out64 = ref.detach().double().cpu(), out.detach().double().cpu()
    num = (ref64 - out64).pow(2).mean().sqrt().item()
    den = ref64.pow(2).mean().sqrt().item()
    return num / den if den > 0 else num


def _assert_close(name: str, ref: torch.Tensor, out: torch.Tensor, ratio: float) -> None:
    if ref.shape != out.shape:
        raise AssertionError(f"{name}: shape {tuple(out.shape)} != reference {tuple(ref.shape)}")
    if not torch.isfinite(out.float()).all():
        raise AssertionError(f"{name}: output has non-finite values")
    err = rel_rms_error(ref, out)
    if not err <= ratio:
        raise AssertionError(f"{name}: relative RMS error {err:.3e} > {ratio:.1e}")


@pytest.fixture
def assert_close():
    """assert_close(name, ref, out, ratio): relative RMS error of out against ref <= ratio."""
    return _assert_close


@pytest.fixture
def device() -> str:
    """Where the parity tests put their tensors: cuda when available, else cpu (interpreter)."""
    return DEVICE
