"""Decode attention of the full-attention layers against a slot-pool KV cache, and the in-place
write of the new token's key and value. Both take only device tensors and read nothing back to
the host on their Triton path, so a decode step built on them can be captured in a CUDA graph.

Convention: `lengths[b]` is the number of valid keys of row b counting the new token, so
`store_kv` writes at position lengths[b] - 1 and `decode_attention` then reads keys
0..lengths[b]-1; the caller passes the same tensor to both. A negative slot marks a padding row.
"""

from __future__ import annotations

import torch

from .._dispatch import check, check_float, use_triton, wants_naive
from . import cpu, naive


def _check_cache(k_cache: torch.Tensor, v_cache: torch.Tensor, like: torch.Tensor) -> tuple[int, int]:
    """like [B, heads, hd]: the cache must be [slots, nkv, max_len, hd] in like's dtype."""
    check(
        k_cache.dim() == 4 and k_cache.shape == v_cache.shape,
        f"k_cache, v_cache: expected equal shapes [slots, nkv, max_len, hd], "
        f"got {tuple(k_cache.shape)} and {tuple(v_cache.shape)}",
    )
    check(
        k_cache.shape[3] == like.shape[2],
        f"caches: head dim {k_cache.shape[3]} != {like.shape[2]}",
    )
    check(
        k_cache.dtype == v_cache.dtype == like.dtype,
        f"caches and inputs must share a dtype, got {k_cache.dtype}, {v_cache.dtype}, {like.dtype}",
    )
    check(
        k_cache.is_contiguous() and v_cache.is_contiguous(),
        "k_cache, v_cache: must be contiguous (the pool is written in place)",
    )
    return k_cache.shape[1], k_cache.shape[2]


def _check_rows(slot_index: torch.Tensor, lengths: torch.Tensor, B: int) -> None:
    for name, t in (("slot_index", slot_index), ("lengths", lengths)):
        check(
            t.shape == (B,) and t.dtype == torch.int32,
            f"{name}: expected int32 [{B}], got {t.dtype} {tuple(t.shape)}",
        )


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_index: torch.Tensor,
    lengths: torch.Tensor,
    scale: float | None = None,
    impl: str | None = None,
    num_splits: int | None = None,
) -> torch.Tensor:
    """One query token per sequence against its cached keys (GQA), fp32 softmax.

    q [B, nh, hd] (post-RoPE); k_cache, v_cache [slots, nkv, max_len, hd] (nh a multiple of nkv;
    query head h reads kv head h // (nh / nkv)); slot_index int32 [B] (negative: padding row);
    lengths int32 [B] (valid keys of each row, the new token's included); scale defaults to
    hd^-0.5; num_splits (Triton only) fixes the split-K count, else chosen from the shapes.
    Returns [B, nh, hd] in q's dtype; padding rows and rows of length 0 are zero.
    """
    check(q.dim() == 3, f"q: expected shape [B, nh, hd], got {tuple(q.shape)}")
    check_float("q", q)
    B, nh, hd = q.shape
    nkv, _ = _check_cache(k_cache, v_cache, q)
    check(nh % nkv == 0, f"query heads ({nh}) must be a multiple of kv heads ({nkv})")
    _check_rows(slot_index, lengths, B)
    check(num_splits is None or num_splits >= 1, f"num_splits must be >= 1, got {num_splits}")
    scale = float(scale) if scale is not None else hd**-0.5
    if use_triton(impl, q, k_cache, v_cache, slot_index, lengths, op="decode_attention"):
        from . import decode

        return decode.decode_attention(
            q.contiguous(), k_cache, v_cache, slot_index, lengths, scale, num_splits
        )
    if q.device.type == "cpu" and not wants_naive(impl):
        return cpu.decode_attention(q, k_cache, v_cache, slot_index, lengths, scale)
    return naive.decode_attention(q, k_cache, v_cache, slot_index, lengths, scale)


def store_kv(
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_index: torch.Tensor,
    lengths: torch.Tensor,
    impl: str | None = None,
) -> None:
    """Write each row's new key and value into its slot IN PLACE, at position lengths[b] - 1.

    k, v [B, nkv, hd] (k post-RoPE); k_cache, v_cache [slots, nkv, max_len, hd];
    slot_index, lengths int32 [B] as for `decode_attention`. Rows with a negative slot or a length
    outside [1, max_len] write nothing.
    """
    check(
        k.dim() == 3 and k.shape == v.shape,
        f"k, v: expected equal shapes [B, nkv, hd], got {tuple(k.shape)} and {tuple(v.shape)}",
    )
    check_float("k", k)
    nkv, _ = _check_cache(k_cache, v_cache, k)
    check(k.shape[1] == nkv, f"k: {k.shape[1]} kv heads, the cache has {nkv}")
    check(v.dtype == k.dtype, f"k and v must share a dtype, got {k.dtype} and {v.dtype}")
    _check_rows(slot_index, lengths, k.shape[0])
    if use_triton(impl, k, v, k_cache, v_cache, slot_index, lengths, op="store_kv"):
        from . import decode

        decode.store_kv(k.contiguous(), v.contiguous(), k_cache, v_cache, slot_index, lengths)
        return
    naive.store_kv(k, v, k_cache, v_cache, slot_index, lengths)


__all__ = ["decode_attention", "store_kv"]
