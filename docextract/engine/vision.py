"""Qwen3.5 vision tower: patch embedding, learned position grid, 2-D rotary ViT blocks with
attention restricted to each image, and the 2x2 patch merger into language-model tokens.

Patches arrive in merge-window order (see processor.py): each run of merge^2 consecutive rows is
one window, so the merger is a reshape.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .config import VisionConfig


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def patch_coords(grid_thw: torch.Tensor, merge: int) -> torch.Tensor:
    """(row, col) of every patch in merge-window order. grid_thw [n, 3] -> [N, 2] long."""
    coords = []
    for t, h, w in grid_thw.tolist():
        rows = torch.arange(h).view(h // merge, merge, 1, 1).expand(-1, -1, w // merge, merge)
        cols = torch.arange(w).view(1, 1, w // merge, merge).expand(h // merge, merge, -1, -1)
        # [h/m, m, w/m, m] -> [h/m, w/m, m, m]
        rc = torch.stack([rows, cols], dim=-1).permute(0, 2, 1, 3, 4).reshape(-1, 2)
        coords.append(rc.repeat(t, 1))
    return torch.cat(coords)


def vision_rope(coords: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """2-D rotary tables over the full head: coords [N, 2] -> cos, sin [N, head_dim] fp32.

    head_dim/4 frequencies; angles [row * f, col * f] duplicated for rotate-half.
    """
    quarter = head_dim // 2
    inv_freq = 1.0 / (theta ** (torch.arange(0, quarter, 2, dtype=torch.float32) / quarter))
    # [N, 2, head_dim/4] -> [N, head_dim/2]
    angles = (coords.float().unsqueeze(-1) * inv_freq).flatten(1)
    emb = torch.cat([angles, angles], dim=-1)
    return emb.cos(), emb.sin()


def _axis_taps(n: int, side: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n points spread over [0, side-1] (align corners): lower tap, upper tap, weight of upper."""
    src = torch.arange(n, dtype=torch.float32) * (side - 1) / max(n - 1, 1)
    lo = src.floor().long()
    return lo, (lo + 1).clamp(max=side - 1), src - lo


def interpolate_pos_embed(table: torch.Tensor, grid_thw: torch.Tensor, merge: int) -> torch.Tensor:
    """Bilinear (align-corners) resampling of the learned [side*side, D] grid to each image.

    table [side^2, D], grid_thw [n, 3] -> [N, D] in merge-window order, repeated per frame.
    """
    side = int(round(table.shape[0] ** 0.5))
    grid = table.view(side, side, -1)
    out = []
    for t, h, w in grid_thw.tolist():
        r0, r1, fr = _axis_taps(h, side)
        c0, c1, fc = _axis_taps(w, side)
        fr, fc = fr.to(table.device)[:, None, None], fc.to(table.device)[None, :, None]
        # [h, w, D]
        emb = (
            grid[r0][:, c0] * ((1 - fr) * (1 - fc))
            + grid[r0][:, c1] * ((1 - fr) * fc)
            + grid[r1][:, c0] * (fr * (1 - fc))
            + grid[r1][:, c1] * (fr * fc)
        )
        emb = emb.view(h // merge, merge, w // merge, merge, -1).permute(0, 2, 1, 3, 4).reshape(h * w, -1)
        out.append(emb.repeat(t, 1))
    return torch.cat(out)


def _param(*shape: int, dtype: torch.dtype) -> nn.Parameter:
    return nn.Parameter(torch.empty(*shape, dtype=dtype), requires_grad=False)


class _Linear(nn.Module):
    def __init__(self, n_in: int, n_out: int, dtype: torch.dtype):
        super().__init__()
        self.weight = _param(n_out, n_in, dtype=dtype)
        self.bias = _param(n_out, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _LayerNorm(nn.Module):
    def __init__(self, dim: int, dtype: torch.dtype):
        super().__init__()
        self.weight = _param(dim, dtype=dtype)
        self.bias = _param(dim, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, eps=1e-6)


class PatchEmbed(nn.Module):
    def __init__(self, config: VisionConfig, dtype: torch.dtype):
        super().__init__()
        self.proj = nn.Module()
        p, tp = config.patch_size, config.temporal_patch_size
        # Conv3d weight with kernel == stride == one patch: a Linear on each flattened patch row.
        self.proj.weight = _param(config.hidden_size, config.in_channels, tp, p, p, dtype=dtype)
        self.proj.bias = _param(config.hidden_size, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.proj.weight.flatten(1), self.proj.bias)


class VisionAttention(nn.Module):
    def __init__(self, config: VisionConfig, dtype: torch.dtype):
        super().__init__()
        self.num_heads = config.num_heads
        self.qkv = _Linear(config.hidden_size, 3 * config.hidden_size, dtype)
        self.proj = _Linear(config.hidden_size, config.hidden_size, dtype)

    def forward(self, x: torch.Tensor, seq_lens: list[int], rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        n = x.shape[0]
        # [N, 3, heads, hd] -> q, k, v [N, heads, hd]
        q, k, v = self.qkv(x).view(n, 3, self.num_heads, -1).unbind(1)
        cos, sin = (t.unsqueeze(1) for t in rope)
        q = (q.float() * cos + _rotate_half(q.float()) * sin).to(x.dtype)
        k = (k.float() * cos + _rotate_half(k.float()) * sin).to(x.dtype)
        outs = []
        for qs, ks, vs in zip(q.split(seq_lens), k.split(seq_lens), v.split(seq_lens)):
            qs, ks, vs = (t.transpose(0, 1).unsqueeze(0) for t in (qs, ks, vs))
            outs.append(F.scaled_dot_product_attention(qs, ks, vs)[0].transpose(0, 1))
        return self.proj(torch.cat(outs).reshape(n, -1))


class VisionMlp(nn.Module):
    def __init__(self, config: VisionConfig, dtype: torch.dtype):
        super().__init__()
        self.linear_fc1 = _Linear(config.hidden_size, config.intermediate_size, dtype)
        self.linear_fc2 = _Linear(config.intermediate_size, config.hidden_size, dtype)
        self.approximate = "tanh" if config.hidden_act == "gelu_pytorch_tanh" else "none"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear_fc2(F.gelu(self.linear_fc1(x), approximate=self.approximate))


class VisionBlock(nn.Module):
    def __init__(self, config: VisionConfig, dtype: torch.dtype):
        super().__init__()
        self.norm1 = _LayerNorm(config.hidden_size, dtype)
        self.norm2 = _LayerNorm(config.hidden_size, dtype)
        self.attn = VisionAttention(config, dtype)
        self.mlp = VisionMlp(config, dtype)

    def forward(self, x: torch.Tensor, seq_lens: list[int], rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), seq_lens, rope)
        return x + self.mlp(self.norm2(x))


class PatchMerger(nn.Module):
    """LayerNorm per patch, then each merge window's patches concatenated -> MLP -> text width."""

    def __init__(self, config: VisionConfig, dtype: torch.dtype):
        super().__init__()
        self.norm = _LayerNorm(config.hidden_size, dtype)
        self.linear_fc1 = _Linear(config.merged_hidden_size, config.merged_hidden_size, dtype)
        self.linear_fc2 = _Linear(config.merged_hidden_size, config.out_hidden_size, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x).view(-1, self.linear_fc1.weight.shape[1])
        return self.linear_fc2(F.gelu(self.linear_fc1(x)))


class VisionModel(nn.Module):
    def __init__(self, config: VisionConfig, dtype: torch.dtype):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config, dtype)
        self.pos_embed = nn.Module()
        self.pos_embed.weight = _param(config.num_position_embeddings, config.hidden_size, dtype=dtype)
        self.blocks = nn.ModuleList(VisionBlock(config, dtype) for _ in range(config.depth))
        self.merger = PatchMerger(config, dtype)

    def forward(self, pixel_values: torch.Tensor, grid_thw: torch.Tensor,
                after_block: Callable[[int], None] | None = None) -> torch.Tensor:
        """pixel_values [N, patch_dim] (merge-window order), grid_thw [n, 3] -> [N / merge^2, out].

        `after_block(i)` is called with the number of blocks done, 0 before the first."""
        cfg, merge = self.config, self.config.spatial_merge_size
        grid_thw = grid_thw.cpu()
        x = self.patch_embed(pixel_values)
        x = x + interpolate_pos_embed(self.pos_embed.weight, grid_thw, merge).to(x.dtype)
        cos, sin = vision_rope(patch_coords(grid_thw, merge), cfg.head_dim, cfg.rope_theta)
        rope = (cos.to(x.device), sin.to(x.device))
        # Attention stays inside each frame of each image.
        seq_lens = [h * w for t, h, w in grid_thw.tolist() for _ in range(t)]
        if after_block is not None:
            after_block(0)
        for i, block in enumerate(self.blocks):
            x = block(x, seq_lens, rope)
            if after_block is not None:
                after_block(i + 1)
        return self.merger(x)
