"""Decoding state of a batch of sequences, one slot per sequence.

Full-attention layers keep keys and values (post-RoPE) per slot; Gated DeltaNet layers keep the
last K-1 conv inputs and the fp32 recurrent state per slot, neither growing with the sequence.
Those two are the kernels' state pools: one contiguous [slots, ...] tensor per layer, which the
decode kernels update in place at each sequence's slot (`state_indices`) and prefill reads and
writes back by slot. A slot's length counts the tokens its sequence has been fed; layers write at
that offset and the model advances it once per forward.

Lengths are kept twice, in step: `lengths` (a list, for the host: the packed forward, room checks,
positions) and `lengths_dev` (int32 [slots] on the device). The static decode step
(`Model.decode_static`, what a CUDA graph replays) reads and advances only `lengths_dev`; its
caller then mirrors the step on the list with `advance_host`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ModelError
from .config import TextConfig


class Cache:
    def __init__(self, config: TextConfig, num_slots: int, max_len: int, *, dtype: torch.dtype, device: torch.device | str):
        self.num_slots, self.max_len = num_slots, max_len
        self.lengths = [0] * num_slots
        self.lengths_dev = torch.zeros(num_slots, dtype=torch.int32, device=device)
        kv_shape = (num_slots, config.num_key_value_heads, max_len, config.head_dim)
        # per layer: k, v [slots, nkv, max_len, hd]
        self.kv = {
            i: (torch.zeros(kv_shape, dtype=dtype, device=device), torch.zeros(kv_shape, dtype=dtype, device=device))
            for i in config.full_attention_layers
        }
        # per layer: [slots, conv_dim, K-1]
        self.conv = {
            i: torch.zeros(num_slots, config.conv_dim, config.linear_conv_kernel_dim - 1, dtype=dtype, device=device)
            for i in config.linear_attention_layers
        }
        # per layer: [slots, Hv, Dk, Dv], fp32 like the reference (mamba_ssm_dtype)
        state_shape = (num_slots, config.linear_num_value_heads, config.linear_key_head_dim, config.linear_value_head_dim)
        self.recurrent = {
            i: torch.zeros(state_shape, dtype=torch.float32, device=device) for i in config.linear_attention_layers
        }

    def reset(self, slots: Sequence[int]) -> None:
        """Empty the given slots for new sequences."""
        for slot in slots:
            self.lengths[slot] = 0
        idx = list(slots)
        self.lengths_dev[idx] = 0
        for state in (*self.conv.values(), *self.recurrent.values()):
            state[idx] = 0

    def _check_room(self, slot: int, n: int) -> None:
        if self.lengths[slot] + n > self.max_len:
            raise ModelError(
                f"engine: sequence in cache slot {slot} would exceed {self.max_len} tokens",
                hint="lower max_new_tokens or the image size",
            )

    def append_kv(self, layer: int, slot: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v [nkv, n, hd] after the slot's past; return all its keys and values [nkv, past+n, hd]."""
        past, n = self.lengths[slot], k.shape[1]
        self._check_room(slot, n)
        keys, values = self.kv[layer]
        keys[slot, :, past : past + n] = k
        values[slot, :, past : past + n] = v
        return keys[slot, :, : past + n], values[slot, :, : past + n]

    def decode_lengths(self, slots: Sequence[int]) -> torch.Tensor:
        """int32 [S] on the device: each slot's length once this step's token is in (the
        `lengths` of the attention decode ops), after checking there is room for it."""
        self.room(slots)
        return torch.tensor([self.lengths[s] + 1 for s in slots], dtype=torch.int32, device=self.lengths_dev.device)

    def advance(self, slots: Sequence[int], seq_lens: Sequence[int]) -> None:
        """After a packed forward: slot s has been fed seq_lens[s] more tokens (list and device)."""
        for slot, n in zip(slots, seq_lens):
            self.lengths[slot] += n
        device = self.lengths_dev.device
        self.lengths_dev.index_add_(
            0, torch.tensor(list(slots), device=device), torch.tensor(list(seq_lens), dtype=torch.int32, device=device)
        )

    def static_lengths(self, slot_index: torch.Tensor) -> torch.Tensor:
        """slot_index int32 [B] (negative: padding) -> int32 [B]: each slot's length with this
        step's token, 0 for padding rows. Device ops only (capturable)."""
        valid = slot_index >= 0
        past = self.lengths_dev[slot_index.clamp(min=0).long()]
        return torch.where(valid, past + 1, 0).to(torch.int32)

    def static_advance(self, slot_index: torch.Tensor) -> None:
        """Advance `lengths_dev` by one at every real slot of slot_index int32 [B], in place.
        Device ops only (capturable); padding rows add 0 to slot 0."""
        valid = (slot_index >= 0).to(torch.int32)
        self.lengths_dev.index_add_(0, slot_index.clamp(min=0).long(), valid)

    def advance_host(self, slots: Sequence[int]) -> None:
        """Mirror one static decode step of `slots` on the host list (`lengths_dev` has moved)."""
        for slot in slots:
            self.lengths[slot] += 1

    def room(self, slots: Sequence[int]) -> None:
        """ModelError unless every slot can take one more token."""
        for s in slots:
            self._check_room(s, 1)
