"""Kernels: one folder per op, a plain-torch `naive.py` beside the Triton code.

Imports torch and triton only. Dispatch: Triton on CUDA, naive elsewhere; DOCEXTRACT_KERNELS=
naive|triton forces one (each op's `impl=` argument overrides it). Triton modules are imported on
first use, so TRITON_INTERPRET=1 (Triton on CPU tensors) may be set after importing this package.
"""

from .conv import causal_conv1d, causal_conv1d_update
from .gated_delta import chunk_gated_delta_rule, recurrent_gated_delta_rule
from .moe import ExpertWeights, moe_experts, moe_route
from .norm import gated_rms_norm, rms_norm

__all__ = [
    "rms_norm",
    "gated_rms_norm",
    "causal_conv1d",
    "causal_conv1d_update",
    "chunk_gated_delta_rule",
    "recurrent_gated_delta_rule",
    "moe_route",
    "moe_experts",
    "ExpertWeights",
]
