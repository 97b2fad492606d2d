"""Gated delta rule of the Qwen3.5 DeltaNet layers: chunked prefill and the in-place decode step.

Tokens are packed without a batch dim: [T, H, D], sequence s = rows cu_seqlens[s]:cu_seqlens[s+1].
q and k are the conv outputs; with use_qk_l2norm (the model's setting) the op L2-normalises them
in fp32, then multiplies q by `scale` (default Dk^-0.5), as transformers' reference does. Value
head h reads key head h // (Hv / Hk). The state is fp32 [Hv, Dk, Dv] per sequence.
"""

from __future__ import annotations

import torch

from .._dispatch import check, check_cu_seqlens, check_float, use_triton, wants_naive
from . import cpu, naive


def _check_qkv(q, k, v, g, beta) -> tuple[int, int, int, int, int]:
    check(
        q.dim() == 3 and q.shape == k.shape,
        f"q, k: expected equal shapes [T, Hk, Dk], got {tuple(q.shape)} and {tuple(k.shape)}",
    )
    T, Hk, Dk = k.shape
    check(
        v.dim() == 3 and v.shape[0] == T,
        f"v: expected shape [{T}, Hv, Dv], got {tuple(v.shape)}",
    )
    Hv, Dv = v.shape[1], v.shape[2]
    check(Hv % Hk == 0, f"value heads ({Hv}) must be a multiple of key heads ({Hk})")
    check(g.shape == (T, Hv), f"g: expected shape ({T}, {Hv}), got {tuple(g.shape)}")
    check(g.dtype == torch.float32, f"g: the log decay must be float32, got {g.dtype}")
    check(beta.shape == (T, Hv), f"beta: expected shape ({T}, {Hv}), got {tuple(beta.shape)}")
    for name, t in (("q", q), ("k", k), ("v", v), ("beta", beta)):
        check_float(name, t)
    check(q.dtype == k.dtype, f"q and k must share a dtype, got {q.dtype} and {k.dtype}")
    return T, Hk, Dk, Hv, Dv


def _scale(scale: float | None, Dk: int) -> float:
    return float(scale) if scale is not None else Dk**-0.5


def chunk_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    cu_seqlens: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    scale: float | None = None,
    use_qk_l2norm: bool = True,
    impl: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Prefill over packed variable-length sequences (chunked form).

    q, k [T, Hk, Dk]; v [T, Hv, Dv]; g [T, Hv] fp32 (log decay, <= 0); beta [T, Hv];
    cu_seqlens int32 [S+1]; initial_state [S, Hv, Dk, Dv] fp32 or None (zeros).
    Returns o [T, Hv, Dv] in v's dtype and final_state [S, Hv, Dk, Dv] fp32.
    """
    T, _, Dk, Hv, Dv = _check_qkv(q, k, v, g, beta)
    check_cu_seqlens(cu_seqlens, T)
    S = cu_seqlens.numel() - 1
    if initial_state is not None:
        check(
            initial_state.shape == (S, Hv, Dk, Dv) and initial_state.dtype == torch.float32,
            f"initial_state: expected float32 ({S}, {Hv}, {Dk}, {Dv}), "
            f"got {initial_state.dtype} {tuple(initial_state.shape)}",
        )
    if use_triton(impl, q, k, v, g, beta, cu_seqlens, op="chunk_gated_delta_rule"):
        from . import chunk

        return chunk.chunk_gated_delta_rule(
            *(t.contiguous() for t in (q, k, v, g, beta)),
            cu_seqlens,
            initial_state.contiguous() if initial_state is not None else None,
            _scale(scale, Dk),
            use_qk_l2norm,
        )
    return naive.chunked(q, k, v, g, beta, cu_seqlens, initial_state, scale, use_qk_l2norm)


def recurrent_gated_delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor,
    state_indices: torch.Tensor,
    scale: float | None = None,
    use_qk_l2norm: bool = True,
    impl: str | None = None,
) -> torch.Tensor:
    """Decode: one token per sequence, updating each sequence's state slot IN PLACE.

    q, k [B, Hk, Dk]; v [B, Hv, Dv]; g [B, Hv] fp32; beta [B, Hv];
    state [num_slots, Hv, Dk, Dv] fp32 contiguous (the pool); state_indices int32 [B] (slot per
    sequence; a negative slot is padding: zero output, no state change). Returns o [B, Hv, Dv].
    """
    B, _, Dk, Hv, Dv = _check_qkv(q, k, v, g, beta)
    check(
        state.dim() == 4 and state.shape[1:] == (Hv, Dk, Dv) and state.dtype == torch.float32,
        f"state: expected float32 [slots, {Hv}, {Dk}, {Dv}], "
        f"got {state.dtype} {tuple(state.shape)}",
    )
    check(state.is_contiguous(), "state: must be contiguous (it is updated in place)")
    check(
        state_indices.shape == (B,) and state_indices.dtype == torch.int32,
        f"state_indices: expected int32 [{B}], "
        f"got {state_indices.dtype} {tuple(state_indices.shape)}",
    )
    if use_triton(impl, q, k, v, g, beta, state, state_indices, op="recurrent_gated_delta_rule"):
        from . import recurrent

        return recurrent.recurrent_gated_delta_rule(
            *(t.contiguous() for t in (q, k, v, g, beta)),
            state,
            state_indices,
            _scale(scale, Dk),
            use_qk_l2norm,
        )
    if q.device.type == "cpu" and not wants_naive(impl):
        return cpu.decode(q, k, v, g, beta, state, state_indices, scale, use_qk_l2norm)
    return naive.decode(q, k, v, g, beta, state, state_indices, scale, use_qk_l2norm)


__all__ = ["chunk_gated_delta_rule", "recurrent_gated_delta_rule"]
