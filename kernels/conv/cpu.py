"""The causal conv decode step on the CPU: naive.causal_conv1d_update, with the pool's rows
rolled in place when the slots are one increasing run (a full batch) instead of gathered and
scattered. Same arguments and result; naive.py stays the ground truth."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._dispatch import slot_run
from . import naive


def causal_conv1d_update(x: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor,
                         state_indices: torch.Tensor) -> torch.Tensor:
    run = slot_run(state_indices.tolist())
    if run is None:
        return naive.causal_conv1d_update(x, conv_state, weight, state_indices)
    rows = conv_state[run]
    # [B, C, K]: the stored K-1 inputs then the new one (a new tensor: rows are overwritten)
    window = torch.cat([rows.float(), x.float().unsqueeze(-1)], dim=-1)
    y = F.silu((window * weight.float()).sum(-1).to(x.dtype).float()).to(x.dtype)
    rows.copy_(window[:, :, 1:])
    return y
