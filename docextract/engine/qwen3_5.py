"""Qwen3.5 (MoE and dense): the multimodal model, with the text decoder written out here.

The module tree mirrors the official checkpoint, so `state_dict()` keys are the checkpoint keys
(`model.language_model.*`, `model.visual.*`, `lm_head.weight` unless tied; routed experts fused
per layer as `mlp.experts.gate_up_proj` [E, 2I, H] and `mlp.experts.down_proj` [E, H, I], or the
packed buffers of `quant.QuantizedExperts` once converted).

Tokens travel packed: a forward takes `T` tokens of `S` sequences laid end to end ([T, H], no
batch dimension) plus a `Batch` saying how long each sequence is. Attention and the DeltaNet
recurrence never cross a sequence boundary, so a batch gives each sequence exactly what it gets
alone and padding never touches any state. Norms, the causal conv, the gated delta rule and the
routed experts are the ops of `docextract.kernels` (their naive.py is the reference maths); each
module passes its `impl` ("naive", "triton", or None for the kernels' own dispatch) down to them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import nn

from .. import kernels as K
from ..errors import ModelError
from ..kernels.attention import decode_attention, store_kv
from .cache import Cache
from .config import ModelConfig, TextConfig
from .vision import VisionModel


@dataclass
class Batch:
    """Forward state of one packed step: S sequences, T tokens in all.

    `seq_lens[s]` new tokens of sequence s (sum T); `positions` [3, T] M-RoPE positions (T/H/W
    streams); with a `cache`, sequence s reads and extends the state in `slots[s]`.
    A static decode step (`Model.decode_static`) gives `slot_tensor` int32 [S] on the device
    instead of `slots` (negative: padding row) and `kv_lens` int32 [S] (keys per sequence with
    this step's token), so that nothing in the step reads the host.
    """

    seq_lens: list[int]
    positions: torch.Tensor
    cache: Cache | None = None
    slots: list[int] | None = None
    slot_tensor: torch.Tensor | None = None
    kv_lens: torch.Tensor | None = None

    @property
    def offsets(self) -> list[int]:
        out = [0]
        for n in self.seq_lens:
            out.append(out[-1] + n)
        return out

    @property
    def is_decode(self) -> bool:
        """One new token per sequence on top of a cache: the recurrent forms apply."""
        return self.cache is not None and all(n == 1 for n in self.seq_lens)

    @cached_property
    def cu_seqlens(self) -> torch.Tensor:
        """int32 [S+1] sequence offsets on the tokens' device (the kernels' packing)."""
        return torch.tensor(self.offsets, dtype=torch.int32, device=self.positions.device)

    @property
    def is_static(self) -> bool:
        return self.slot_tensor is not None

    @cached_property
    def slot_index(self) -> torch.Tensor:
        """int32 [S] cache slot of each sequence (the kernels' state_indices)."""
        if self.slot_tensor is not None:
            return self.slot_tensor
        return torch.tensor(self.slots, dtype=torch.int32, device=self.positions.device)

    @cached_property
    def kv_lengths(self) -> torch.Tensor:
        """int32 [S] (decode): each sequence's cached keys once this step's token is written."""
        if self.kv_lens is not None:
            return self.kv_lens
        return self.cache.decode_lengths(self.slots)


def quant_predicate(name: str) -> bool:
    """Whether `--experts int8|int4` quantises checkpoint tensor `name`: the routed experts only.

    Routers (`mlp.gate`), the shared expert and its gate, DeltaNet (in_proj_a/b included),
    attention, embeddings, lm_head, the vision tower and the MTP head stay 16-bit."""
    return name.startswith("model.language_model.layers.") and ".mlp.experts." in name


def rope_cos_sin(positions: torch.Tensor, config: TextConfig, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Interleaved M-RoPE tables. positions [3, T] (T/H/W) -> cos, sin [T, rotary_dim].

    Frequency i follows stream H when i % 3 == 1 and i < 3*section[1], W when i % 3 == 2 and
    i < 3*section[2], else T; with equal streams (text) this is plain 1-D RoPE.
    """
    rot = config.rotary_dim
    inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, rot, 2, dtype=torch.float32, device=positions.device) / rot))
    # [3, T, rot/2]
    freqs = positions.float().unsqueeze(-1) * inv_freq
    mixed = freqs[0].clone()
    for stream in (1, 2):
        idx = slice(stream, config.mrope_section[stream] * 3, 3)
        mixed[..., idx] = freqs[stream, ..., idx]
    emb = torch.cat([mixed, mixed], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Partial rotate-half RoPE on the first rotary_dim dims. x [T, heads, hd], cos/sin [T, rot]."""
    rot = cos.shape[-1]
    xr, xp = x[..., :rot], x[..., rot:]
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return torch.cat([xr * cos + _rotate_half(xr) * sin, xp], dim=-1)


def swiglu(x: torch.Tensor, gate_w: torch.Tensor, up_w: torch.Tensor, down_w: torch.Tensor) -> torch.Tensor:
    """down(silu(gate x) * up x). x [T, H], gate_w/up_w [I, H], down_w [H, I] -> [T, H]."""
    return F.linear(F.silu(F.linear(x, gate_w)) * F.linear(x, up_w), down_w)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, mask: torch.Tensor | None, causal: bool) -> torch.Tensor:
    """q [B, nh, L, hd], k/v [B, nkv, S, hd] (GQA) -> [B, nh, L, hd]."""
    groups = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal, scale=scale)


class RMSNorm(nn.Module):
    """Zero-centred RMSNorm x / rms(x) * (1 + w); with `residual`, fused with the residual add."""

    impl: str | None = None

    def __init__(self, dim: int, eps: float, dtype: torch.dtype):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dtype=dtype), requires_grad=False)
        self.eps = eps

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        """x [..., D] -> normed [..., D]; with residual [..., D]: (norm(x + residual), x + residual)."""
        return K.rms_norm(x, self.weight, self.eps, residual=residual, impl=self.impl)


class GatedNorm(nn.Module):
    impl: str | None = None

    def __init__(self, dim: int, eps: float):
        super().__init__()
        # Stored F32 in the Qwen3.5 release; kept so.
        self.weight = nn.Parameter(torch.empty(dim, dtype=torch.float32), requires_grad=False)
        self.eps = eps

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x, z [..., Dv] -> (x / rms(x)) * w * silu(z) [..., Dv]."""
        return K.gated_rms_norm(x, z, self.weight, self.eps, impl=self.impl)


def _linear(n_in: int, n_out: int, dtype: torch.dtype) -> nn.Linear:
    layer = nn.Linear(n_in, n_out, bias=False, dtype=dtype)
    layer.weight.requires_grad_(False)
    return layer


class GatedDeltaNet(nn.Module):
    """Linear-attention mixer: causal conv over [q|k|v], gated delta rule, gated norm.

    With a cache, conv and recurrent state live in the cache's per-layer slot pools: prefill
    starts from each sequence's slot and writes its final state back; decode updates the slots
    in place."""

    impl: str | None = None

    def __init__(self, config: TextConfig, layer_idx: int, dtype: torch.dtype):
        super().__init__()
        self.layer_idx = layer_idx
        self.cfg = config
        h, nv = config.hidden_size, config.linear_num_value_heads
        self.in_proj_qkv = _linear(h, config.conv_dim, dtype)
        self.in_proj_z = _linear(h, config.linear_value_dim, dtype)
        self.in_proj_b = _linear(h, nv, dtype)
        self.in_proj_a = _linear(h, nv, dtype)
        self.conv1d = nn.Module()
        self.conv1d.weight = nn.Parameter(
            torch.empty(config.conv_dim, 1, config.linear_conv_kernel_dim, dtype=dtype), requires_grad=False
        )
        self.dt_bias = nn.Parameter(torch.empty(nv, dtype=dtype), requires_grad=False)
        # Decay rates stay fp32: bf16 A_log hurts long-context state decay.
        self.A_log = nn.Parameter(torch.empty(nv, dtype=torch.float32), requires_grad=False)
        self.norm = GatedNorm(config.linear_value_head_dim, config.rms_norm_eps)
        self.out_proj = _linear(config.linear_value_dim, h, dtype)

    def forward(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        cfg, T, impl = self.cfg, x.shape[0], self.impl
        z = self.in_proj_z(x).view(T, -1, cfg.linear_value_head_dim)
        b, a = self.in_proj_b(x), self.in_proj_a(x)
        conv_w = self.conv1d.weight[:, 0]
        cache = batch.cache
        conv_pool = rec_pool = None
        if cache is not None:
            conv_pool, rec_pool = cache.conv[self.layer_idx], cache.recurrent[self.layer_idx]
        # [T, conv_dim] = [q | k | v] after conv + SiLU
        if batch.is_decode:
            mixed = K.causal_conv1d_update(self.in_proj_qkv(x), conv_pool, conv_w, batch.slot_index, impl=impl)
        else:
            initial = None if cache is None else conv_pool[batch.slot_index]
            mixed, final = K.causal_conv1d(self.in_proj_qkv(x), conv_w, batch.cu_seqlens, initial, impl=impl)
            if cache is not None:
                conv_pool[batch.slot_index] = final
        q, k, v = mixed.split([cfg.linear_key_dim, cfg.linear_key_dim, cfg.linear_value_dim], dim=-1)
        q = q.reshape(T, -1, cfg.linear_key_head_dim)
        k = k.reshape(T, -1, cfg.linear_key_head_dim)
        v = v.reshape(T, -1, cfg.linear_value_head_dim)
        beta = b.sigmoid()
        # [T, Hv] fp32 log decay
        g = -self.A_log.float().exp() * F.softplus(a.float() + self.dt_bias.float())
        if batch.is_decode:
            o = K.recurrent_gated_delta_rule(q, k, v, g, beta, rec_pool, batch.slot_index, impl=impl)
        else:
            initial = None if cache is None else rec_pool[batch.slot_index]
            o, final = K.chunk_gated_delta_rule(q, k, v, g, beta, batch.cu_seqlens, initial, impl=impl)
            if cache is not None:
                rec_pool[batch.slot_index] = final
        return self.out_proj(self.norm(o, z).reshape(T, -1))


class GatedAttention(nn.Module):
    """Full softmax attention (GQA) with per-head q/k norm, partial M-RoPE and a sigmoid output gate."""

    impl: str | None = None

    def __init__(self, config: TextConfig, layer_idx: int, dtype: torch.dtype):
        super().__init__()
        self.layer_idx = layer_idx
        self.cfg = config
        h, hd = config.hidden_size, config.head_dim
        self.q_proj = _linear(h, config.num_attention_heads * hd * 2, dtype)
        self.k_proj = _linear(h, config.num_key_value_heads * hd, dtype)
        self.v_proj = _linear(h, config.num_key_value_heads * hd, dtype)
        self.o_proj = _linear(config.num_attention_heads * hd, h, dtype)
        self.q_norm = RMSNorm(hd, config.rms_norm_eps, dtype)
        self.k_norm = RMSNorm(hd, config.rms_norm_eps, dtype)

    def forward(self, x: torch.Tensor, batch: Batch, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        cfg, T = self.cfg, x.shape[0]
        hd, scale = cfg.head_dim, cfg.head_dim**-0.5
        # q_proj packs [query | gate] per head: [T, nh, 2*hd]
        q, gate = self.q_proj(x).view(T, -1, 2 * hd).chunk(2, dim=-1)
        q = apply_rope(self.q_norm(q), *rope)
        k = apply_rope(self.k_norm(self.k_proj(x).view(T, -1, hd)), *rope)
        v = self.v_proj(x).view(T, -1, hd)
        cache = batch.cache
        if batch.is_decode:
            out = self._decode(q, k, v, batch, scale)
        else:
            outs = []
            for s, (lo, hi) in enumerate(zip(batch.offsets[:-1], batch.offsets[1:])):
                qs, ks, vs = (t[lo:hi].transpose(0, 1).unsqueeze(0) for t in (q, k, v))
                past = 0
                if cache is not None:
                    slot = batch.slots[s]
                    past = cache.lengths[slot]
                    ks, vs = cache.append_kv(self.layer_idx, slot, ks[0], vs[0])
                    ks, vs = ks.unsqueeze(0), vs.unsqueeze(0)
                mask = None
                if past:
                    n = hi - lo
                    mask = torch.ones(n, past + n, dtype=torch.bool, device=x.device).tril(past)
                outs.append(_attend(qs, ks, vs, scale, mask, causal=not past)[0].transpose(0, 1))
            out = torch.cat(outs, dim=0)
        out = out.reshape(T, -1) * torch.sigmoid(gate.reshape(T, -1))
        return self.o_proj(out)

    def _decode(self, q, k, v, batch: Batch, scale: float) -> torch.Tensor:
        """One token per sequence against its slot's cached keys: q [S, nh, hd], k, v [S, nkv, hd]
        -> [S, nh, hd]. Device tensors only (the static step captures it)."""
        keys, values = batch.cache.kv[self.layer_idx]
        lengths = batch.kv_lengths
        store_kv(k, v, keys, values, batch.slot_index, lengths, impl=self.impl)
        return decode_attention(q, keys, values, batch.slot_index, lengths, scale, impl=self.impl)


class Mlp(nn.Module):
    def __init__(self, hidden: int, intermediate: int, dtype: torch.dtype):
        super().__init__()
        self.gate_proj = _linear(hidden, intermediate, dtype)
        self.up_proj = _linear(hidden, intermediate, dtype)
        self.down_proj = _linear(intermediate, hidden, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return swiglu(x, self.gate_proj.weight, self.up_proj.weight, self.down_proj.weight)


class Experts(nn.Module):
    """Routed experts in 16 bits, fused per layer as in the release (see quant.py for the
    int8 / int4 / fp8 forms, which share `weights()`)."""

    def __init__(self, config: TextConfig, dtype: torch.dtype):
        super().__init__()
        e, h, i = config.num_experts, config.hidden_size, config.moe_intermediate_size
        self.gate_up_proj = nn.Parameter(torch.empty(e, 2 * i, h, dtype=dtype), requires_grad=False)
        self.down_proj = nn.Parameter(torch.empty(e, h, i, dtype=dtype), requires_grad=False)

    def weights(self) -> tuple[K.ExpertWeights, K.ExpertWeights]:
        """(gate_up [E, 2I, H], down [E, H, I]) as the MoE kernels take them."""
        return K.ExpertWeights("float", self.gate_up_proj), K.ExpertWeights("float", self.down_proj)


class SparseMoe(nn.Module):
    """Top-k routed experts plus one shared expert behind a scalar sigmoid gate."""

    impl: str | None = None

    def __init__(self, config: TextConfig, dtype: torch.dtype):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.gate = _linear(config.hidden_size, config.num_experts, dtype)
        self.experts = Experts(config, dtype)
        self.shared_expert = Mlp(config.hidden_size, config.shared_expert_intermediate_size, dtype)
        self.shared_expert_gate = _linear(config.hidden_size, 1, dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [T, H] -> [T, H]: route -> align by expert -> grouped GEMMs -> weighted combine."""
        logits = self.gate(x)
        weights, ids = K.moe_route(logits, self.top_k, impl=self.impl)
        # transformers rounds the routing weights to the logits' dtype before use
        routed = K.moe_experts(x, weights.to(logits.dtype), ids, *self.experts.weights(), impl=self.impl)
        return routed + torch.sigmoid(self.shared_expert_gate(x)) * self.shared_expert(x)


class DecoderLayer(nn.Module):
    def __init__(self, config: TextConfig, layer_idx: int, dtype: torch.dtype):
        super().__init__()
        self.is_linear = config.layer_types[layer_idx] == "linear_attention"
        if self.is_linear:
            self.linear_attn = GatedDeltaNet(config, layer_idx, dtype)
        else:
            self.self_attn = GatedAttention(config, layer_idx, dtype)
        if config.is_moe:
            self.mlp = SparseMoe(config, dtype)
        else:
            self.mlp = Mlp(config.hidden_size, config.intermediate_size, dtype)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)

    def forward(self, x: torch.Tensor, batch: Batch, rope: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        h = self.input_layernorm(x)
        h = self.linear_attn(h, batch) if self.is_linear else self.self_attn(h, batch, rope)
        h, x = self.post_attention_layernorm(h, residual=x)
        return x + self.mlp(h)


class TextModel(nn.Module):
    def __init__(self, config: TextConfig, dtype: torch.dtype):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, dtype=dtype)
        self.embed_tokens.weight.requires_grad_(False)
        self.layers = nn.ModuleList(DecoderLayer(config, i, dtype) for i in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, dtype)

    def forward(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """x [T, H] input embeddings -> [T, H] final-normed hidden states."""
        if sum(batch.seq_lens) != x.shape[0] or batch.positions.shape != (3, x.shape[0]):
            raise ModelError(
                f"engine: batch of {sum(batch.seq_lens)} tokens and positions "
                f"{tuple(batch.positions.shape)} do not fit {x.shape[0]} embeddings"
            )
        rope = rope_cos_sin(batch.positions, self.config, x.dtype)
        for layer in self.layers:
            x = layer(x, batch, rope)
        if batch.is_static:
            batch.cache.static_advance(batch.slot_tensor)
        elif batch.cache is not None:
            batch.cache.advance(batch.slots, batch.seq_lens)
        return self.norm(x)


class _Backbone(nn.Module):
    def __init__(self, config: ModelConfig, dtype: torch.dtype):
        super().__init__()
        self.visual = VisionModel(config.vision_config, dtype)
        self.language_model = TextModel(config.text_config, dtype)


class Model(nn.Module):
    """Qwen3.5 image-text-to-text model (`Qwen3_5[Moe]ForConditionalGeneration` layout).

    Built without initialising anything (`Model.empty`), then filled by the loader.
    """

    def __init__(self, config: ModelConfig, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.config = config
        self._kernels: str | None = None
        self.model = _Backbone(config, dtype)
        if not config.tie_word_embeddings:
            self.lm_head = _linear(config.text_config.hidden_size, config.text_config.vocab_size, dtype)

    @classmethod
    def empty(cls, config: ModelConfig, dtype: torch.dtype, device: str | torch.device,
              convert: Callable[[Model], None] | None = None) -> Model:
        """The model with uninitialised storage on `device` (no random init, no double memory).

        `convert(model)` swaps modules while they are still on the meta device (e.g.
        `quant.convert_experts`), so that only the converted storage is ever allocated."""
        with torch.device("meta"):
            model = cls(config, dtype)
            if convert is not None:
                convert(model)
        return model.to_empty(device=device).eval()

    @property
    def kernels(self) -> str | None:
        """The `impl` every kernel op of the model runs with (None: the ops' own dispatch)."""
        return self._kernels

    @kernels.setter
    def kernels(self, impl: str | None) -> None:
        self._kernels = impl
        for module in self.modules():
            if hasattr(type(module), "impl"):
                module.impl = impl

    @property
    def dtype(self) -> torch.dtype:
        return self.model.language_model.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.language_model.embed_tokens.weight.device

    def make_cache(self, num_slots: int, max_len: int) -> Cache:
        """Decoding state for `num_slots` sequences of up to `max_len` tokens each."""
        return Cache(self.config.text_config, num_slots, max_len, dtype=self.dtype, device=self.device)

    def encode_images(self, pixel_values: torch.Tensor, image_grid_thw: torch.Tensor,
                      after_block=None) -> torch.Tensor:
        """pixel_values [N, patch_dim], image_grid_thw [n, 3] -> [N / merge^2, H] image tokens;
        `after_block(blocks done)` reports progress (see vision.VisionModel.forward)."""
        return self.model.visual(pixel_values.to(self.device, self.dtype), image_grid_thw,
                                 after_block)

    def embed(self, input_ids: torch.Tensor, image_embeds: torch.Tensor | None = None, *,
              images: bool = True) -> torch.Tensor:
        """input_ids [T] -> [T, H]; rows at <|image_pad|> take image_embeds [n_pad, H] in order.
        With images=False (generated tokens) an <|image_pad|> is embedded as the plain token it
        is, as transformers does."""
        x = self.model.language_model.embed_tokens(input_ids.to(self.device))
        if not images:
            return x
        is_image = input_ids.to(self.device) == self.config.image_token_id
        n_pad = int(is_image.sum())
        n_img = 0 if image_embeds is None else image_embeds.shape[0]
        if n_pad != n_img:
            raise ModelError(
                f"engine: {n_pad} <|image_pad|> tokens for {n_img} image tokens",
                hint="expand each image placeholder to grid_t*grid_h*grid_w/merge^2 pads",
            )
        if n_pad:
            x = x.masked_scatter(is_image.unsqueeze(-1), image_embeds.to(x.dtype))
        return x

    def forward(self, x: torch.Tensor, batch: Batch) -> torch.Tensor:
        """x [T, H] embeddings -> [T, H] final hidden states (apply `lm_logits` for logits)."""
        return self.model.language_model(x, batch)

    def decode_static(
        self, ids: torch.Tensor, positions: torch.Tensor, slot_index: torch.Tensor, cache: Cache,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One decode step of B sequences, one token each, from fixed-shape device tensors only.

        ids [B] token ids (never <|image_pad|>); positions [3, B] or [B] M-RoPE positions;
        slot_index int32 [B] (negative: a padding row, which changes no state); `cache.lengths_dev`
        gives each slot's past and is advanced in place, the host list `cache.lengths` is not
        (call `cache.advance_host`). -> logits [B, V] float32 (written into `out` when given).
        No host sync, no data-dependent shape: with the Triton kernels a CUDA graph captures it.
        """
        B = ids.shape[0] if ids.dim() == 1 else -1
        if B < 0 or slot_index.shape != (B,) or positions.dim() not in (1, 2) or positions.shape[-1] != B:
            raise ModelError(
                f"engine: static decode takes ids [B], positions [3, B] or [B], slot_index [B]; got "
                f"{tuple(ids.shape)}, {tuple(positions.shape)}, {tuple(slot_index.shape)}"
            )
        if positions.dim() == 1:
            positions = positions.expand(3, -1)
        batch = Batch([1] * B, positions, cache, slot_tensor=slot_index, kv_lens=cache.static_lengths(slot_index))
        hidden = self(self.model.language_model.embed_tokens(ids), batch)
        if out is None:
            return self.lm_logits(hidden).float()
        return out.copy_(self.lm_logits(hidden))

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [..., H] -> logits [..., V] (tied: the embedding matrix)."""
        if self.config.tie_word_embeddings:
            return F.linear(hidden, self.model.language_model.embed_tokens.weight)
        return self.lm_head(hidden)
