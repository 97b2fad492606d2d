"""Causal depthwise conv1d + SiLU of the DeltaNet layers: packed prefill and the decode step."""

from __future__ import annotations

import torch

from .._dispatch import check, check_cu_seqlens, check_float, use_triton, wants_naive
from . import cpu, naive


def _check_weight(x: torch.Tensor, weight: torch.Tensor) -> int:
    check(
        weight.dim() == 2 and weight.shape[0] == x.shape[1] and weight.shape[1] >= 2,
        f"weight: expected shape [C={x.shape[1]}, K>=2], got {tuple(weight.shape)}",
    )
    check_float("weight", weight)
    return weight.shape[1]


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    cu_seqlens: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    impl: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal depthwise conv1d + SiLU over packed variable-length sequences.

    x [T, C] (all sequences packed along T, no batch dim); weight [C, K] (conv1d.weight
    squeezed); cu_seqlens int32 [S+1] (sequence s is x[cu[s]:cu[s+1]]);
    initial_state [S, C, K-1] or None: the K-1 inputs preceding each sequence, oldest first.
    Returns (y [T, C] like x, final_state [S, C, K-1]: each sequence's last K-1 inputs).
    """
    check(x.dim() == 2, f"x: expected shape [T, C], got {tuple(x.shape)}")
    check_float("x", x)
    K = _check_weight(x, weight)
    check_cu_seqlens(cu_seqlens, x.shape[0])
    S = cu_seqlens.numel() - 1
    if initial_state is not None:
        check(
            initial_state.shape == (S, x.shape[1], K - 1),
            f"initial_state: expected shape ({S}, {x.shape[1]}, {K - 1}), "
            f"got {tuple(initial_state.shape)}",
        )
        check_float("initial_state", initial_state)
    if use_triton(impl, x, weight, cu_seqlens, op="causal_conv1d"):
        from . import varlen

        return varlen.causal_conv1d(
            x.contiguous(),
            weight.contiguous(),
            cu_seqlens,
            initial_state.contiguous() if initial_state is not None else None,
        )
    return naive.causal_conv1d(x, weight, cu_seqlens, initial_state)


def causal_conv1d_update(
    x: torch.Tensor,
    conv_state: torch.Tensor,
    weight: torch.Tensor,
    state_indices: torch.Tensor,
    impl: str | None = None,
) -> torch.Tensor:
    """One decode step of the conv: updates each sequence's rolling state slot IN PLACE.

    x [B, C] (one new input per sequence); conv_state [num_slots, C, K-1] (contiguous state
    pool, oldest input first); weight [C, K]; state_indices int32 [B] (the slot of each
    sequence; a negative slot is padding: zero output, no state change). Returns y [B, C].
    """
    check(x.dim() == 2, f"x: expected shape [B, C], got {tuple(x.shape)}")
    check_float("x", x)
    K = _check_weight(x, weight)
    check(
        conv_state.dim() == 3 and conv_state.shape[1:] == (x.shape[1], K - 1),
        f"conv_state: expected shape [slots, {x.shape[1]}, {K - 1}], got {tuple(conv_state.shape)}",
    )
    check(conv_state.is_contiguous(), "conv_state: must be contiguous (it is updated in place)")
    check_float("conv_state", conv_state)
    check(
        state_indices.shape == (x.shape[0],) and state_indices.dtype == torch.int32,
        f"state_indices: expected int32 [{x.shape[0]}], "
        f"got {state_indices.dtype} {tuple(state_indices.shape)}",
    )
    if use_triton(impl, x, conv_state, weight, state_indices, op="causal_conv1d_update"):
        from . import update

        return update.causal_conv1d_update(
            x.contiguous(), conv_state, weight.contiguous(), state_indices
        )
    if x.device.type == "cpu" and not wants_naive(impl):
        return cpu.causal_conv1d_update(x, conv_state, weight, state_indices)
    return naive.causal_conv1d_update(x, conv_state, weight, state_indices)


__all__ = ["causal_conv1d", "causal_conv1d_update"]
