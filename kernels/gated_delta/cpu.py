"""The gated delta rule on the CPU without a Python loop over sequences: naive.py's chunked form
and decode step, batched.

`chunked`: every chunk of every packed sequence is laid out in one zero-padded [Hv, N, C, D]
block, so the work inside the chunks (decay matrix, the two unit-triangular solves, the in-chunk
attention) is one batched op each over all N chunks; only the recurrence across chunks loops,
over the chunk position i, updating the states of all sequences that have an i-th chunk at once.
Zero padding leaves a state unchanged (g = 0, k = 0), as in naive.chunked.

`decode`: naive.decode on a state pool; with every slot valid (the eager CPU step) it skips the
masks, and when the slots are one increasing run (a full batch) it updates the pool's rows in
place instead of gathering and scattering them.

Same arguments and results as naive.chunked / naive.decode, which stay the ground truth.
"""

from __future__ import annotations

import torch

from .._dispatch import slot_run
from . import naive


def _layout(lengths: list[int], C: int, device: torch.device):
    """-> (chunks per sequence, first chunk of each, padded row of every packed token [T])."""
    counts = [-(-n // C) for n in lengths]
    firsts, rows, total = [], [], 0
    for n, c in zip(lengths, counts):
        firsts.append(total)
        rows.append(torch.arange(n) + total * C)
        total += c
    index = torch.cat(rows) if rows else torch.zeros(0, dtype=torch.long)
    return counts, firsts, index.to(device), total


def chunked(q, k, v, g, beta, cu_seqlens, initial_state=None, scale=None, use_qk_l2norm=True,
            chunk_size: int = naive.CHUNK):
    qf, kf, vf, gf, bf = naive._prepare(q, k, v, g, beta, scale, use_qk_l2norm)
    T, Hv, Dk, Dv = vf.shape[0], v.shape[1], k.shape[2], v.shape[2]
    C, dev, ft = chunk_size, v.device, vf.dtype
    bounds = cu_seqlens.tolist()
    lengths = [b - a for a, b in zip(bounds, bounds[1:])]
    S_n = len(lengths)
    counts, firsts, index, N = _layout(lengths, C, dev)
    final = torch.empty(S_n, Hv, Dk, Dv, dtype=ft, device=dev)
    o = torch.empty_like(vf)
    if N == 0:
        for s in range(S_n):
            final[s] = naive._initial(initial_state, s, final[s])
        return o.to(v.dtype), final

    def padded(x: torch.Tensor) -> torch.Tensor:
        """[T, Hv, ...] -> [Hv, N, C, ...], zeros where no token."""
        out = x.new_zeros(N * C, *x.shape[1:])
        out[index] = x
        return out.unflatten(0, (N, C)).movedim(2, 0)

    Q, K, V = (padded(x).contiguous() for x in (qf, kf, vf))  # [Hv, N, C, D]
    G, B = padded(gf), padded(bf)  # [Hv, N, C]
    lower = torch.ones(C, C, dtype=torch.bool, device=dev).tril()
    strict = lower.tril(-1)
    gam = G.cumsum(-1)
    diff = (gam[..., :, None] - gam[..., None, :]).masked_fill(~lower, 0)
    D = torch.where(lower, diff.exp(), 0)
    KB = K * B[..., None]
    A = torch.where(strict, KB @ K.transpose(-1, -2) * D, 0)
    IA = torch.eye(C, dtype=ft, device=dev) + A
    U = torch.linalg.solve_triangular(IA, V * B[..., None], upper=False, unitriangular=True)
    W = torch.linalg.solve_triangular(IA, KB * gam.exp()[..., None], upper=False,
                                      unitriangular=True)
    attn = torch.where(lower, Q @ K.transpose(-1, -2) * D, 0)
    Qg = Q * gam.exp()[..., None]
    last = gam[..., -1]  # [Hv, N]
    Kl = K * (last[..., None] - gam).exp()[..., None]
    # [Hv, S, Dk, Dv]: every sequence's state, head-major like the chunks
    if initial_state is None:
        state = torch.zeros(Hv, S_n, Dk, Dv, dtype=ft, device=dev)
    else:
        state = initial_state.to(ft).transpose(0, 1).clone()
    out = torch.empty_like(V)
    firsts_t = torch.tensor(firsts, device=dev)
    for i in range(max(counts)):
        live = [s for s, c in enumerate(counts) if c > i]
        if len(live) == S_n:
            ids, S = firsts_t + i, state
        else:
            seqs = torch.tensor(live, device=dev)
            ids, S = firsts_t[seqs] + i, state[:, seqs]
        Vn = U[:, ids] - W[:, ids] @ S
        out[:, ids] = Qg[:, ids] @ S + attn[:, ids] @ Vn
        S = S * last[:, ids].exp()[..., None, None] + Kl[:, ids].transpose(-1, -2) @ Vn
        if len(live) == S_n:
            state = S
        else:
            state[:, seqs] = S
    o = out.movedim(0, 2).flatten(0, 1)[index]
    return o.to(v.dtype), state.transpose(0, 1).contiguous()


def decode(q, k, v, g, beta, state, state_indices, scale=None, use_qk_l2norm=True):
    slots = state_indices.tolist()
    if min(slots, default=-1) < 0 or naive._maths_dtype(v) != state.dtype:
        return naive.decode(q, k, v, g, beta, state, state_indices, scale, use_qk_l2norm)
    qf, kf, vf, gf, bf = naive._prepare(q, k, v, g, beta, scale, use_qk_l2norm)
    run = slot_run(slots)
    S = state[run] if run is not None else state[state_indices.long()]
    # S <- exp(g) S ; S <- S + k (beta (v - S^T k))^T ; o = S^T q   (per sequence and head)
    S.mul_(gf.exp()[..., None, None])
    pred = (kf.unsqueeze(-2) @ S).squeeze(-2)  # [B, Hv, Dv]
    delta = bf[..., None] * (vf - pred)
    S.add_(kf.unsqueeze(-1) * delta.unsqueeze(-2))
    o = (qf.unsqueeze(-2) @ S).squeeze(-2)
    if run is None:
        state[state_indices.long()] = S
    return o.to(v.dtype)
