"""Plain-torch causal depthwise conv1d + SiLU of the DeltaNet layers (ground truth)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    cu_seqlens: torch.Tensor,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per packed sequence: y_t[c] = silu(sum_j w[c, j] * x_{t-K+1+j}[c]), history from the state.

    x [T, C] (sequences packed along T); weight [C, K]; cu_seqlens int32 [S+1];
    initial_state [S, C, K-1] (the K-1 inputs before each sequence, oldest first) or None (zeros).
    Returns y [T, C] in x's dtype and final_state [S, C, K-1] (the last K-1 inputs, initial
    state included when a sequence is shorter) in the state's dtype (x's when None). fp32 maths;
    the pre-activation is rounded to x's dtype before the SiLU (transformers' conv then SiLU).
    """
    C, K = weight.shape
    S = cu_seqlens.numel() - 1
    state_dtype = initial_state.dtype if initial_state is not None else x.dtype
    y = torch.empty_like(x)
    final = torch.empty(S, C, K - 1, dtype=state_dtype, device=x.device)
    w = weight.float()
    for s, (bos, eos) in enumerate(zip(cu_seqlens[:-1].tolist(), cu_seqlens[1:].tolist())):
        hist = (
            initial_state[s].float()
            if initial_state is not None
            else torch.zeros(C, K - 1, device=x.device)
        )
        # [C, K-1+L]: history then the sequence, time along dim 1
        full = torch.cat([hist, x[bos:eos].float().t()], dim=1)
        L = eos - bos
        acc = sum(w[:, j : j + 1] * full[:, j : j + L] for j in range(K))
        y[bos:eos] = F.silu(acc.to(x.dtype).float()).t().to(x.dtype)
        final[s] = full[:, full.shape[1] - (K - 1) :].to(state_dtype)
    return y, final


def causal_conv1d_update(
    x: torch.Tensor,
    conv_state: torch.Tensor,
    weight: torch.Tensor,
    state_indices: torch.Tensor,
) -> torch.Tensor:
    """One decode step per sequence, rolling the state pool IN PLACE.

    x [B, C] (one new input per sequence); conv_state [num_slots, C, K-1] (oldest first);
    weight [C, K]; state_indices int32 [B] (slot per sequence; a negative slot is padding: its
    output is zero and no state changes). Returns y [B, C] in x's dtype.
    """
    y = torch.zeros_like(x)
    valid = state_indices >= 0
    slots = state_indices[valid].long()
    # [b, C, K]: the stored K-1 inputs then the new one
    window = torch.cat([conv_state[slots].float(), x[valid].float().unsqueeze(-1)], dim=-1)
    y[valid] = F.silu((window * weight.float()).sum(-1).to(x.dtype).float()).to(x.dtype)
    conv_state[slots] = window[:, :, 1:].to(conv_state.dtype)
    return y
