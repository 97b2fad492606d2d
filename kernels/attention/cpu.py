"""Decode attention on the CPU: naive.decode_attention without copying the cache. When the rows'
slots are one increasing run and every row attends, the keys and values are read through a view
of the pool (the reference gathers [B, nkv, W, hd] of each per step and layer). Same arguments
and result; naive.py stays the ground truth."""

from __future__ import annotations

import torch

from .._dispatch import slot_run
from . import naive


def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     slot_index: torch.Tensor, lengths: torch.Tensor, scale: float) -> torch.Tensor:
    run = slot_run(slot_index.tolist())
    n = lengths.tolist()
    max_len = k_cache.shape[2]
    if run is None or q.dtype != torch.float32 or k_cache.dtype != torch.float32 \
            or min(n) < 1 or max(n) > max_len:
        return naive.decode_attention(q, k_cache, v_cache, slot_index, lengths, scale)
    B, nh, hd = q.shape
    nkv, width = k_cache.shape[1], max(n)
    keys, values = k_cache[run, :, :width], v_cache[run, :, :width]  # views [B, nkv, W, hd]
    qg = q.view(B, nkv, nh // nkv, hd)
    scores = (qg @ keys.transpose(-1, -2)) * scale  # [B, nkv, G, W]
    if min(n) < width:
        mask = torch.arange(width) < lengths.long()[:, None]
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return (probs @ values).reshape(B, nh, hd)
