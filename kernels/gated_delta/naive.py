"""Plain-torch gated delta rule of the Qwen3.5 DeltaNet layers (ground truth).

Per value head h, with key head h // (Hv / Hk), fp32 state S [Dk, Dv] and per token t:
    S <- exp(g_t) * S;  S <- S + k_t (beta_t (v_t - S^T k_t))^T;  o_t = S^T q_t
q and k are optionally L2-normalised (x / sqrt(sum x^2 + 1e-6)), then q is multiplied by `scale`
(Dk^-0.5 by default). `recurrent` is this loop, token by token: the ground truth. `chunked` is
the chunked form (chunk 64, qwen35.md 3.3) used for prefill. `decode` is one step on a state pool.
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

CHUNK = 64


def _prepare(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    scale: float | None,
    use_qk_l2norm: bool,
) -> tuple[torch.Tensor, ...]:
    """[N, Hk, Dk] q, k and [N, Hv, Dv] v -> fp32 q, k repeated to [N, Hv, Dk], v, g, beta.

    float64 inputs stay float64 (the precision tests use that as a higher-precision truth).
    """
    ft = _maths_dtype(v)
    q, k, v, g, beta = (x.to(ft) for x in (q, k, v, g, beta))
    if use_qk_l2norm:
        q = q * torch.rsqrt((q * q).sum(-1, keepdim=True) + 1e-6)
        k = k * torch.rsqrt((k * k).sum(-1, keepdim=True) + 1e-6)
    q = q * (scale if scale is not None else q.shape[-1] ** -0.5)
    group = v.shape[1] // k.shape[1]
    # value head h reads key head h // group (consecutive grouping)
    return q.repeat_interleave(group, 1), k.repeat_interleave(group, 1), v, g, beta


def _maths_dtype(v: torch.Tensor) -> torch.dtype:
    return torch.float64 if v.dtype == torch.float64 else torch.float32


def _spans(cu_seqlens: torch.Tensor) -> list[tuple[int, int]]:
    return list(itertools.pairwise(cu_seqlens.tolist()))


def _initial(initial_state: torch.Tensor | None, s: int, like: torch.Tensor) -> torch.Tensor:
    """like [Hv, Dk, Dv] (dtype and device): sequence s's initial state, zeros when None."""
    if initial_state is None:
        return torch.zeros_like(like)
    return initial_state[s].to(like.dtype).clone()


def recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    cu_seqlens: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    scale: float | None = None,
    use_qk_l2norm: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-by-token loop over packed sequences.

    q, k [T, Hk, Dk]; v [T, Hv, Dv]; g, beta [T, Hv]; cu_seqlens int32 [S+1];
    initial_state [S, Hv, Dk, Dv] or None. Returns o [T, Hv, Dv] (v's dtype) and
    final_state [S, Hv, Dk, Dv] fp32.
    """
    qf, kf, vf, gf, bf = _prepare(q, k, v, g, beta, scale, use_qk_l2norm)
    Hv, Dk, Dv = v.shape[1], k.shape[2], v.shape[2]
    o = torch.empty_like(vf)
    spans = _spans(cu_seqlens)
    final = torch.empty(len(spans), Hv, Dk, Dv, dtype=vf.dtype, device=v.device)
    for s, (bos, eos) in enumerate(spans):
        S = _initial(initial_state, s, final[s])
        for t in range(bos, eos):
            S = S * gf[t].exp()[:, None, None]
            # [Hv, Dv]: what the state predicts for k_t
            pred = torch.einsum("hkv,hk->hv", S, kf[t])
            delta = bf[t][:, None] * (vf[t] - pred)
            S = S + kf[t][:, :, None] * delta[:, None, :]
            o[t] = torch.einsum("hkv,hk->hv", S, qf[t])
        final[s] = S
    return o.to(v.dtype), final


def chunked(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    cu_seqlens: torch.Tensor,
    initial_state: torch.Tensor | None = None,
    scale: float | None = None,
    use_qk_l2norm: bool = True,
    chunk_size: int = CHUNK,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked form over packed sequences: same arguments and results as `recurrent`."""
    qf, kf, vf, gf, bf = _prepare(q, k, v, g, beta, scale, use_qk_l2norm)
    Hv, Dk, Dv = v.shape[1], k.shape[2], v.shape[2]
    C = chunk_size
    o = torch.empty_like(vf)
    spans = _spans(cu_seqlens)
    final = torch.empty(len(spans), Hv, Dk, Dv, dtype=vf.dtype, device=v.device)
    lower = torch.ones(C, C, dtype=torch.bool, device=v.device).tril()
    strict = lower.tril(-1)
    for s, (bos, eos) in enumerate(spans):
        S = _initial(initial_state, s, final[s])
        L = eos - bos
        pad = (-L) % C
        # [Hv, n, C, D]: head-major, padded with zeros (q, k, v, g, beta = 0 leave S unchanged)
        Q, K, V = (
            F.pad(x[bos:eos].transpose(0, 1), (0, 0, 0, pad)).unflatten(1, (-1, C))
            for x in (qf, kf, vf)
        )
        G, B = (F.pad(x[bos:eos].t(), (0, pad)).unflatten(1, (-1, C)) for x in (gf, bf))
        gam = G.cumsum(-1)
        # [Hv, n, C, C]: exp(gamma_i - gamma_j) on and below the diagonal
        diff = (gam[..., :, None] - gam[..., None, :]).masked_fill(~lower, 0)
        D = torch.where(lower, diff.exp(), 0)
        KB = K * B[..., None]
        A = torch.where(strict, KB @ K.transpose(-1, -2) * D, 0)
        eye = torch.eye(C, dtype=vf.dtype, device=v.device)
        # T = (I + A)^-1, applied by unit lower-triangular solves
        IA = eye + A
        U = torch.linalg.solve_triangular(IA, V * B[..., None], upper=False, unitriangular=True)
        W = torch.linalg.solve_triangular(
            IA, KB * gam.exp()[..., None], upper=False, unitriangular=True
        )
        attn = torch.where(lower, Q @ K.transpose(-1, -2) * D, 0)
        out = torch.empty_like(V)
        for i in range(Q.shape[1]):
            Vn = U[:, i] - W[:, i] @ S
            out[:, i] = (Q[:, i] * gam[:, i, :, None].exp()) @ S + attn[:, i] @ Vn
            last = gam[:, i, -1]
            S = S * last.exp()[:, None, None] + (
                K[:, i] * (last[:, None] - gam[:, i]).exp()[..., None]
            ).transpose(-1, -2) @ Vn
        o[bos:eos] = out.flatten(1, 2)[:, :L].transpose(0, 1)
        final[s] = S
    return o.to(v.dtype), final


def decode(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    g: torch.Tensor,
    beta: torch.Tensor,
    state: torch.Tensor,
    state_indices: torch.Tensor,
    scale: float | None = None,
    use_qk_l2norm: bool = True,
) -> torch.Tensor:
    """One token per sequence; updates the state pool IN PLACE.

    q, k [B, Hk, Dk]; v [B, Hv, Dv]; g, beta [B, Hv]; state [num_slots, Hv, Dk, Dv] fp32;
    state_indices int32 [B] (a negative slot is padding: zero output, no state change).
    Returns o [B, Hv, Dv] in v's dtype.
    """
    qf, kf, vf, gf, bf = _prepare(q, k, v, g, beta, scale, use_qk_l2norm)
    valid = state_indices >= 0
    slots = state_indices[valid].long()
    S = state[slots] * gf[valid].exp()[..., None, None]
    kv = kf[valid]
    pred = torch.einsum("bhkv,bhk->bhv", S, kv)
    delta = bf[valid][..., None] * (vf[valid] - pred)
    S = S + kv[..., None] * delta[..., None, :]
    o = torch.zeros_like(vf)
    o[valid] = torch.einsum("bhkv,bhk->bhv", S, qf[valid])
    state[slots] = S.to(state.dtype)
    return o.to(v.dtype)
