"""The decode step as CUDA graphs, one per batch-size bucket.

A decode step launches hundreds of small kernels (10-15 per layer, 40 layers for 35B-A3B); at
batch sizes where each is a few microseconds of work, launching them costs as much as running
them. `DecodeGraphs` captures `Model.decode_static` once per bucket and replays it: the batch is
padded up to the next bucket with padding rows (slot -1: zero attention and DeltaNet output, no
state written, length unchanged), its inputs are copied into static buffers, the graph replays,
and the first B rows of a static logits buffer are the answer.

Capture needs every op of the step on a path without host syncs: the Triton kernels for the norms,
conv, gated delta rule, MoE and attention (`model.kernels = "triton"`, or None with the default
dispatch, which picks Triton on CUDA). The naive references index with boolean masks (a host
sync) and cannot be captured. On the CPU, or with enabled=False, the same static step runs
eagerly.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence

import torch

from ..errors import ModelError
from ..kernels import _dispatch
from .cache import Cache
from .qwen3_5 import Model

BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# the ops a decode step runs: all must be on their Triton path for a capture
DECODE_OPS = frozenset({"rms_norm", "gated_rms_norm", "causal_conv1d_update",
                        "recurrent_gated_delta_rule", "store_kv", "decode_attention", "moe_route",
                        "moe_experts"})
# replayed logits may differ from the eager step's by this fraction of the largest logit (the
# same kernels on the same inputs: only a broken capture differs)
REPLAY_TOLERANCE = 1e-3
log = logging.getLogger("docextract.engine")


class DecodeGraphs:
    """Callable decode step: `graphs(ids, positions, slots) -> logits [B, V] float32`.

    enabled: capture CUDA graphs (default: when the model is on CUDA). pad: without graphs, still
    run through the padded static buffers, i.e. exactly what a replay runs, eagerly (with
    graphs the buffers are always used). Buckets above the first one that holds every cache slot are dropped;
    a batch larger than the largest bucket runs as several replays. A capture that fails, or a
    replay whose logits differ from the eager step, turns graphs off (`capture`) with a warning.
    """

    def __init__(self, model: Model, cache: Cache, buckets: Sequence[int] = BUCKETS,
                 enabled: bool | None = None, pad: bool | None = None,
                 warn: Callable[[str], None] | None = None):
        self.model, self.cache = model, cache
        on_cuda = model.device.type == "cuda"
        self.enabled = on_cuda if enabled is None else enabled
        # a graph replays the padded buffers, so graphs imply padding
        self.pad = self.enabled or bool(pad)
        sizes = sorted({int(b) for b in buckets})
        if not sizes or sizes[0] < 1:
            raise ModelError(f"engine: decode graph buckets must be positive, got {list(buckets)}")
        fitting = [b for b in sizes if b < cache.num_slots]
        self.buckets = tuple(fitting + [b for b in sizes if b >= cache.num_slots][:1])
        if self.enabled:
            if not on_cuda:
                raise ModelError("engine: CUDA graphs need the model on a CUDA device",
                                 hint="use enabled=False on the CPU")
            if not _dispatch.use_triton(model.kernels, cache.lengths_dev):
                raise ModelError("engine: CUDA graphs need the Triton kernels",
                                 hint="set model.kernels to 'triton' (or leave DOCEXTRACT_KERNELS unset)")
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        # why graphs were turned off (a failed capture or replay check), None while they are on
        self.disabled_reason: str | None = None
        self.warn: Callable[[str], None] = warn or getattr(model, "warn", None) or log.warning
        if self.pad:
            top, device = self.buckets[-1], model.device
            vocab = model.config.text_config.vocab_size
            self._ids = torch.zeros(top, dtype=torch.long, device=device)
            self._pos = torch.zeros(3, top, dtype=torch.long, device=device)
            self._slots = torch.full((top,), -1, dtype=torch.int32, device=device)
            self._logits = torch.zeros(top, vocab, dtype=torch.float32, device=device)
        if self.enabled:
            self.capture()

    def capture(self) -> bool:
        """Capture the graphs and check one replay against the eager padded step. A failure turns
        graphs off with one warning (the run goes on with the eager padded step) and is
        remembered in the self-check cache, so the next run does not try again. -> graphs on."""
        from . import selfcheck

        ops = sorted(set(_dispatch.fallbacks()) & DECODE_OPS)
        reason = selfcheck.graphs_failed(self.model)
        if ops:
            reason = f"{', '.join(ops)} run on the PyTorch path, which cannot be captured"
        elif reason is not None:
            reason = f"failed here before: {reason}"
        else:
            try:
                with torch.cuda.device(self.model.device) if self.model.device.type == "cuda" \
                        else contextlib.nullcontext():
                    self._capture()
                    reason = self._verify()
            except Exception as exc:  # any capture failure: graphs off, eager padded step
                text = str(exc).strip().splitlines()
                reason = f"capture failed: {type(exc).__name__}: {text[0][:200] if text else ''}"
            selfcheck.record_graphs(self.model, reason)
        if reason is not None:
            self.enabled = False
            self.graphs.clear()
            self.disabled_reason = reason
            self.warn(f"CUDA graphs turned off ({reason}); decoding with the eager padded step")
        return self.enabled

    def _verify(self) -> str | None:
        """Replay the smallest bucket and run the same step eagerly (all rows padding: no state
        changes): the logits must agree. -> None, or why not."""
        b = self.buckets[0]
        self._slots[:b].fill_(-1)
        with torch.inference_mode():
            self.graphs[b].replay()
            replayed = self._logits[:b].clone()
            self._step(b)
            eager = self._logits[:b].clone()
        if not torch.isfinite(replayed).all():
            return "replay gave non-finite logits"
        err = float((replayed - eager).abs().max())
        scale = float(eager.abs().max().clamp_min(1e-6))
        if err > REPLAY_TOLERANCE * scale:
            return f"replay logits differ from the eager step by {err:.3g} (max |logit| {scale:.3g})"
        return None

    def bucket(self, n: int) -> int:
        """The bucket a batch of n (<= the largest bucket) is padded to."""
        return next(b for b in self.buckets if b >= n)

    def _step(self, b: int) -> None:
        """The static step on the first b rows of the buffers (what each graph holds)."""
        self.model.decode_static(self._ids[:b], self._pos[:, :b], self._slots[:b], self.cache,
                                 out=self._logits[:b])

    def _capture(self) -> None:
        device = self.model.device
        with torch.inference_mode():
            # warm-up on a side stream: Triton compiles, cuBLAS picks its kernels (all rows are
            # padding, so no state changes)
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for b in self.buckets:
                    for _ in range(2):
                        self._step(b)
            torch.cuda.current_stream(device).wait_stream(side)
            torch.cuda.synchronize(device)
            # largest first, all in one memory pool: the smaller graphs reuse its blocks
            pool = torch.cuda.graph_pool_handle()
            for b in reversed(self.buckets):
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    self._step(b)
                self.graphs[b] = graph
            torch.cuda.synchronize(device)

    def __call__(self, ids: torch.Tensor, positions: torch.Tensor, slots: Sequence[int]) -> torch.Tensor:
        """ids [B] token ids; positions [3, B] or [B] (M-RoPE); slots: B distinct cache slots.

        Returns logits [B, V] float32 and advances each slot by one token (state, KV, lengths).
        When padding (graphs), the rows are a view of a static buffer that the next call
        overwrites: clone them to keep them.
        """
        slots = [int(s) for s in slots]
        B = len(slots)
        if positions.dim() == 1:
            positions = positions.expand(3, -1)
        if B == 0 or ids.shape != (B,) or positions.shape != (3, B):
            raise ModelError(
                f"engine: decode step of {B} slots got ids {tuple(ids.shape)} and positions "
                f"{tuple(positions.shape)}"
            )
        if len(set(slots)) != B or not all(0 <= s < self.cache.num_slots for s in slots):
            raise ModelError(f"engine: decode slots must be distinct and in [0, {self.cache.num_slots}), got {slots}")
        self.cache.room(slots)
        device = self.model.device
        if not self.pad:
            index = torch.tensor(slots, dtype=torch.int32, device=device)
            logits = self.model.decode_static(ids.to(device), positions.to(device), index, self.cache)
        else:
            top = self.buckets[-1]
            if B <= top:
                logits = self._run(ids, positions, slots)
            else:
                # each replay overwrites the buffer: keep a copy of every part
                logits = torch.cat([
                    self._run(ids[lo : lo + top], positions[:, lo : lo + top], slots[lo : lo + top]).clone()
                    for lo in range(0, B, top)
                ])
        self.cache.advance_host(slots)
        return logits

    def _run(self, ids: torch.Tensor, positions: torch.Tensor, slots: list[int]) -> torch.Tensor:
        n = len(slots)
        b = self.bucket(n)
        self._ids[:n].copy_(ids)
        self._pos[:, :n].copy_(positions)
        self._slots[:n].copy_(torch.tensor(slots, dtype=torch.int32))
        self._slots[n:b].fill_(-1)
        if self.enabled:
            if self.model.device.index is not None and self.model.device.index != torch.cuda.current_device():
                with torch.cuda.device(self.model.device):
                    self.graphs[b].replay()
            else:
                self.graphs[b].replay()
        else:
            self._step(b)
        return self._logits[:n]
