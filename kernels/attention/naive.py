"""Plain-torch decode attention against a slot-pool KV cache (ground truth).

One query token per sequence. Sequence b reads the first lengths[b] keys and values of cache slot
slot_index[b]; query head h reads kv head h // (nh / nkv). A negative slot marks a padding row:
its output is zero and nothing is written. The softmax is computed in fp32.
"""

from __future__ import annotations

import torch


def _valid_rows(slot_index: torch.Tensor, lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """bool [B]: rows that attend (real slot, 1 <= length <= max_len)."""
    return (slot_index >= 0) & (lengths >= 1) & (lengths <= max_len)


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_index: torch.Tensor,
    lengths: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """softmax(q k^T * scale) v over each row's valid keys.

    q [B, nh, hd]; k_cache, v_cache [slots, nkv, max_len, hd]; slot_index, lengths int32 [B].
    Returns [B, nh, hd] in q's dtype; rows that do not attend (padding, length 0) are zero.
    """
    nh, hd = q.shape[1], q.shape[2]
    nkv, max_len = k_cache.shape[1], k_cache.shape[2]
    out = torch.zeros_like(q)
    valid = _valid_rows(slot_index, lengths, max_len)
    if not bool(valid.any()):
        return out
    n = lengths[valid].long()
    width = int(n.max())
    slots = slot_index[valid].long()
    # [b, nkv, W, hd]: keys and values up to the longest valid row
    keys = k_cache[slots, :, :width].float()
    values = v_cache[slots, :, :width].float()
    # [b, nkv, G, hd]: query heads grouped by their kv head
    qg = q[valid].float().view(-1, nkv, nh // nkv, hd)
    scores = torch.einsum("bkgd,bkld->bkgl", qg, keys) * scale
    mask = torch.arange(width, device=q.device) < n[:, None]
    scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out[valid] = torch.einsum("bkgl,bkld->bkgd", probs, values).reshape(-1, nh, hd).to(q.dtype)
    return out


def store_kv(
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_index: torch.Tensor,
    lengths: torch.Tensor,
) -> None:
    """Write row b's k, v [B, nkv, hd] at position lengths[b] - 1 of slot slot_index[b], IN PLACE.

    lengths counts the new token (as `decode_attention` takes it); rows with a negative slot or a
    length outside [1, max_len] write nothing.
    """
    valid = _valid_rows(slot_index, lengths, k_cache.shape[2])
    slots = slot_index[valid].long()
    pos = lengths[valid].long() - 1
    k_cache[slots, :, pos] = k[valid].to(k_cache.dtype)
    v_cache[slots, :, pos] = v[valid].to(v_cache.dtype)
